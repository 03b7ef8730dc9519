"""A bound on the request line and headers (the head) of every request, for both HTTP parsers uvicorn may use.

uvicorn with httptools keeps a head of any size, so a client could make the proxy hold hundreds of megabytes
before any check (keys, body limit) runs; h11 refuses a large one with a bare 400. Here, once more than
``server.max_header_bytes`` of a head have arrived without its end, the client is answered 431 and what follows
is read and dropped, not kept: the client can read the answer (closing at once would reset the connection under
it), then the connection ends. As with h11, the check runs after each read from the socket, so a head that ends
within the read that takes it past the limit is still served: what is held stays below the limit plus one read.

The limit travels in uvicorn's own public setting ``h11_max_incomplete_event_size`` (the largest head h11 will
hold), so every ``--workers`` process has it. Only public interfaces are used: asyncio's ``data_received``,
uvicorn's ``config``, ``transport``, ``cycle`` and ``send_400_response``, its httptools callbacks ``on_message_begin`` and
``on_headers_complete``, and h11's ``Connection.their_state`` and ``trailing_data``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import error_body

log = logging.getLogger("proxy.http")

H11_DEFAULT = 16 * 1024  # uvicorn's default for h11_max_incomplete_event_size, when it is given none
LINGER_SECONDS = 2.0  # how long a refused client may go on sending (dropped) before the connection is closed


def refusal(limit: int) -> bytes:
    """The whole 431 answer, written straight to the connection: no request exists yet to answer through."""
    body = orjson.dumps(error_body(f"Request line and headers too large: the limit is {limit} bytes.",
                                   "invalid_request_error", code="request_headers_too_large"))
    return (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)) + body


class _HeadLimit:
    """What both protocols share: the limit, and the refusal."""

    config: Any
    transport: asyncio.Transport
    client: Any
    cycle: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_limit: int = self.config.h11_max_incomplete_event_size or H11_DEFAULT
        self.head_refused = False

    def refuse_head(self) -> None:
        self.head_refused = True
        log.warning("refused a request whose head passed %d bytes, from %s", self.head_limit,
                    self.client[0] if self.client else "an unknown client")
        transport = self.transport
        if self.cycle is not None and not self.cycle.response_complete:
            transport.close()  # the answer to an earlier, pipelined request is still being written: no room for ours
            return
        transport.write(refusal(self.head_limit))
        if transport.can_write_eof():
            transport.write_eof()
            asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()


class H11HeadLimit(_HeadLimit, H11Protocol):
    """h11 refuses a head past ``h11_max_incomplete_event_size`` itself; the refusal becomes a 431."""

    def data_received(self, data: bytes) -> None:
        if not self.head_refused:
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if self.conn.their_state is h11.ERROR and len(self.conn.trailing_data[0]) > self.head_limit:
            self.refuse_head()
        else:
            super().send_400_response(msg)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional: uvicorn then uses h11
    HttpToolsProtocol = None

if HttpToolsProtocol is not None:
    class HttpToolsHeadLimit(_HeadLimit, HttpToolsProtocol):  # at module level: --workers pickles the class's name
        """Counts the bytes received while a head is incomplete (from the start of the piece that began it)."""

        head_bytes: int | None = None  # None: no head being received

        def data_received(self, data: bytes) -> None:
            if self.head_refused:
                return
            super().data_received(data)
            if self.head_bytes is None or self.transport.is_closing():
                return
            self.head_bytes += len(data)
            if self.head_bytes > self.head_limit:
                self.refuse_head()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.head_bytes = 0

        def on_headers_complete(self) -> None:
            self.head_bytes = None
            super().on_headers_complete()


def uvicorn_options(max_header_bytes: int, implementation: str = "auto") -> dict[str, Any]:
    """The settings ``uvicorn.run`` needs for the limit (``implementation``: "auto", "httptools" or "h11")."""
    return {"http": protocol(implementation), "h11_max_incomplete_event_size": max_header_bytes}


def protocol(implementation: str = "auto") -> type[asyncio.Protocol]:
    """The protocol class for ``uvicorn.run(http=...)``: httptools when installed (as uvicorn's "auto"), else h11."""
    if implementation == "h11" or (implementation == "auto" and HttpToolsProtocol is None):
        return H11HeadLimit
    if HttpToolsProtocol is None:
        raise RuntimeError("httptools is not installed")
    return HttpToolsHeadLimit
