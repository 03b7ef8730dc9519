"""Heartbeats for long, mostly silent upstream streams.

Reasoning models can think for many minutes without sending a byte, and
idle timeouts in browsers, reverse proxies and aggregators (60-125 s is
common) would cut the client off. :class:`Pacer` reads the upstream in its own
task, so waiting for data can time out without disturbing the upstream read,
and tells its consumer when a heartbeat is due. (A dead upstream is the
upstream call's to detect: see ``proxy.calls``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


class Heartbeat:
    """Yielded when nothing has been written to the client for a heartbeat interval."""


HEARTBEAT = Heartbeat()


class _End:
    pass


_END = _End()


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Pacer(Generic[T]):
    """Iterate ``source``, with a heartbeat whenever the client has had nothing for a while.

    A small bounded queue between the reader task and the consumer keeps
    backpressure: a slow client slows the upstream read instead of growing memory.
    """

    def __init__(self, source: AsyncGenerator[T, None], heartbeat: float | None, queue_size: int = 16) -> None:
        self._source = source
        self._heartbeat = heartbeat
        self._queue: asyncio.Queue[T | _End | _Failure] = asyncio.Queue(queue_size)
        self._loop = asyncio.get_running_loop()
        self._last_output = self._loop.time()
        self._task: asyncio.Task[None] | None = None
        self._stop = anyio.CancelScope()
        self._held: list[_End | _Failure] = []  # an end or failure found by ready(), reported next
        self._items: AsyncGenerator[T | Heartbeat, None] | None = None

    def written(self) -> None:
        """Tell the pacer the client just received bytes (resets the heartbeat timer)."""
        self._last_output = self._loop.time()

    def ready(self) -> list[T]:
        """The items that have already arrived, taken without waiting, so the consumer can handle them in one go.

        An end or a failure is left for the iteration to report.
        """
        items: list[T] = []
        while not self._held:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if isinstance(item, (_End, _Failure)):
                self._held.append(item)
            else:
                items.append(item)
        return items

    async def _pump(self) -> None:
        # Stopped through an anyio cancel scope, not Task.cancel(): only an anyio cancellation
        # waits for a source's shielded cleanup (see UpstreamCall.aclose) instead of
        # interrupting it half-way.
        with self._stop:
            try:
                async with aclosing(self._source) as source:
                    async for item in source:
                        await self._queue.put(item)
                await self._queue.put(_END)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # relayed to the consumer, which decides what it means
                await self._queue.put(_Failure(exc))

    def __aiter__(self) -> AsyncIterator[T | Heartbeat]:
        self._items = self._iterate()
        return self._items

    async def _iterate(self) -> AsyncGenerator[T | Heartbeat, None]:
        self._task = asyncio.create_task(self._pump())
        try:
            while True:
                now = self._loop.time()
                if self._heartbeat is not None and now - self._last_output >= self._heartbeat:
                    self._last_output = now
                    yield HEARTBEAT
                    continue
                try:
                    item = self._held.pop() if self._held else self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    if self._heartbeat is None:
                        item = await self._queue.get()
                    else:
                        try:
                            async with asyncio.timeout(max(self._last_output + self._heartbeat - now, 0)):
                                item = await self._queue.get()
                        except TimeoutError:
                            continue
                if isinstance(item, _End):
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            await self._stop_reader()

    async def aclose(self) -> None:
        """Stop reading; an iteration left suspended ends too (not left for the event loop to close)."""
        if self._items is not None:
            await self._items.aclose()
        await self._stop_reader()

    async def _stop_reader(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            self._stop.cancel()
            # asyncio.wait neither raises the reader's CancelledError nor hides our own.
            await asyncio.wait({task}, timeout=5)
