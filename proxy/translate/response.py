"""Responses result -> Chat Completion. Pure: no I/O, no framework.

The helpers here (finish reason, usage, annotations, failures) are shared by
the stream translator, so a streamed and a non-streamed answer to the same
request can never disagree on them.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from ..errors import ProxyError

_CHAT_SERVICE_TIERS = frozenset(("auto", "default", "flex", "scale", "priority"))
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


def responses_to_chat(response: dict[str, Any], completion_id: str | None = None) -> dict[str, Any]:
    """Map a finished Response object to a Chat Completion; raises :class:`ProxyError` for failures."""
    if response.get("status") in ("failed", "cancelled"):
        raise failure(response)
    texts: list[str] = []
    annotations: list[dict[str, Any]] = []
    refusals: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    length = 0
    for item in response.get("output") or ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "output_text":
                    text = part.get("text") or ""
                    for annotation in part.get("annotations") or ():
                        mapped = chat_annotation(annotation, length)
                        if mapped:
                            annotations.append(mapped)
                    texts.append(text)
                    length += len(text)
                elif part.get("type") == "refusal":
                    refusals.append(part.get("refusal") or "")
        elif kind == "reasoning":
            reasoning.extend(reasoning_texts(item))
        else:
            call = chat_tool_call(item)
            if call:
                tool_calls.append(call)

    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not (tool_calls or refusals) else None,
        "refusal": "".join(refusals) if refusals else None,
    }
    if reasoning:
        message["reasoning_content"] = REASONING_PART_SEPARATOR.join(reasoning)
    if tool_calls:
        message["tool_calls"] = tool_calls
    if annotations:
        message["annotations"] = annotations

    completion: dict[str, Any] = {
        "id": completion_id or new_completion_id(),
        "object": "chat.completion",
        "created": _int(response.get("created_at")) or int(time.time()),
        "model": response.get("model") or "",
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason(response, bool(tool_calls)),
        }],
    }
    tier = response.get("service_tier")
    if tier in _CHAT_SERVICE_TIERS:
        completion["service_tier"] = tier
    usage = chat_usage(response.get("usage"))
    if usage is not None:
        completion["usage"] = usage
    return completion


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
