"""Heartbeats in a streamed answer: sent while the body is silent, never in the middle of a write, never after
the end, and the body still closed properly when the client leaves."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from proxy import answers
from proxy.pacing import Heartbeat
from proxy.streaming import StreamedResponse
from proxy.translate import Presentation, StreamTranslator

INTERVAL = 0.05
BEAT = b": beat\n\n"


class Client:
    """The ASGI side of one answer: records every body sent (the end is an empty one), can be slow to take them,
    or leave."""

    def __init__(self, write_delay: float = 0.0) -> None:
        self.sent: list[bytes] = []
        self.write_delay = write_delay
        self.gone = asyncio.Event()

    async def send(self, message) -> None:
        if message["type"] != "http.response.body":
            return
        body = message.get("body", b"")
        if body != BEAT:
            await asyncio.sleep(self.write_delay)
        self.sent.append(body)

    async def receive(self):
        await self.gone.wait()
        return {"type": "http.disconnect"}


async def serve(body, client: Client, interval: float = INTERVAL) -> None:
    response = StreamedResponse(body, media_type="text/event-stream", heartbeat=Heartbeat(interval, lambda: BEAT))
    await response({"type": "http"}, client.receive, client.send)


async def test_a_silent_body_gets_a_heartbeat_every_interval_and_none_after_its_end() -> None:
    async def body():
        yield b"data: first\n\n"
        await asyncio.sleep(INTERVAL * 5.5)  # the upstream thinks
        yield b"data: last\n\n"

    client = Client()
    await serve(body(), client)
    await asyncio.sleep(INTERVAL * 2)  # a heartbeat after the end would be sent by now
    assert client.sent[0] == b"data: first\n\n"
    assert client.sent[-2:] == [b"data: last\n\n", b""]
    beats = client.sent[1:-2]
    assert set(beats) == {BEAT}
    assert 3 <= len(beats) <= 6  # one per interval of silence (about five), not just the first


async def test_a_body_that_keeps_writing_gets_no_heartbeat() -> None:
    async def body():
        for index in range(12):
            await asyncio.sleep(INTERVAL)
            yield b"data: %d\n\n" % index

    client = Client()
    await serve(body(), client, interval=INTERVAL * 4)
    assert BEAT not in client.sent and len(client.sent) == 13


async def test_no_heartbeat_while_a_write_is_under_way() -> None:
    """A client slower than the interval: its writes are not interleaved with heartbeats."""
    async def body():
        for index in range(3):
            yield b"data: %d\n\n" % index

    client = Client(write_delay=INTERVAL * 3)
    await serve(body(), client)
    assert client.sent == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n", b""]


async def test_a_heartbeat_being_sent_is_finished_before_the_next_write() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    order = []

    async def send(message) -> None:
        if message["type"] != "http.response.body":
            return
        body = message.get("body", b"")
        if body == BEAT and not started.is_set():
            started.set()
            await release.wait()  # the heartbeat's write is slow
        order.append(body)

    async def body():
        yield b"data: first\n\n"
        await started.wait()
        asyncio.get_running_loop().call_later(INTERVAL, release.set)
        yield b"data: second\n\n"  # written while the heartbeat is still being sent

    response = StreamedResponse(body(), heartbeat=Heartbeat(INTERVAL, lambda: BEAT))
    await response({"type": "http"}, Client().receive, send)
    assert order[:3] == [b"data: first\n\n", BEAT, b"data: second\n\n"]


async def test_a_failing_body_stops_the_heartbeats() -> None:
    async def body():
        yield b"data: first\n\n"
        await asyncio.sleep(INTERVAL * 1.5)
        raise RuntimeError("the body broke")

    client = Client()
    with pytest.raises(RuntimeError):
        await serve(body(), client)
    sent = len(client.sent)
    await asyncio.sleep(INTERVAL * 3)
    assert len(client.sent) == sent


async def test_a_client_that_leaves_closes_the_body_and_lets_its_shielded_cleanup_finish() -> None:
    """An upstream call releases its connection and cancels its background job in a shielded scope."""
    cleaned = asyncio.Event()

    async def body():
        try:
            yield b"data: first\n\n"
            await asyncio.sleep(60)
            yield b"data: never\n\n"
        finally:
            with anyio.CancelScope(shield=True):
                await asyncio.sleep(INTERVAL)
                cleaned.set()

    client = Client()
    asyncio.get_running_loop().call_later(INTERVAL * 2.5, client.gone.set)
    async with asyncio.timeout(5):
        await serve(body(), client)
    assert cleaned.is_set()
    assert client.sent[0] == b"data: first\n\n" and set(client.sent[1:]) <= {BEAT}
    sent = len(client.sent)
    await asyncio.sleep(INTERVAL * 3)
    assert len(client.sent) == sent  # no heartbeat for a client that has gone


async def test_a_stream_heartbeat_is_a_progress_note_once_a_minute_has_passed(monkeypatch) -> None:
    monkeypatch.setattr(answers, "PROGRESS_EVERY", INTERVAL * 4)
    translator = StreamTranslator("o3-deep-research", presentation=Presentation(reasoning="reasoning_content",
                                                                                progress=True))
    translator.start()
    heartbeat = answers._stream_heartbeat([translator], 15.0)
    assert heartbeat.interval == 15.0
    assert heartbeat.frame() == b": keep-alive\n\n"  # before the first minute
    await asyncio.sleep(INTERVAL * 5)
    note = heartbeat.frame()
    assert note.startswith(b"data: ") and b"Still thinking (" in note
    assert heartbeat.frame() == b": keep-alive\n\n"  # one note per minute
