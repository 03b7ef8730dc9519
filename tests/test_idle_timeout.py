"""The idle timeout of an upstream answer's body: a wait for data that lasts longer fails, time spent elsewhere
(a slow client) does not count, and a body whose pieces keep coming may take as long as it takes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from fake_upstream import Stream, sse_bytes
from proxy.config import load_config
from proxy.errors import IdleTimeout
from proxy.upstream import Upstream

IDLE = 0.3


def events(count: int) -> list[dict]:
    return [{"type": "response.output_text.delta", "delta": str(index), "sequence_number": index}
            for index in range(count)]


def body_of(sent: list[dict]) -> bytes:
    return b"".join(sse_bytes(event) for event in sent)


@pytest.fixture
async def upstream(fake) -> AsyncIterator[Upstream]:
    """An upstream client for the fake, with an idle timeout of ``IDLE``."""
    client = Upstream(load_config(env={}, overrides={"upstream": {"base_url": fake.base_url,
                                                                  "idle_timeout": IDLE}}).upstream)
    yield client
    await client.aclose()


async def read_all(upstream: Upstream, pieces: list[bytes], pause: float = 0.0) -> None:
    """The body's pieces into ``pieces``, waiting ``pause`` after each one as a slow client would make the
    reader wait."""
    response = await upstream.send("POST", "/responses", {}, json={"stream": True})
    try:
        async for piece in response.chunks():
            pieces.append(piece)
            await asyncio.sleep(pause)
    finally:
        response.close()


async def test_a_body_whose_pieces_keep_coming_may_last_longer_than_the_idle_timeout(fake, upstream) -> None:
    fake.script(Stream(events=events(8), delay=IDLE / 3))  # 7 x IDLE / 3: well past the idle timeout in all
    pieces: list[bytes] = []
    started = time.monotonic()
    await read_all(upstream, pieces)
    assert b"".join(pieces) == body_of(events(8))
    assert time.monotonic() - started > 2 * IDLE


async def test_a_wait_for_data_longer_than_the_idle_timeout_fails(fake, upstream) -> None:
    fake.script(Stream(events=events(2), heartbeat_pause=IDLE * 10))  # silent after both, the connection open
    response = await upstream.send("POST", "/responses", {}, json={"stream": True})
    received = b""
    try:
        with pytest.raises(IdleTimeout) as failure:
            async for piece in response.chunks():
                received += piece
                started = time.monotonic()
        waited = time.monotonic() - started
    finally:
        response.close()
    assert received == body_of(events(2)) and failure.value.seconds == IDLE
    assert IDLE * 0.9 <= waited < IDLE * 5


async def test_time_the_reader_spends_elsewhere_is_not_idleness(fake, upstream) -> None:
    fake.script(Stream(events=events(3)))
    pieces: list[bytes] = []
    # A reader busy for twice the idle timeout after each piece still gets the whole body.
    await read_all(upstream, pieces, pause=IDLE * 2)
    assert b"".join(pieces) == body_of(events(3))


async def test_after_a_slow_client_a_silent_upstream_is_still_caught(fake, upstream) -> None:
    fake.script(Stream(events=events(2), heartbeat_pause=IDLE * 20))
    started = time.monotonic()
    with pytest.raises(IdleTimeout):
        await read_all(upstream, [], pause=IDLE * 1.5)  # busy past the timer's first deadline, then waiting
    assert time.monotonic() - started < IDLE * 10
