"""Noticing a client that leaves, and streamed answers, with one watcher task per request.

One watcher task per request reads the client's messages; when the client
goes away it cancels the request's own task, so whatever the request was
waiting for (the upstream's head, a whole answer, the next chunk of a stream)
is abandoned at once and its upstream connection closed. The watcher is not
cancelled: once the answer has been sent, the server's ``receive()`` reports
``http.disconnect`` and the watcher, no longer guarding anything, ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Coroutine, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .errors import ClientGone
from .pacing import Heartbeat, Heartbeats

log = logging.getLogger("proxy.streaming")
T = TypeVar("T")


class AnswerCut(Exception):
    """An answer that broke off after its head and cannot be ended well (its length was announced, or an end
    would pass for a complete body). Whoever raises it has reported why; the answer is left incomplete, so the
    server closes the connection and the client sees the cut."""


async def until_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``, abandoning it (so the upstream is let go) if the client goes away: then :class:`ClientGone`.

    Only once the request body has been read: the watcher consumes the client's messages. The request's
    waits share its one watcher (a chat pass-through waits for the upstream's head, then sends the answer).
    """
    task = asyncio.current_task()
    assert task is not None
    watch = _watches.get()
    if watch is None or watch.receive != receive:  # a bound method is made anew each time it is looked up
        watch = _Watch(receive, task.get_loop())
        _watches.set(watch)
    if watch.gone:
        if isinstance(work, Coroutine):
            work.close()  # never started
        raise ClientGone()
    watch.guarded = task
    try:
        return await work
    except asyncio.CancelledError:
        if not watch.gone or task.uncancel() > 0:  # cancelled by someone else (the server stopping)
            raise
        log.info("client disconnected before its answer was complete")
        raise ClientGone() from None
    finally:
        watch.guarded = None


def client_left() -> bool:
    """Whether this request's client has gone, as its watcher saw (a request that never waited has none)."""
    watch = _watches.get()
    return watch is not None and watch.gone


class _Watch:
    """A request's watcher: reads the client's messages until ``http.disconnect`` and then cancels the task it
    guards, if any. A server reports ``http.disconnect`` once the answer has been sent too: then nothing is guarded
    any more, and the watcher just ends."""

    __slots__ = ("receive", "guarded", "gone", "_task")

    def __init__(self, receive: Receive, loop: asyncio.AbstractEventLoop) -> None:
        self.receive = receive
        self.guarded: asyncio.Task[Any] | None = None
        self.gone = False
        self._task = loop.create_task(self._watch())  # held: the loop keeps only a weak reference to tasks

    async def _watch(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        if self.guarded is not None:
            self.guarded.cancel()


_watches: ContextVar[_Watch | None] = ContextVar("proxy_client_watch", default=None)


class StreamedResponse(Response):
    """Starlette's ``StreamingResponse`` with one watcher task instead of a task group per answer.

    The body iterator is closed as soon as the client leaves, or the answer ends; a body that raises
    :class:`AnswerCut` leaves the answer incomplete. With a ``heartbeat``, its frame is sent whenever the
    body has been silent for its interval. With the body's ``length`` known, the message carrying its last byte
    ends the answer (one message fewer through every layer than an empty end).
    """

    def __init__(self, content: AsyncIterator[bytes], status_code: int = 200,
                 headers: Mapping[str, str] | None = None, media_type: str | None = None,
                 heartbeat: Heartbeat | None = None, length: int | None = None) -> None:
        self.body_iterator = content
        self.heartbeat = heartbeat
        self.length = length
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await until_disconnect(receive, self._send_all(send))
        except ClientGone:
            pass  # the request log says so
        except AnswerCut:
            pass  # see AnswerCut
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()

    async def _send_all(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if self.heartbeat is None:
            left, more = self.length, True
            async for chunk in self.body_iterator:
                if left is not None:
                    left -= len(chunk)
                    more = left > 0
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
            if not more:
                return
        else:
            async with Heartbeats(self.heartbeat, send) as paced:
                async for chunk in self.body_iterator:
                    await paced.write({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
