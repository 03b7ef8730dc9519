"""The outermost layer of every request: request id, refusal of foreign origins, the request's log line and
metrics, shutdown.

The proxy's checks of a request's head share this one layer and one pass over the headers: every layer of
middleware costs each request a coroutine, and every await in the request passes through it.

It wraps the ASGI ``send``, so it sees the answer as the client does: the
status, the first body byte (time to first byte) and the last one, which for
a stream is when the line is written. When the server stops and a request is
still running after the grace period, the server cancels it; a stream then
ends with an error event instead of a silent cut, and an unanswered request
gets a 503.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import time
from collections.abc import Iterable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import logs, metrics
from .errors import error_body, error_response
from .origins import Origins
from .streaming import client_left
from .translate import closing_frame

# Probes and scrapes are not requests worth a line at INFO, nor a series.
QUIET_PATHS = frozenset(("/healthz", "/readyz", "/metrics"))
_SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

SHUTDOWN_ERROR = error_body("The server is shutting down and could not finish this answer in time; retry the request.",
                            "server_error", code="server_shutting_down")


def request_id(incoming: str | None) -> str:
    """The client's ``x-request-id`` when it is a short plain token, else a new one.

    New ids are a random per-process prefix and a counter: unique across replicas and restarts, and
    without a system call per request (they name a request in the logs; they are not secrets).
    """
    if incoming and _SANE_ID.fullmatch(incoming):
        return incoming
    return f"req_{_ID_PREFIX}{next(_ids):08x}"


_ID_PREFIX = secrets.token_hex(8)
_ids = itertools.count(1)


class _Answer:
    __slots__ = ("started", "complete", "event_stream", "tail", "stream_label")

    def __init__(self) -> None:
        self.started = False
        self.complete = False
        self.event_stream = False
        self.tail = b""
        self.stream_label: str | None = None


class InFlight:
    """The tasks answering requests, so that shutdown can let cancelled ones write their last words."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    async def settle(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout)


class ObserveMiddleware:
    """Observes every request, and refuses one from a web page at an origin not in ``allowed_origins``
    (:class:`~proxy.origins.Origins`; none allowed by default)."""

    def __init__(self, app: ASGIApp, inflight: InFlight | None = None, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.inflight = inflight or InFlight()
        self.origins = Origins(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = refused = None
        for name, value in scope["headers"]:  # ASGI names are lowercase
            if name == b"x-request-id":
                if incoming is None:
                    incoming = value.decode("latin-1")
            elif name == b"origin" and refused is None:
                refused = self.origins.refusal(value)
        record = logs.RequestLog(request_id=request_id(incoming), method=scope["method"], path=scope["path"])
        answer = _Answer()
        token = logs.begin(record)
        task = asyncio.current_task()
        if task is not None:
            self.inflight.tasks.add(task)

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer.started = True
                record.status = message["status"]
                message["headers"] = self._headers(message.get("headers", []), record, answer)
                if answer.event_stream:
                    answer.stream_label = record.mode or "none"
                    metrics.count(metrics.ACTIVE_STREAMS, answer.stream_label)
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                if body:
                    if record.ttfb is None:
                        record.ttfb = time.monotonic() - record.started
                    answer.tail = body[-2:] if len(body) >= 2 else (answer.tail + body)[-2:]  # not a copy of body
                if not message.get("more_body", False):
                    answer.complete = True
            await send(message)

        try:
            if refused is None:
                await self.app(scope, receive, observed_send)
            else:
                await error_response(refused)(scope, receive, observed_send)
        except asyncio.CancelledError:
            # Only the server cancels a request: it is stopping and the grace period is over.
            record.error = "server_shutting_down"
            if not answer.started:
                record.status = 503  # the answer _close_for_shutdown gives
            if not await self._close_for_shutdown(answer, send):
                raise
            if task is not None:
                task.uncancel()
        except BaseException:
            if record.status is None or not answer.started:
                record.status = 500
            raise
        finally:
            if answer.started and not answer.complete and client_left():  # as the request's watcher saw
                record.client_disconnected = True
            logs.end(token)
            self.inflight.tasks.discard(task)  # type: ignore[arg-type]
            self._finish(record, answer)

    @staticmethod
    def _headers(raw: list[tuple[bytes, bytes]], record: logs.RequestLog, answer: _Answer) -> list[tuple[bytes, bytes]]:
        """Ours ``x-request-id``; an upstream's own is kept as ``x-upstream-request-id``."""
        headers = []
        for name, value in raw:
            lower = name.lower()
            if lower == b"x-request-id":
                record.upstream_request_id = value.decode("latin-1")
                headers.append((b"x-upstream-request-id", value))
                continue
            if lower == b"content-type" and value.startswith(b"text/event-stream"):
                answer.event_stream = True
            headers.append((name, value))
        headers.append((b"x-request-id", record.request_id.encode("latin-1")))
        return headers

    @staticmethod
    async def _close_for_shutdown(answer: _Answer, send: Send) -> bool:
        """End the answer with an error the client can read; False when that is impossible."""
        if not answer.started:
            body = orjson.dumps(SHUTDOWN_ERROR)
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"5")]})
            await send({"type": "http.response.body", "body": body})
            return True
        if answer.event_stream and not answer.complete:
            await send({"type": "http.response.body", "body": closing_frame(answer.tail, SHUTDOWN_ERROR)})
            return True
        return answer.complete

    @staticmethod
    def _finish(record: logs.RequestLog, answer: _Answer) -> None:
        record.duration = time.monotonic() - record.started
        if answer.stream_label is not None:
            metrics.count(metrics.ACTIVE_STREAMS, answer.stream_label, amount=-1)
        if record.path in QUIET_PATHS:
            logs.write(record, logging.DEBUG)
            return
        metrics.observe(record)
        logs.write(record)

