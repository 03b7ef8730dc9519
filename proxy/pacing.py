"""Heartbeats for long, mostly silent streamed answers.

Reasoning models can think for many minutes without sending a byte, and
idle timeouts in browsers, reverse proxies and aggregators (60-125 s is
common) would cut the client off. :class:`Heartbeats` sends a frame whenever
the client has had nothing for an interval. The answer's body is read in the
request's own task (no hand-over between tasks per upstream read), and a
write costs no timer: one timer runs per interval, however many writes there
are. (A dead upstream is the upstream call's to detect: see ``proxy.calls``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from starlette.types import Message, Send


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What to send, and after how many seconds without a write."""

    interval: float
    frame: Callable[[], bytes]  # called when one is due, between the answer's own writes


class Heartbeats:
    """Writes an answer's body messages, and a heartbeat whenever the client has had nothing for an interval.

    A heartbeat is only sent while no write of the answer's own is under way, and one being sent is finished
    before the next write: frames never interleave. Used as an async context manager: on a normal exit a
    heartbeat being sent is finished, on an error it is abandoned.
    """

    def __init__(self, heartbeat: Heartbeat, send: Send) -> None:
        self._heartbeat = heartbeat
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._last_write = self._loop.time()
        self._writing = False
        self._beat: asyncio.Task[None] | None = None
        self._timer = self._loop.call_at(self._last_write + heartbeat.interval, self._due)

    async def write(self, message: Message) -> None:
        self._writing = True
        try:
            if self._beat is not None:
                beat, self._beat = self._beat, None
                await beat
            await self._send(message)
        finally:
            self._writing = False
            self._last_write = self._loop.time()

    def _due(self) -> None:
        interval = self._heartbeat.interval
        now = self._loop.time()
        beat = self._beat
        if beat is not None and beat.done() and beat.exception() is None:
            beat = self._beat = None  # sent (a failed one is left for the next write to raise)
        if self._writing or beat is not None:
            when = now + interval
        elif now < self._last_write + interval:
            when = self._last_write + interval
        else:
            self._last_write = now
            message = {"type": "http.response.body", "body": self._heartbeat.frame(), "more_body": True}
            self._beat = self._loop.create_task(self._send(message))
            when = now + interval
        self._timer = self._loop.call_at(when, self._due)

    async def __aenter__(self) -> Heartbeats:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        self._timer.cancel()
        beat, self._beat = self._beat, None
        if beat is None:
            return
        if error is None:
            await beat
        elif not beat.done():
            beat.cancel()
        elif not beat.cancelled():
            beat.exception()  # retrieved: the answer's own error is the one that counts
