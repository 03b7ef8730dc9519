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
    data: bytes  # as sent (UTF-8): JSON parsers take bytes, and most events are only parsed


class SSEDecoder:
    """Turns a byte stream into :class:`ServerSentEvent` objects."""

    __slots__ = ("_buffer", "_event", "_data", "_pending_cr")

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[bytes] = []
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
        for line in lines:
            if not line:
                if self._data or self._event is not None:
                    events.append(ServerSentEvent(self._event, b"\n".join(self._data)))
                    self._event, self._data = None, []
            elif line.startswith(b"data:"):  # most lines: checked first
                self._data.append(line[6:] if line.startswith(b"data: ") else line[5:])
            elif not line.startswith(b":"):  # a comment otherwise
                self._field(line)
        return events

    def close(self) -> list[ServerSentEvent]:
        """Flush at end of stream; a final event without a blank line still counts."""
        return self.feed(b"\n\n") if self._buffer or self._data or self._event is not None else []

    def _field(self, line: bytes) -> None:
        name, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")


DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"


def encode_data(payload: Any) -> bytes:
    """One ``data:`` frame. orjson output has no newlines, so one line suffices."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def encode_event(event: str, payload: Any) -> bytes:
    """A named frame, as the Responses API sends them (``event:`` then ``data:``)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
