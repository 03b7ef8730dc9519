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
from servers import running_proxy

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
# through) and, once /v1/responses is translated to chat, "chat" (the fake chat-only upstream).
UPSTREAMS = ["responses", "chat"]


@pytest.fixture(scope="module", params=UPSTREAMS)
def served(request, fake_server) -> Iterator[tuple[Upstream, str]]:
    """(the upstream, the URL of a proxy in front of it, configured as a user would: not at all)."""
    if request.param == "responses":
        upstream, fake_cm = ResponsesUpstream, contextlib.nullcontext(fake_server)
    else:
        upstream, fake_cm = ChatUpstream, running_fake_upstream(FakeChatUpstream())
    with fake_cm as fake, running_proxy(proxy_config(fake.base_url)) as url:
        yield upstream(fake), url


@pytest.fixture
def upstream(served) -> Upstream:
    served[0].fake.reset()
    return served[0]
