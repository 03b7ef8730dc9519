"""Structured logs: one line per request, JSON lines or readable text, keys never written.

Code anywhere in a request adds to that request's line with one statement,
``logs.current().fallback = "gpt-4o"``; the line is written when the answer
has ended (for a stream: its last byte), by :mod:`proxy.middleware`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import orjson

from .library_internals import skip_source_lookup

access_log = logging.getLogger("proxy.access")


@dataclass(slots=True)
class RequestLog:
    """What one request did. Fields left ``None`` are unknown and not written."""

    request_id: str = ""
    method: str = ""
    path: str = ""
    started: float = field(default_factory=time.monotonic)
    model: str | None = None
    mode: str | None = None  # "translated" or "passthrough"
    stream: bool = False
    upstream: str | None = None  # name of the upstream that answered
    upstream_status: int | None = None  # of the last upstream attempt
    upstream_request_id: str | None = None
    status: int | None = None  # sent to the client
    retries: int = 0  # upstream attempts after the first
    fallback: str | None = None  # the model that answered instead of `model`
    ttfb: float | None = None  # seconds until the first body byte went to the client
    duration: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    error: str | None = None  # error code, also for a stream that failed after its 200
    client_disconnected: bool = False
    reattached: str | None = None  # the background response a retry (or an Idempotency-Key) followed

    def count_usage(self, usage: Any) -> None:
        """Take token counts from a Responses (``input_tokens``) or Chat Completions (``prompt_tokens``) usage."""
        if not isinstance(usage, dict):
            return
        prompt = usage.get("input_tokens", usage.get("prompt_tokens"))
        completion = usage.get("output_tokens", usage.get("completion_tokens"))
        details = usage.get("output_tokens_details") or usage.get("completion_tokens_details") or {}
        reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
        for name, value in (("prompt_tokens", prompt), ("completion_tokens", completion),
                            ("reasoning_tokens", reasoning)):
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, value)

    def fields(self) -> dict[str, Any]:
        """The line's fields, rounded and without unknowns (nor flags and counts that are unset)."""
        out = {"request_id": self.request_id, "method": self.method, "path": self.path}  # always known
        for name, value in zip(_OPTIONAL, _optional_values(self)):
            if value is not None and value is not False:
                out[name] = value
        if not self.retries:
            del out["retries"]
        for name in _SECONDS:
            if name in out:
                out[name] = round(out[name] * 1000) / 1000  # to the millisecond
        return out


_OPTIONAL = tuple(name for name in RequestLog.__slots__ if name not in ("request_id", "method", "path", "started"))
_optional_values = attrgetter(*_OPTIONAL)  # one call for all fields: getattr by name costs more than the rest
_SECONDS = ("ttfb", "duration")

_current: ContextVar[RequestLog | None] = ContextVar("proxy_request_log", default=None)


def current() -> RequestLog:
    """This request's log record; outside a request, a throwaway one (so setting fields is always safe)."""
    record = _current.get()
    return record if record is not None else RequestLog()


def begin(record: RequestLog) -> Any:
    return _current.set(record)


def end(token: Any) -> None:
    _current.reset(token)


# ---------------------------------------------------------------- formatting and redaction

_secrets: list[str] = []  # longest first, so a key that contains another is hidden whole
_SECRET_PATTERNS = (
    (re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+"), r"\1 ***"),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"), "sk-***"),
)


def register_secrets(values: Iterable[str | None]) -> None:
    """Keys that must never appear in a log line, whatever logged them."""
    _secrets[:] = sorted({*_secrets, *(value for value in values if value and len(value) >= 4)}, key=len, reverse=True)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    # The patterns cost more than the line's other work: run them only where they can match.
    if "sk-" in text or "bearer" in text.lower():
        for pattern, replacement in _SECRET_PATTERNS:
            text = pattern.sub(replacement, text)
    return text


# ---------------------------------------------------------------- clients' text in a line

LOGGED_CHARS = 1000  # of one value a client may have chosen: a model name, a path, an argument of a message
MESSAGE_CHARS = 8 * LOGGED_CHARS


