"""The idle timeout of an upstream answer's body: a wait for data that lasts longer fails, time spent elsewhere
(a slow client) does not count, and a body whose pieces keep coming may take as long as it takes."""

from __future__ import annotations

import asyncio
import time

import pytest

from fake_upstream import Stream, sse_bytes
from proxy.config import load_config
from proxy.upstream import Upstream, UpstreamIdle

IDLE = 0.3


def events(count: int) -> list[dict]:
    return [{"type": "response.output_text.delta", "delta": str(index), "sequence_number": index}
            for index in range(count)]


def body_of(sent: list[dict]) -> bytes:
    return b"".join(sse_bytes(event) for event in sent)


def upstream_for(fake) -> Upstream:
    return Upstream(load_config(env={}, overrides={"upstream": {"base_url": fake.base_url,
                                                                "idle_timeout": IDLE}}).upstream)


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


async def test_a_body_whose_pieces_keep_coming_may_last_longer_than_the_idle_timeout(fake) -> None:
    fake.script(Stream(events=events(8), delay=IDLE / 3))  # 7 x IDLE / 3: well past the idle timeout in all
    upstream = upstream_for(fake)
    pieces: list[bytes] = []
    started = time.monotonic()
    try:
        await read_all(upstream, pieces)
    finally:
        await upstream.aclose()
    assert b"".join(pieces) == body_of(events(8))
    assert time.monotonic() - started > 2 * IDLE


async def test_a_wait_for_data_longer_than_the_idle_timeout_fails(fake) -> None:
    fake.script(Stream(events=events(2), heartbeat_pause=IDLE * 10))  # silent after both, the connection open
    upstream = upstream_for(fake)
    response = await upstream.send("POST", "/responses", {}, json={"stream": True})
    received = b""
    try:
        with pytest.raises(UpstreamIdle) as failure:
            async for piece in response.chunks():
                received += piece
                started = time.monotonic()
        waited = time.monotonic() - started
    finally:
        response.close()
        await upstream.aclose()
    assert received == body_of(events(2)) and failure.value.seconds == IDLE
    assert IDLE * 0.9 <= waited < IDLE * 5


async def test_time_the_reader_spends_elsewhere_is_not_idleness(fake) -> None:
    fake.script(Stream(events=events(3)))
    upstream = upstream_for(fake)
    pieces: list[bytes] = []
    try:
        # A reader busy for twice the idle timeout after each piece still gets the whole body.
        await read_all(upstream, pieces, pause=IDLE * 2)
    finally:
        await upstream.aclose()
    assert b"".join(pieces) == body_of(events(3))


async def test_after_a_slow_client_a_silent_upstream_is_still_caught(fake) -> None:
    fake.script(Stream(events=events(2), heartbeat_pause=IDLE * 20))
    upstream = upstream_for(fake)
    started = time.monotonic()
    try:
        with pytest.raises(UpstreamIdle):
            await read_all(upstream, [], pause=IDLE * 1.5)  # busy past the timer's first deadline, then waiting
    finally:
        await upstream.aclose()
    assert time.monotonic() - started < IDLE * 10
