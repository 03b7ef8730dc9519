"""Fixtures for the client suites: the Node.js runner for the scripts under node/, and the upstreams the
Responses clients are served from.

The proxy and fake upstream fixtures (`fake`, `proxy_url`, ...) come from tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import proxy_config
from fake_chat_upstream import FakeChatUpstream
from fake_upstream import running_fake_upstream
from proxy.app import create_app
from servers import running_app
from spec_check import check_response, check_stream_event

from .responses_upstreams import ChatUpstream, ResponsesUpstream, Upstream
from .scenarios import node_data

CLIENTS = Path(__file__).parent
NODE_TIMEOUT = 60

HEARTBEAT = 0.05  # seconds; see scenarios.SILENCE

NodeRunner = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def node_bin() -> str:
    """The machine's Node.js; the Node suites skip, naming what is missing, where it or the packages are absent."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the openai-node and AI SDK client tests need `node` on PATH")
    if not (CLIENTS / "node_modules").is_dir():
        pytest.skip("tests/clients/node_modules is missing: run `npm ci` in tests/clients (as .ci/run does)")
    return node


@pytest.fixture
def run_node(node_bin: str, proxy_url: str) -> NodeRunner:
    """``run_node("openai_sdk.mjs", "plain")``: run one scenario against the proxy, return the JSON it printed."""

    def run(script: str, scenario: str, url: str = proxy_url) -> dict[str, Any]:
        done = subprocess.run([node_bin, str(CLIENTS / "node" / script), url + "/v1", scenario,
                               json.dumps(node_data())],
                              capture_output=True, text=True, timeout=NODE_TIMEOUT, cwd=CLIENTS)
        assert done.returncode == 0, f"{script} {scenario} exited with {done.returncode}:\n{done.stderr}"
        return json.loads(done.stdout)

    return run


@pytest.fixture
def quiet_proxy_url(make_proxy, fake) -> Iterator[str]:
    """A proxy that sends a keep-alive comment after every HEARTBEAT seconds of upstream silence."""
    with make_proxy(stream={"heartbeat_interval": HEARTBEAT}) as url:
        yield url


# The upstreams every Responses client scenario runs against: "responses" (the fake Responses upstream, passed
# through) and "chat" (the fake chat-only upstream, which the proxy serves /v1/responses through).
UPSTREAMS = ["responses", "chat"]


class SpecTap:
    """ASGI middleware in front of the proxy: every Responses event the proxy makes on ``/v1/responses`` (its
    ``event:`` name and its data) and every ``Response`` it makes is checked against the spec (answers passed
    through are the upstream's, checked by the fake's own tests); what fails is kept
    in ``failures`` (the test then fails), the answer goes on unchanged."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.failures: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/responses"):
            return await self.app(scope, receive, send)
        kind, pending, whole = "", b"", bytearray()

        async def tap(message: dict) -> None:
            nonlocal kind, pending
            if message["type"] == "http.response.start":
                headers = dict(message["headers"])
                made = headers.get(b"x-proxy-mode") == b"translated"  # not the upstream's bytes passed through
                kind = headers.get(b"content-type", b"").decode() if made and message["status"] == 200 else ""
            elif message["type"] == "http.response.body":
                if kind.startswith("text/event-stream"):
                    *frames, pending = (pending + message.get("body", b"")).split(b"\n\n")
                    for frame in frames:
                        self._check_frame(frame.decode())
                elif kind.startswith("application/json"):
                    whole.extend(message.get("body", b""))
                    if not message.get("more_body"):
                        self._check(check_response, json.loads(whole))
            await send(message)

        await self.app(scope, receive, tap)

    def _check_frame(self, frame: str) -> None:
        lines = [line for line in frame.split("\n") if line and not line.startswith(":")]
        if not lines:
            return
        if len(lines) != 2 or not lines[0].startswith("event: ") or not lines[1].startswith("data: "):
            self.failures.append(f"not an event: data frame: {frame[:200]!r}")
            return
        event = json.loads(lines[1][6:])
        if event.get("type") != lines[0][7:]:
            self.failures.append(f"event name {lines[0][7:]!r} for an event of type {event.get('type')!r}")
        self._check(check_stream_event, event)

    def _check(self, check: Callable[[Any], None], value: Any) -> None:
        try:
            check(value)
        except AssertionError as exc:
            self.failures.append(str(exc))


@pytest.fixture(scope="module", params=UPSTREAMS)
def served(request, fake_server) -> Iterator[tuple[Upstream, str, SpecTap]]:
    """(the upstream, the URL of a proxy in front of it, configured as a user would: not at all, and the tap that
    checks what the proxy answers)."""
    if request.param == "responses":
        upstream, fake_cm = ResponsesUpstream, contextlib.nullcontext(fake_server)
    else:
        upstream, fake_cm = ChatUpstream, running_fake_upstream(FakeChatUpstream())
    with fake_cm as fake:
        tap = SpecTap(create_app(proxy_config(fake.base_url)))
        with running_app(tap) as url:
            yield upstream(fake), url, tap


@pytest.fixture
def upstream(served) -> Iterator[Upstream]:
    """The upstream, reset; after the test, what the proxy answered must have met the spec."""
    served[0].fake.reset()
    served[2].failures.clear()
    yield served[0]
    assert not served[2].failures, "the proxy answered outside the spec:\n" + "\n".join(served[2].failures[:5])
