"""Mapping helpers for Responses results -> chat shapes. Pure: no I/O, no framework.

Finish reason, usage, moderation, Azure's content filter results, annotations, tool calls, logprobs and
failures are decided here once, for the stream translator that produces both streamed and non-streamed answers.
"""

from __future__ import annotations

import base64
import random
from typing import Any

from ...errors import ProxyError
from ..fields import as_dict, as_int, as_list, as_str, is_int

CHAT_SERVICE_TIERS = frozenset(("auto", "default", "flex", "scale", "priority"))
REASONING_PART_SEPARATOR = "\n\n"


def new_completion_id() -> str:
    """Unique, not secret: the process's own random generator, without a system call per answer."""
    return "chatcmpl-" + base64.b64encode(random.randbytes(18), b"xy").decode()


def finish_reason(response: dict[str, Any], has_tool_calls: bool) -> str:
    """``length`` and ``content_filter`` win over ``tool_calls``: a cut-off call must not be executed. Azure's
    filter may also say so by a blocked completion in ``content_filters``."""
    if response.get("status") == "incomplete":
        reason = as_dict(response.get("incomplete_details")).get("reason")
        if reason == "content_filter":
            return "content_filter"
        return "length"
    if any(entry.get("blocked") is True for entry in _filters(response, "completion")):
        return "content_filter"
    return "tool_calls" if has_tool_calls else "stop"


# Azure OpenAI's Responses API reports its content filter in the Response's ``content_filters``: entries of
# ``{blocked, source_type: "prompt" | "completion", content_filter_results, content_filter_offsets}``, several per
# side when the text was checked in spans. Its chat endpoint reports the prompt's in ``prompt_filter_results``
# (``[{prompt_index, content_filter_results}]``) and the output's in each choice's ``content_filter_results``.


def prompt_filter_results(response: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The prompt's filter results as Azure's chat endpoint gives them (a chat request is one prompt, index 0)."""
    if "content_filters" not in response:  # OpenAI's Responses have none
        return None
    results = _merged(_filters(response, "prompt"))
    return [{"prompt_index": 0, "content_filter_results": results}] if results is not None else None


def completion_filter_results(response: dict[str, Any]) -> dict[str, Any] | None:
    """The output's filter results, as a chat choice's ``content_filter_results``."""
    return _merged(_filters(response, "completion")) if "content_filters" in response else None


def _filters(response: dict[str, Any], source: str) -> list[dict[str, Any]]:
    return [entry for entry in as_list(response.get("content_filters"))
            if isinstance(entry, dict) and entry.get("source_type") == source]


def _merged(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The results of the spans of one side, in one: per category the last span's, unless an earlier span's was
    filtered or detected (what one span found stays found)."""
    merged: dict[str, Any] | None = None
    for entry in entries:
        results = entry.get("content_filter_results")
        if not isinstance(results, dict):
            continue
        merged = merged if merged is not None else {}
        for category, result in results.items():
            if not _flagged(merged.get(category)):
                merged[category] = result
    return merged


def _flagged(result: Any) -> bool:
    return isinstance(result, dict) and (result.get("filtered") is True or result.get("detected") is True)


def chat_usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt = as_int(usage.get("input_tokens"))
    completion = as_int(usage.get("output_tokens"))
    total = usage.get("total_tokens")
    input_details = as_dict(usage.get("input_tokens_details"))
    prompt_details = {"cached_tokens": as_int(input_details.get("cached_tokens"))}
    if "cache_write_tokens" in input_details:  # reported by newer models: tokens written to the prompt cache
        prompt_details["cache_write_tokens"] = as_int(input_details["cache_write_tokens"])
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": as_int(total) if total is not None else prompt + completion,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": as_int(as_dict(usage.get("output_tokens_details")).get("reasoning_tokens"))
        },
    }


