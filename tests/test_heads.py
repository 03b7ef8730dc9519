"""The request head limit (``server.max_header_bytes``): a huge header is refused with a 431, not kept.

The attack: a header of a megabyte or more, sent without a key. uvicorn with httptools kept it whole before
any check ran (and h11 refused 16 KiB with a bare 400). Both parsers are driven here through the real app,
and the command line is run as an operator runs it, with one worker and with several.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

import h11
import httpx
import pytest
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from conftest import proxy_config
from fake_upstream import Hang
from proxy import heads
from proxy.app import create_app
from proxy.config import load_config
from servers import proxy_process, running_app

MEGABYTE = 1024 * 1024
IMPLEMENTATIONS = ["httptools", "h11"]
DEFAULT_LIMIT = load_config(env={}).server.max_header_bytes


def raw_exchange(url: str, request: bytes) -> bytes:
    """Send ``request`` whole, then read until the server closes the connection; a server that keeps it
    open fails the read with a timeout."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            sock.sendall(request)
        except OSError:  # the server may stop reading once it has answered; its answer is still there
            pass
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def padded(size: int, path: bytes = b"/v1/chat/completions") -> bytes:
    return b"POST " + path + b" HTTP/1.1\r\nHost: proxy\r\nContent-Length: 2\r\nX-Padding: " + b"a" * size \
        + b"\r\n\r\n{}"


def assert_refused(answer: bytes, limit: int) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"connection: close" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == "request_headers_too_large" and str(limit) in error["message"]


@pytest.fixture(params=IMPLEMENTATIONS)
def limited_proxy(request, fake_server):
    """A keyed proxy served by one HTTP parser with the head limit of its configuration."""
    config = proxy_config(fake_server.base_url, server={"api_keys": ["pk-team"]})
    with running_app(create_app(config), **heads.uvicorn_options(config.server.max_header_bytes,
                                                                 request.param)) as url:
        yield url, config.server.max_header_bytes


def test_a_megabyte_header_gets_431_and_the_connection_closes(limited_proxy, fake):
    url, limit = limited_proxy
    assert_refused(raw_exchange(url, padded(MEGABYTE)), limit)
    assert fake.requests == []


def test_heads_below_the_limit_and_large_bodies_are_served(limited_proxy, fake):
    url, limit = limited_proxy
    headers = {"x-padding": "a" * (limit - 1024), "authorization": "Bearer pk-team"}
    assert httpx.get(url + "/healthz", headers=headers, timeout=30).status_code == 200
    with httpx.Client(timeout=30) as client:  # one connection: the count starts again for each request
        for _ in range(3):
            big = client.post(url + "/v1/embeddings", json={"model": "m", "input": "x" * MEGABYTE},
                              headers={"authorization": "Bearer pk-team"})
            assert big.status_code == 200, big.text
    assert len(fake.requests) == 3


def test_a_huge_head_pipelined_behind_a_running_request_closes_the_connection_without_an_error(limited_proxy, fake):
    """No 431 can go out while the answer to the request before it is still to come: the connection is closed."""
    url, _ = limited_proxy
    fake.script(Hang(0.3))  # the first request is still being answered when the second head arrives
    errors: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = errors.append  # type: ignore[method-assign]
    logging.getLogger("uvicorn.error").addHandler(handler)
    body = json.dumps({"model": "o3-pro", "messages": [{"role": "user", "content": "Hi"}]}).encode()
    first = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer pk-team\r\n"
             b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            try:
                sock.sendall(first + padded(MEGABYTE, b"/healthz"))
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            time.sleep(0.5)  # the client stays: the upstream's answer to the first request ends meanwhile
    finally:
        logging.getLogger("uvicorn.error").removeHandler(handler)
    assert [record.getMessage() for record in errors] == []


def test_the_limit_is_the_configured_one(fake_server, fake):
    config = proxy_config(fake_server.base_url, server={"max_header_bytes": 4096})
    with running_app(create_app(config), **heads.uvicorn_options(4096)) as url:
        assert_refused(raw_exchange(url, padded(MEGABYTE, b"/healthz")), 4096)
        assert httpx.get(url + "/healthz", headers={"x-padding": "a" * 3000}).status_code == 200


def test_what_the_limit_relies_on_in_uvicorn_and_h11():
    """The limit overrides these; an upgrade that renames or drops one must fail here, not in production."""
    for base, names in ((HttpToolsProtocol, ("data_received", "on_message_begin", "on_headers_complete")),
                        (H11Protocol, ("data_received", "send_400_response"))):
        for name in names:
            assert callable(vars(base).get(name)), f"{base.__name__}.{name} is gone"
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=10)
    connection.receive_data(b"GET / HTTP/1.1\r\nX: " + b"a" * 20)
    with pytest.raises(h11.RemoteProtocolError):
        connection.next_event()
    assert connection.their_state is h11.ERROR and len(connection.trailing_data[0]) > 10
    async def app(scope, receive, send): ...

    config = uvicorn.Config(app, log_config=None, **heads.uvicorn_options(5000, "h11"))
    config.load()
    assert config.http_protocol_class is heads.H11HeadLimit and config.h11_max_incomplete_event_size == 5000


def peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])


def started_proxy(workers: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-test",
           "PROXY_API_KEYS": "pk-team"}
    env.pop("PROXY_CONFIG", None)
    return proxy_process(["--workers", str(workers), "--log-format", "json"], env)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads peak memory from Linux's /proc")
def test_the_header_is_not_kept_in_memory():
    process, url = started_proxy(workers=1)
    try:
        Path(f"/proc/{process.pid}/clear_refs").write_text("5")  # the peak starts again from now
        before = peak_rss_kib(process.pid)
        assert_refused(raw_exchange(url, padded(MEGABYTE)), DEFAULT_LIMIT)
        grown = peak_rss_kib(process.pid) - before
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert grown * 1024 < MEGABYTE, f"the peak grew by {grown} KiB"


def test_every_worker_has_the_limit():
    process, url = started_proxy(workers=2)
    try:
        for _ in range(4):
            assert_refused(raw_exchange(url, padded(MEGABYTE)), DEFAULT_LIMIT)
    finally:
        process.terminate()
        process.wait(timeout=15)
