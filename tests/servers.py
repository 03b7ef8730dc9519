"""Run the real proxy server (uvicorn) on loopback in a background thread."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from proxy.app import create_app
from proxy.config import Config


class ServerThread:
    """A uvicorn server with its own event loop, on a free loopback port."""

    def __init__(self, app, **options: Any) -> None:
        """``options`` are more uvicorn settings (``http=...``)."""
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="on", timeout_graceful_shutdown=2, **options))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def running_proxy(config: Config, prepare: Callable[[Any], None] | None = None) -> Iterator[str]:
    """Yield the proxy's base URL (``http://127.0.0.1:PORT``); ``prepare`` may adjust the app first."""
    app = create_app(config)
    if prepare is not None:
        prepare(app)
    with running_app(app) as url:
        yield url


@contextmanager
def running_app(app, **options: Any) -> Iterator[str]:
    """Serve an ASGI app on loopback (``options``: more uvicorn settings); yield its base URL."""
    server = ServerThread(app, **options)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proxy_process(args: list[str], env: dict[str, str], stderr: int | None = subprocess.DEVNULL,
                  seconds: float = 20) -> tuple[subprocess.Popen, str]:
    """``python -m proxy`` from this checkout as a process of its own, on a free port, once it answers /healthz."""
    port = free_port()
    env = {**env, "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-m", "proxy", "--port", str(port), *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the proxy did not start" + (f": {process.stderr.read().decode()}" if process.stderr else ""))


@contextmanager
def running_redis() -> Iterator[str]:
    """A Redis server on loopback (fakeredis over TCP), as several proxy processes or replicas share one: its URL."""
    import fakeredis

    server = fakeredis.TcpFakeServer(("127.0.0.1", 0), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{server.server_address[1]}/0"
    finally:
        server.shutdown()
        server.server_close()


async def until(condition: Callable[[], Any], seconds: float = 10.0) -> None:
    """Wait (in the event loop) until ``condition()`` holds; fail after ``seconds``."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")
