"""Shared fixtures: the fake upstream and the real proxy server, both on loopback."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from hypothesis import settings

from fake_chat_upstream import FakeChatUpstream
from fake_upstream import FakeUpstream, running_fake_upstream
from proxy.config import DEFAULT_MODEL_SETTINGS, Config, load_config
from servers import running_proxy

IMAGE_BUILD = pytest.StashKey[tuple[Path, subprocess.Popen]]()

# Property tests and fuzzing: a few hundred examples in CI; with PROXY_FUZZ_LONG=1, PROXY_FUZZ_EXAMPLES
# (default 20000) per test.
settings.register_profile("ci", max_examples=200, deadline=None)
settings.register_profile("long", max_examples=int(os.environ.get("PROXY_FUZZ_EXAMPLES", "20000")), deadline=None)
settings.load_profile("long" if os.environ.get("PROXY_FUZZ_LONG") else "ci")

# Proxies the tests start as processes keep stored responses in memory, not in a file in the user's home (a test
# that stores them in a file says where).
os.environ["PROXY_RESPONSE_STORE"] = "memory"

UPSTREAM_KEY = "sk-upstream-secret-4f8a9c"
CLIENT_KEY = "client-key"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


# Background mode off for the default long-running models, so most tests see plain calls;
# background tests switch it back on per glob.
NO_BACKGROUND = {glob: {"background": False} for glob in DEFAULT_MODEL_SETTINGS}


def proxy_config(upstream_url: str, **sections: Any) -> Config:
    """A proxy configuration pointed at ``upstream_url``; keyword arguments override config sections.

    Retry waits and background polls are shortened so tests stay fast; a background run whose client left is
    cancelled at once (tests of reattaching set a window); stored responses are kept in memory.
    """
    base = {
        "upstream": {"base_url": upstream_url, "api_key": UPSTREAM_KEY, "backoff_initial": 0.01, "backoff_max": 0.05},
        "background": {"poll_initial": 0.02, "poll_max": 0.05, "reattach_window": 0},
        "to_chat": {"store": "memory"},
        "models": NO_BACKGROUND,
    }
    return load_config(env={}, overrides=_merge(base, sections))


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeUpstream]:
    with running_fake_upstream() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeUpstream) -> FakeUpstream:
    fake_server.reset()
    return fake_server


@pytest.fixture(scope="module")
def chat_server() -> Iterator[FakeChatUpstream]:
    """A chat-only upstream (DeepSeek-like by default), one per test module."""
    with running_fake_upstream(FakeChatUpstream()) as fake:
        yield fake


@pytest.fixture
def chat_fake(chat_server: FakeChatUpstream) -> FakeChatUpstream:
    chat_server.reset()
    return chat_server


@pytest.fixture(scope="session")
def proxy_url(fake_server: FakeUpstream) -> Iterator[str]:
    with running_proxy(proxy_config(fake_server.base_url)) as url:
        yield url


@pytest.fixture
def make_proxy(fake_server: FakeUpstream):
    """Start a proxy with its own configuration: ``with make_proxy(stream={...}) as url:``."""

    @contextmanager
    def start(upstream_url: str | None = None, **sections: Any) -> Iterator[str]:
        with running_proxy(proxy_config(upstream_url or fake_server.base_url, **sections)) as url:
            yield url

    return start


def sdk(url: str, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=options.pop("timeout", 30),
                         **options)


@pytest.fixture
def client(proxy_url: str, fake: FakeUpstream) -> openai.OpenAI:
    return sdk(proxy_url)


@pytest.fixture
def async_client(proxy_url: str, fake: FakeUpstream) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=proxy_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start building the Docker image's steps now, so the slow install runs beside the other tests."""
    if not any(item.get_closest_marker("packaging") for item in session.items):
        return
    root = Path(tempfile.mkdtemp(prefix="responses-proxy-image-"))
    process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("dockerfile.py")), str(root)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    session.config.stash[IMAGE_BUILD] = (root, process)


def pytest_sessionfinish(session: pytest.Session) -> None:
    build = session.config.stash.get(IMAGE_BUILD, None)
    if build is not None:
        root, process = build
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def image_root(request: pytest.FixtureRequest) -> Path:
    """The scratch root the Dockerfile's steps were carried out in (see tests/dockerfile.py)."""
    root, process = request.config.stash[IMAGE_BUILD]
    _, errors = process.communicate(timeout=600)
    if process.returncode != 0:
        pytest.fail(f"the Dockerfile's steps failed:\n{errors.decode(errors='replace')[-4000:]}")
    return root
