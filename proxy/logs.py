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
        out = {name: value for name, value in zip(_WRITTEN, _written_values(self))
               if value is not None and value is not False}
        if not self.retries:
            del out["retries"]
        for name in _SECONDS:
            if name in out:
                out[name] = round(out[name] * 1000) / 1000  # to the millisecond
        return out


_WRITTEN = tuple(name for name in RequestLog.__slots__ if name != "started")
_written_values = attrgetter(*_WRITTEN)  # one call for all fields: getattr by name costs more than the rest
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


def _timestamp(record: logging.LogRecord) -> str:
    """``2026-11-23T16:46:22.529Z``; the part up to the seconds is made once per second."""
    global _second
    seconds = int(record.created)
    second = _second  # read once: another thread may log too
    if second[0] != seconds:
        second = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{second[1]}.{int((record.created - seconds) * 1000):03d}Z"


_second: tuple[int | None, str] = (None, "")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the request's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": _timestamp(record), "level": record.levelname.lower(),
                                "logger": record.name, "message": record.getMessage()}
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        try:
            text = orjson.dumps(line, default=str).decode()
        except TypeError:  # a lone surrogate in some message: the slower encoder escapes it
            text = json.dumps(line, default=str)
        return redact(text)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        fields = getattr(record, "fields", None) or {}
        if fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact(text)


def setup_logging(level: str = "info", log_format: str = "auto") -> None:
    """Log to stderr: JSON lines unless stderr is a terminal (``auto``), or as asked."""
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # No formatter here shows the thread, the process or the source line: not looked up for every record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # The request line (proxy.access) replaces uvicorn's access log, which would also print query strings.
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False


def write(record: RequestLog, level: int = logging.INFO) -> None:
    fields = record.fields()
    message = f"{record.method} {record.path} {record.status if record.status is not None else '-'}"
    access_log.log(level, message, extra={"fields": fields})
