"""The one Server-Sent Events reader and writer.

The reader is incremental and sans-I/O: feed it bytes as they arrive from the
network, get back complete events. It follows the WHATWG framing rules that
matter in practice: ``\\n``, ``\\r\\n`` or ``\\r`` line ends, multi-line
``data``, comment lines, and events split across network chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

# An event's name (None when it has none) and its data as sent (UTF-8 bytes: JSON parsers take bytes, and most
# events are only parsed). A plain tuple: made for every event of every stream, it costs less than any class.
ServerSentEvent = tuple[str | None, bytes]


class EventTooLarge(ValueError):
    """An event grew past the decoder's ``max_event`` bytes before its blank line came."""


class SSEDecoder:
    """Turns a byte stream into events, each a :data:`ServerSentEvent` pair.

    Bytes are held until a blank line completes an event; each completed event
    is then read in one pass, and the usual ``event:`` + ``data:`` pair without
    looking at its lines one by one. An event arriving in many pieces (a large
    ``response.completed``) is joined once, when it is complete, so each byte is
    searched and copied about once; one held past ``max_event`` bytes raises
    :class:`EventTooLarge`.
    """

    __slots__ = ("_held", "_held_size", "_pending_cr", "max_event")

    def __init__(self, max_event: int | None = None) -> None:
        self._held: list[bytes] = []  # the start of an unfinished event, in the pieces it came in
        self._held_size = 0
        self._pending_cr = False
        self.max_event = max_event

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._pending_cr = chunk.endswith(b"\r")
        # find() rather than ``in``: CPython tries a bytes operand of ``in`` as an integer first, and formats
        # the TypeError it gets, on every event.
        if chunk.find(b"\r") >= 0:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        held = self._held
        if held:
            # Still unfinished unless a blank line ends in this piece (it may begin at the held part's end).
            if chunk.find(b"\n\n") < 0 and not (chunk.startswith(b"\n") and held[-1].endswith(b"\n")):
                if chunk:
                    self._hold(chunk)
                return []
            buffer = b"".join(held) + chunk
            held.clear()
            self._held_size = 0
        else:
            buffer = chunk
        # A line end, then a blank line, ends an event; what follows the last one is held (most often nothing).
        blocks = buffer.split(b"\n\n")
        unfinished = blocks.pop()
        if unfinished:
            self._hold(unfinished)
        events: list[ServerSentEvent] = []
        for block in blocks:
            head, _, rest = block.partition(b"\n")
            if head.startswith(b"event: ") and rest.startswith(b"data: ") and rest.find(b"\n") < 0:
                events.append((head[7:].decode("utf-8", "replace"), rest[6:]))  # as OpenAI frames them
            else:
                _read_block(block, events)
        return events

    def close(self) -> list[ServerSentEvent]:
        """Flush at end of stream; a final event without a blank line still counts."""
        return self.feed(b"\n\n") if self._held else []

    def _hold(self, piece: bytes) -> None:
        self._held.append(piece)
        self._held_size += len(piece)
        if self.max_event is not None and self._held_size > self.max_event:
            raise EventTooLarge(f"an event grew past {self.max_event:,} bytes without ending")


def _read_block(block: bytes, events: list[ServerSentEvent]) -> None:
    """Any other event, line by line (a block holds more than one event only after extra blank lines)."""
    event: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line.startswith(b"data: ") else line[5:])
            continue
        if not line:
            if data or event is not None:
                events.append((event, b"\n".join(data)))
                event, data = None, []
            continue
        if line.startswith(b":"):  # a comment
            continue
        name, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    if data or event is not None:
        events.append((event, b"\n".join(data)))


DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"


def encode_data(payload: Any) -> bytes:
    """One ``data:`` frame. orjson output has no newlines, so one line suffices."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def encode_frames(payloads: Iterable[Any]) -> bytes:
    """:func:`encode_data` of each payload, in one piece: the frames are joined on the blank line and ``data:``
    between them, without a Python call and two copies per frame."""
    joined = b"\n\ndata: ".join(map(orjson.dumps, payloads))
    return b"data: " + joined + b"\n\n" if joined else b""


_EVENT_ENDS = (b"\n\n", b"\r\n\r\n", b"\r\r")  # the blank line that ends an event, in each line-end style


def _end_of_last_event(data: bytes) -> int:
    """Where the last complete event in ``data`` ends, just past its blank line; 0 when none does."""
    end = 0
    for mark in _EVENT_ENDS:
        found = data.rfind(mark)
        if found >= 0:
            end = max(end, found + len(mark))
    return end


class EventHolder:
    """Holds back an event stream's unfinished last event, so that what goes out ends where an event ends.

    Sans-I/O: feed the bytes as they arrive, get back what may go out now. An event larger than ``limit``
    goes out as it comes. Each byte is looked at about once, however many pieces an event arrives in.
    """

    __slots__ = ("_held", "limit")

    def __init__(self, limit: int) -> None:
        self._held = bytearray()  # no complete event in it
        self.limit = limit

    def __len__(self) -> int:
        return len(self._held)

    def feed(self, chunk: bytes) -> bytes:
        held = self._held
        if not held and chunk.endswith(b"\n\n"):  # as OpenAI frames them, one event per network chunk
            return chunk
        overlap = bytes(held[-3:])  # a blank line may begin in what is held (3 = the longest end mark, less one)
        end = _end_of_last_event(overlap + chunk) - len(overlap)
        if end > 0:
            ready = bytes(held) + chunk[:end]
            held.clear()
            held += chunk[end:]
            return ready
        held += chunk
        return self.flush() if len(held) > self.limit else b""

    def flush(self) -> bytes:
        """Whatever is held (the stream ended, or the event is too large to hold)."""
        ready = bytes(self._held)
        self._held.clear()
        return ready


def closing_frame(sent: bytes, payload: Any) -> bytes:
    """A last ``data:`` frame after ``sent``, the end of what already went out: an event cut short there is ended
    first (blank lines between events are harmless)."""
    return (b"" if not sent or sent.endswith(b"\n\n") else b"\n\n") + encode_data(payload)


class _Heads(dict[str, bytes]):
    """An event type's frame head, ``event: <type>`` and the ``data:`` that follows, made once per type.
    Types are the Responses API's few dozen; past a bound, a new one is made each time rather than kept."""

    def __missing__(self, kind: str) -> bytes:
        head = b"event: " + kind.encode() + b"\ndata: "
        if len(self) < 256:
            self[kind] = head
        return head


_HEADS = _Heads()


def encode_event(event: str, payload: Any) -> bytes:
    """A named frame, as the Responses API sends them (``event:`` then ``data:``)."""
    return _HEADS[event] + orjson.dumps(payload) + b"\n\n"


def encode_events(events: Sequence[dict[str, Any]]) -> bytes:
    """:func:`encode_event` of each event under its ``type``, in one piece (a single event, most batches: one
    chunk's delta, without a join)."""
    if len(events) == 1:
        event = events[0]
        return encode_event(event["type"], event)
    return b"".join([encode_event(event["type"], event) for event in events])


def event_frames(events: Iterable[dict[str, Any]]) -> list[bytes]:
    """:func:`encode_event` of each event under its ``type``, each frame apart (for a log kept by event)."""
    return [encode_event(event["type"], event) for event in events]