def chat_moderation(moderation: Any) -> dict[str, Any] | None:
    """A Response's moderation (one result or error per side) in chat's shape, where each side's results are a list."""
    if not isinstance(moderation, dict):
        return None
    sides = {side: _moderation_side(moderation.get(side)) for side in ("input", "output")}
    return sides if all(sides.values()) else None


def _moderation_side(result: Any) -> dict[str, Any] | None:
    if not isinstance(result, dict):
        return None
    if result.get("type") == "error":
        return {"type": "error", "code": as_str(result.get("code")) or "moderation_error",
                "message": as_str(result.get("message"))}
    return {"type": "moderation_results", "model": as_str(result.get("model")), "results": [result]}


def chat_annotation(annotation: Any, offset: int = 0) -> dict[str, Any] | None:
    """Responses' flat url_citation -> chat's nested shape; other kinds have no chat form."""
    if not isinstance(annotation, dict) or annotation.get("type") != "url_citation":
        return None
    return {
        "type": "url_citation",
        "url_citation": {
            "start_index": as_int(annotation.get("start_index")) + offset,
            "end_index": as_int(annotation.get("end_index")) + offset,
            "url": str(annotation.get("url", "")),
            "title": str(annotation.get("title") or ""),
        },
    }


def chat_tool_call(item: dict[str, Any]) -> dict[str, Any] | None:
    """A function or custom tool call item -> chat ``tool_calls`` entry (id is the call_id, never ``fc_``)."""
    kind = item.get("type")
    call_id = as_str(item.get("call_id")) or as_str(item.get("id"))
    if kind == "function_call":
        return {"id": call_id, "type": "function",
                "function": {"name": as_str(item.get("name")), "arguments": as_str(item.get("arguments"))}}
    if kind == "custom_tool_call":
        return {"id": call_id, "type": "custom", "custom": {"name": as_str(item.get("name")),
                                                            "input": as_str(item.get("input"))}}
    return None


def reasoning_texts(item: dict[str, Any]) -> list[str]:
    """Summary parts of a reasoning item; raw reasoning text when a server sends no summary."""
    parts = [as_str(part.get("text")) for part in as_list(item.get("summary")) if isinstance(part, dict)]
    if not parts:
        parts = [as_str(part.get("text")) for part in as_list(item.get("content"))
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
    code = error_code(error.get("code"))
    etype = error.get("type") if isinstance(error.get("type"), str) else None
    status = _failure_status(code, etype)
    return ProxyError(status, message, etype or ("invalid_request_error" if status == 400 else "server_error"),
                      error.get("param") if isinstance(error.get("param"), str) else None, code)


def error_code(code: Any) -> str | None:
    """An upstream's error code as chat clients expect it: a string (some gateways send numbers) or None."""
    if isinstance(code, int) and not isinstance(code, bool):
        return str(code)
    return code if isinstance(code, str) else None


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
    for entry in as_list(logprobs):
        if not isinstance(entry, dict):
            continue
        entries.append({**_token_logprob(entry), "top_logprobs": [
            _token_logprob(top) for top in as_list(entry.get("top_logprobs")) if isinstance(top, dict)]})
    return entries


def _token_logprob(entry: dict[str, Any]) -> dict[str, Any]:
    logprob = entry.get("logprob")
    raw = entry.get("bytes")
    return {"token": as_str(entry.get("token")),
            "logprob": logprob if isinstance(logprob, (int, float)) and not isinstance(logprob, bool) else 0.0,
            "bytes": raw if isinstance(raw, list) and all(is_int(b) for b in raw) else None}


_TERMINAL_BY_STATUS = {"completed": "response.completed", "incomplete": "response.incomplete",
                       "failed": "response.failed", "cancelled": "response.failed"}


def terminal_event(response: dict[str, Any]) -> dict[str, Any] | None:
    """The stream event that ends a finished Response object; None while it is still running."""
    status = response.get("status", "completed")
    kind = _TERMINAL_BY_STATUS.get(status) if isinstance(status, str) else "response.completed"
    return {"type": kind, "response": response} if kind else None