def clip(text: str, limit: int = LOGGED_CHARS) -> str:
    """``text``, or its first ``limit`` characters and a note of how many were left out: a client's megabyte
    model name must not make a megabyte line."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more characters]"


def _clipped(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields``, each text value clipped (a new dict only when one is too long: nearly never)."""
    for value in fields.values():
        if isinstance(value, str) and len(value) > LOGGED_CHARS:
            return {key: clip(item) if isinstance(item, str) else item for key, item in fields.items()}
    return fields


def _message(record: logging.LogRecord) -> str:
    """The record's message, each text argument clipped (:func:`clip`), and the whole too."""
    args = record.args
    if isinstance(args, tuple) and any(isinstance(arg, str) and len(arg) > LOGGED_CHARS for arg in args):
        try:
            return clip(str(record.msg) % tuple(clip(arg) if isinstance(arg, str) else arg for arg in args),
                        MESSAGE_CHARS)
        except (TypeError, ValueError):  # a format that wanted the argument as it was: logging's own message
            pass
    return clip(record.getMessage(), MESSAGE_CHARS)


# Characters that would end a line or steer a terminal, in the text format.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": r"\n", "\r": r"\r", "\t": r"\t"}
_QUOTED = re.compile(r'[\s"=\x00-\x1f\x7f-\x9f\u2028\u2029]')  # what a key=value field cannot carry bare


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def _escaped(text: str) -> str:
    """``text`` with no line break or other control character: those are written as ``\\n``, ``\\x1b``...

    Text Python calls printable has none of them (it has no control, format or separator characters but the
    space): nothing to look for."""
    return text if text.isprintable() else _CONTROL.sub(_escape, text)


def _text_value(value: Any) -> str:
    """A field's value in the text format: quoted (and escaped) when it has spaces, quotes, ``=`` or control
    characters, so a value cannot pass for more fields or lines."""
    if not isinstance(value, str):
        return str(value)
    if value and (_bare(value) or not _QUOTED.search(value)):
        return value
    return '"' + _escaped(value.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _bare(value: str) -> bool:
    """Whether ``value`` has none of the characters of ``_QUOTED``, by cheaper tests than the regex: printable
    text has no whitespace but the space, and no control or separator characters."""
    return value.isprintable() and " " not in value and '"' not in value and "=" not in value


_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def _shown_path(path: str) -> str:
    """The (decoded) path in a request line's message, clipped, with spaces and control characters encoded again
    as they were sent (``%20``, ``%0D%0A``): the message's three parts stay three."""
    if not (path.isprintable() and " " not in path) and _SPACE_OR_CONTROL.search(path):
        path = _SPACE_OR_CONTROL.sub(_percent_encoded, path)
    return clip(path)


def _percent_encoded(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode())


def _timestamp(created: float) -> str:
    """``2026-11-23T16:46:22.529Z``; the part up to the seconds is made once per second, the milliseconds looked up
    (formatting a number with a width costs more than the rest of the line's time)."""
    global _second
    seconds = int(created)
    second = _second  # read once: another thread may log too
    if second[0] != seconds:
        second = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds)))
    return second[1] + _MILLISECONDS[int((created - seconds) * 1000)]


_second: tuple[int | None, str] = (None, "")
_MILLISECONDS = tuple(f"{ms:03d}Z" for ms in range(1000))


class _LineFormatter(logging.Formatter):
    """A formatter whose line can also be made from its parts, without a ``LogRecord`` (see :func:`write`)."""

    def format(self, record: logging.LogRecord) -> str:
        return self.line(record.created, record.levelname, record.name, _message(record),
                         getattr(record, "fields", None),
                         self.formatException(record.exc_info) if record.exc_info else None)

    def line(self, created: float, level_name: str, logger: str, message: str, fields: dict[str, Any] | None,
             exception: str | None = None) -> str:
        raise NotImplementedError


