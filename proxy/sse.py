"""The one Server-Sent Events reader and writer.

The reader is incremental and sans-I/O: feed it bytes as they arrive from the
network, get back complete events. It follows the WHATWG framing rules that
matter in practice: ``\\n``, ``\\r\\n`` or ``\\r`` line ends, multi-line
``data``, comment lines, and events split across network chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class ServerSentEvent:
    event: str | None
    data: str


class SSEDecoder:
    """Turns a byte stream into :class:`ServerSentEvent` objects."""

    __slots__ = ("_buffer", "_event", "_data", "_pending_cr")

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._pending_cr = chunk.endswith(b"\r")
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        events: list[ServerSentEvent] = []
        for raw in lines:
            event = self._line(raw)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[ServerSentEvent]:
        """Flush at end of stream; a final event without a blank line still counts."""
        events = self.feed(b"\n") if self._buffer else []
        event = self._line(b"")
        if event is not None:
            events.append(event)
        return events

    def _line(self, raw: bytes) -> ServerSentEvent | None:
        if not raw:
            if not self._data and self._event is None:
                return None
            event = ServerSentEvent(self._event, "\n".join(self._data))
            self._event, self._data = None, []
            return event
        if raw.startswith(b":"):
            return None
        name, sep, value = raw.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        text = value.decode("utf-8", "replace")
        if name == b"data":
            self._data.append(text)
        elif name == b"event":
            self._event = text
        return None


DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"


def encode_data(payload: Any) -> bytes:
    """One ``data:`` frame. orjson output has no newlines, so one line suffices."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def encode_event(event: str, payload: Any) -> bytes:
    """A named frame, as the Responses API sends them (``event:`` then ``data:``)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
