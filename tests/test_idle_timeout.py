"""The idle timeout of an upstream answer's body: a wait for data that lasts longer fails, time spent elsewhere
(a slow client) does not count, and a body whose pieces keep coming may take as long as it takes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from proxy.config import load_config
from proxy.upstream import Upstream, UpstreamIdle

IDLE = 0.3
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@asynccontextmanager
async def serving(answer: Callable[[asyncio.StreamWriter], object]) -> AsyncIterator[Upstream]:
    """A loopback HTTP server that answers every request with ``answer(writer)``, and an upstream client for it."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        try:
            await answer(writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = Upstream(load_config(env={}, overrides={"upstream": {
        "base_url": f"http://127.0.0.1:{port}/v1", "idle_timeout": IDLE}}).upstream)
    try:
        yield upstream
    finally:
        await upstream.aclose()
        server.close()
        await server.wait_closed()


async def read_all(upstream: Upstream, pause: float = 0.0) -> list[bytes]:
    """The body's pieces, waiting ``pause`` after each one as a slow client would make the reader wait."""
    response = await upstream.send("GET", "/stream", {})
    pieces = []
    try:
        async for piece in response.chunks():
            pieces.append(piece)
            await asyncio.sleep(pause)
    finally:
        response.close()
    return pieces


async def test_a_body_whose_pieces_keep_coming_may_last_longer_than_the_idle_timeout() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD)
        for index in range(8):  # 8 x IDLE / 3: well past the idle timeout in all
            writer.write(chunk(b"data: %d\n\n" % index))
            await writer.drain()
            await asyncio.sleep(IDLE / 3)
        writer.write(b"0\r\n\r\n")

    async with serving(answer) as upstream:
        started = time.monotonic()
        body = b"".join(await read_all(upstream))
    assert body == b"".join(b"data: %d\n\n" % index for index in range(8))
    assert time.monotonic() - started > 2 * IDLE


async def test_a_wait_for_data_longer_than_the_idle_timeout_fails() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + chunk(b"data: first\n\n"))
        await writer.drain()
        await asyncio.sleep(IDLE * 10)  # silent, the connection open

    async with serving(answer) as upstream:
        response = await upstream.send("GET", "/stream", {})
        pieces = []
        started = time.monotonic()
        with pytest.raises(UpstreamIdle) as failure:
            async for piece in response.chunks():
                pieces.append(piece)
                started = time.monotonic()
        waited = time.monotonic() - started
        response.close()
    assert pieces == [b"data: first\n\n"] and failure.value.seconds == IDLE
    assert IDLE * 0.9 <= waited < IDLE * 5


async def test_time_the_reader_spends_elsewhere_is_not_idleness() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD)
        for index in range(3):
            writer.write(chunk(b"data: %d\n\n" % index))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with serving(answer) as upstream:
        # The first piece may hold everything; a reader busy for twice the idle timeout after each piece still
        # gets the whole body.
        body = b"".join(await read_all(upstream, pause=IDLE * 2))
    assert body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


async def test_after_a_slow_client_a_silent_upstream_is_still_caught() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + chunk(b"data: first\n\n"))
        await writer.drain()
        await asyncio.sleep(IDLE * 20)

    async with serving(answer) as upstream:
        started = time.monotonic()
        with pytest.raises(UpstreamIdle):
            await read_all(upstream, pause=IDLE * 1.5)  # busy past the timer's first deadline, then waiting
    assert time.monotonic() - started < IDLE * 10