class JsonFormatter(_LineFormatter):
    """One JSON object per line: time, level, logger, message, then the request's fields."""

    def line(self, created: float, level_name: str, logger: str, message: str, fields: dict[str, Any] | None,
             exception: str | None = None) -> str:
        line: dict[str, Any] = {"time": _timestamp(created), "level": level_name.lower(), "logger": logger,
                                "message": message}
        if fields:
            line.update(fields)
        if exception:
            line["exception"] = exception
        text = _json(line)
        # A line no longer than LOGGED_CHARS has no value to clip: looked at one by one only when it is longer.
        if fields and len(text) > LOGGED_CHARS and _clipped(fields) is not fields:
            text = _json({**line, **_clipped(fields)})
        return redact(text)


def _json(line: dict[str, Any]) -> str:
    try:
        return orjson.dumps(line, default=str).decode()
    except TypeError:  # a lone surrogate in some message: the slower encoder escapes it
        return json.dumps(line, default=str)


class TextFormatter(_LineFormatter):
    """``time LEVEL logger: message key=value ...`` for a terminal.

    What a client may have chosen (the path in a message, a model name in a field) cannot start a line of its
    own: control characters are escaped, and a field's value with spaces is quoted (:func:`_text_value`).
    """

    def line(self, created: float, level_name: str, logger: str, message: str, fields: dict[str, Any] | None,
             exception: str | None = None) -> str:
        text = f"{_timestamp(created)} {level_name:<7} {logger}: {_escaped(message)}"
        if fields:
            text += " " + " ".join(f"{key}={_text_value(value)}" for key, value in _clipped(fields).items())
        if exception:
            text += "\n" + exception
        return redact(text)


def setup_logging(level: str = "info", log_format: str = "auto") -> None:
    """Log to stderr: JSON lines unless stderr is a terminal (``auto``), or as asked."""
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    global _installed
    handler = _installed = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # No formatter here shows the thread, the process or the source line: not looked up for every record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    skip_source_lookup()
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # The request line (proxy.access) replaces uvicorn's access log, which would also print query strings.
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False


_installed: logging.StreamHandler | None = None  # the handler setup_logging made


def write(record: RequestLog, level: int = logging.INFO) -> None:
    """Write a request's line.

    When the line would reach only the handler :func:`setup_logging` made, with nothing filtering it on the way,
    it is formatted and written here, without the logging module's record and handler path, which costs
    several times the line itself. Any other handler or filter sees it the usual way. A request that failed
    on the server's side (5xx: the upstream down or failing, most often) is a warning.
    """
    if level == logging.INFO and record.status is not None and record.status >= 500:
        level = logging.WARNING
    if not access_log.isEnabledFor(level):
        return
    fields = record.fields()
    status = record.status if record.status is not None else "-"
    message = f"{clip(record.method)} {_shown_path(record.path)} {status}"
    handler = _sole_handler(level)
    if handler is not None:
        text = handler.formatter.line(time.time(), logging.getLevelName(level), access_log.name,  # type: ignore[union-attr]
                                      message, fields) + handler.terminator
        try:
            with handler.lock:  # type: ignore[union-attr]
                handler.stream.write(text)
                handler.stream.flush()
            return
        except Exception:  # the logging module's own path below reports it (Handler.handleError)
            pass
    access_log.log(level, message, extra={"fields": fields})


def _sole_handler(level: int) -> logging.StreamHandler | None:
    """The handler setup_logging made, if a line logged to ``proxy.access`` at ``level`` would reach it and no
    other, and nothing would filter it or change how it is formatted."""
    handler = _installed
    if handler is None or access_log.disabled or access_log.filters or handler.filters or level < handler.level \
            or type(handler.formatter) not in _OWN_FORMATTERS:
        return None
    reached = 0
    logger: logging.Logger | None = access_log
    while logger is not None:
        for found in logger.handlers:
            if found is not handler:
                return None
            reached += 1
        logger = logger.parent if logger.propagate else None
    return handler if reached == 1 else None


_OWN_FORMATTERS = (JsonFormatter, TextFormatter)
