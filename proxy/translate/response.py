"""Mapping helpers for Responses results -> chat shapes. Pure: no I/O, no framework.

Finish reason, usage, annotations, tool calls, logprobs and failures are
decided here once, for the stream translator that produces both streamed and
non-streamed answers.
"""

from __future__ import annotations

import secrets
from typing import Any

from ..errors import ProxyError

CHAT_SERVICE_TIERS = frozenset(("auto", "default", "flex", "scale", "priority"))
REASONING_PART_SEPARATOR = "\n\n"


def new_completion_id() -> str:
    return "chatcmpl-" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def finish_reason(response: dict[str, Any], has_tool_calls: bool) -> str:
    """``length`` and ``content_filter`` win over ``tool_calls``: a cut-off call must not be executed."""
    if response.get("status") == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        if reason == "content_filter":
            return "content_filter"
        return "length"
    return "tool_calls" if has_tool_calls else "stop"


def chat_usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt = _int(usage.get("input_tokens"))
    completion = _int(usage.get("output_tokens"))
    total = usage.get("total_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": _int(total) if total is not None else prompt + completion,
        "prompt_tokens_details": {"cached_tokens": _int((usage.get("input_tokens_details") or {}).get("cached_tokens"))},
        "completion_tokens_details": {
            "reasoning_tokens": _int((usage.get("output_tokens_details") or {}).get("reasoning_tokens"))
        },
    }


def chat_annotation(annotation: Any, offset: int = 0) -> dict[str, Any] | None:
    """Responses' flat url_citation -> chat's nested shape; other kinds have no chat form."""
    if not isinstance(annotation, dict) or annotation.get("type") != "url_citation":
        return None
    return {
        "type": "url_citation",
        "url_citation": {
            "start_index": _int(annotation.get("start_index")) + offset,
            "end_index": _int(annotation.get("end_index")) + offset,
            "url": str(annotation.get("url", "")),
            "title": str(annotation.get("title") or ""),
        },
    }


def chat_tool_call(item: dict[str, Any]) -> dict[str, Any] | None:
    """A function or custom tool call item -> chat ``tool_calls`` entry (id is the call_id, never ``fc_``)."""
    kind = item.get("type")
    call_id = item.get("call_id") or item.get("id") or ""
    if kind == "function_call":
        return {"id": call_id, "type": "function",
                "function": {"name": item.get("name") or "", "arguments": item.get("arguments") or ""}}
    if kind == "custom_tool_call":
        return {"id": call_id, "type": "custom", "custom": {"name": item.get("name") or "", "input": item.get("input") or ""}}
    return None


def reasoning_texts(item: dict[str, Any]) -> list[str]:
    """Summary parts of a reasoning item; raw reasoning text when a server sends no summary."""
    parts = [part.get("text") or "" for part in item.get("summary") or () if isinstance(part, dict)]
    if not parts:
        parts = [part.get("text") or "" for part in item.get("content") or ()
                 if isinstance(part, dict) and part.get("type") == "reasoning_text"]
    return [text for text in parts if text]


def failure(response: dict[str, Any]) -> ProxyError:
    """The error a client gets for a ``failed`` or ``cancelled`` response."""
    if response.get("status") == "cancelled":
        return ProxyError(502, "The upstream response was cancelled before it completed.", "server_error",
                          code="response_cancelled")
    error = response.get("error") if isinstance(response.get("error"), dict) else {}
    return upstream_failure(error)


def upstream_failure(error: dict[str, Any]) -> ProxyError:
    """An error reported inside a 200 answer (``response.failed``, an ``error`` event)."""
    if isinstance(error.get("error"), dict):  # the nested form of the `error` event
        error = error["error"]
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = "The upstream failed to generate a response."
    code = error.get("code")
    code = code if isinstance(code, (str, int)) and not isinstance(code, bool) else None
    etype = error.get("type") if isinstance(error.get("type"), str) else None
    status = _failure_status(code, etype)
    return ProxyError(status, message, etype or ("invalid_request_error" if status == 400 else "server_error"),
                      error.get("param") if isinstance(error.get("param"), str) else None, code)


def _failure_status(code: Any, etype: str | None) -> int:
    if code in ("rate_limit_exceeded", "insufficient_quota") or etype in ("rate_limit_exceeded", "insufficient_quota"):
        return 429
    if isinstance(code, str) and (code.startswith("invalid_") or code in ("content_policy_violation",
                                                                           "context_length_exceeded")):
        return 400
    if code == "server_error" or etype == "server_error":
        return 500
    return 502


def chat_logprobs(logprobs: Any) -> list[dict[str, Any]]:
    """Responses token logprobs -> chat's ``logprobs.content`` entries (the shapes match field for field)."""
    entries = []
    for entry in logprobs if isinstance(logprobs, list) else ():
        if not isinstance(entry, dict):
            continue
        entries.append({
            "token": entry.get("token", ""),
            "logprob": entry.get("logprob", 0.0),
            "bytes": entry.get("bytes"),
            "top_logprobs": [{"token": top.get("token", ""), "logprob": top.get("logprob", 0.0),
                              "bytes": top.get("bytes")}
                             for top in entry.get("top_logprobs") or () if isinstance(top, dict)],
        })
    return entries


_TERMINAL_BY_STATUS = {"completed": "response.completed", "incomplete": "response.incomplete",
                       "failed": "response.failed", "cancelled": "response.failed"}


def terminal_event(response: dict[str, Any]) -> dict[str, Any] | None:
    """The stream event that ends a finished Response object; None while it is still running."""
    kind = _TERMINAL_BY_STATUS.get(response.get("status", "completed"))
    return {"type": kind, "response": response} if kind else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
