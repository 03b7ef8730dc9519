"""Noticing a client that leaves, and streamed answers, with one watcher task per request.

One watcher task per request reads the client's messages; when the client
goes away it cancels the request's own task, so whatever the request was
waiting for (the upstream's head, a whole answer, the next chunk of a stream)
is abandoned at once and its upstream connection closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .errors import ProxyError
from .pacing import Heartbeat, Heartbeats

log = logging.getLogger("proxy.streaming")
T = TypeVar("T")


class ClientGone(ProxyError):
    """The client closed the connection before its answer was complete (nginx's 499)."""

    def __init__(self) -> None:
        super().__init__(499, "The client closed the connection.", "client_disconnected")


class AnswerCut(Exception):
    """An answer that broke off after its head and cannot be ended well (its length was announced, or an end
    would pass for a complete body). Whoever raises it has reported why; the answer is left incomplete, so the
    server closes the connection and the client sees the cut."""


async def until_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``, abandoning it (so the upstream is let go) if the client goes away: then :class:`ClientGone`.

    Only once the request body has been read: the watcher consumes the client's messages.
    """
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def client_gone() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = task.get_loop().create_task(client_gone())
    try:
        return await work
    except asyncio.CancelledError:
        if not gone or task.uncancel() > 0:  # cancelled by someone else (the server stopping)
            raise
        log.info("client disconnected before its answer was complete")
        raise ClientGone() from None
    finally:
        watcher.cancel()


class StreamedResponse(Response):
    """Starlette's ``StreamingResponse`` with one watcher task instead of a task group per answer.

    The body iterator is closed as soon as the client leaves, or the answer ends; a body that raises
    :class:`AnswerCut` leaves the answer incomplete. With a ``heartbeat``, its frame is sent whenever the
    body has been silent for its interval.
    """

    def __init__(self, content: AsyncIterator[bytes], status_code: int = 200,
                 headers: Mapping[str, str] | None = None, media_type: str | None = None,
                 heartbeat: Heartbeat | None = None) -> None:
        self.body_iterator = content
        self.heartbeat = heartbeat
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
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        else:
            async with Heartbeats(self.heartbeat, send) as paced:
                async for chunk in self.body_iterator:
                    await paced.write({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
