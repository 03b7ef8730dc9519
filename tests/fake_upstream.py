"""A fake OpenAI upstream that integration tests run on loopback.

It speaks the Responses API the way api.openai.com does (event names, fields
and order copied from recorded traffic, checked against the OpenAPI spec) and
answers the pass-through endpoints the proxy forwards untouched. Tests script
what the next requests get (`FakeUpstream.script`) and inspect what arrived
(`FakeUpstream.requests`, `cancelled`, `disconnects`).

Two places where real traffic and the spec disagree are answered with both
shapes so either kind of client check holds:
- the `error` stream event carries the spec's top-level `code`/`message`/
  `param` and, like the live API, the same data nested under `error` (which
  makes the official SDK raise `APIError`, as it does against OpenAI);
- `response.function_call_arguments.done` carries `name` (spec) although the
  live API has so far omitted it.
Where the spec is stricter than the live API (`user: null`, `usage: null`
while a response runs, `description: null` in a json_schema text format) the
fake sends what the live API sends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import json
import random
import re
import secrets
import socket
import string
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator
from urllib.parse import parse_qsl

import uvicorn

# ---------------------------------------------------------------- catalogue

# Aliases the API resolves to dated snapshots in the `model` field it returns.
MODEL_SNAPSHOTS = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-5-nano": "gpt-5-nano-2025-08-07",
    "gpt-5-pro": "gpt-5-pro-2025-10-06",
    "o1-pro": "o1-pro-2025-03-19",
    "o3": "o3-2025-04-16",
    "o3-pro": "o3-pro-2025-06-10",
    "o4-mini": "o4-mini-2025-04-16",
}

RESPONSES_ONLY_MODELS = frozenset({
    "o1-pro", "o3-pro", "gpt-5-pro", "codex-mini-latest", "gpt-5-codex",
    "gpt-5.1-codex", "gpt-5.1-codex-max", "o3-deep-research", "o4-mini-deep-research",
    "computer-use-preview",
})

LISTED_MODELS = (
    "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-5", "gpt-5-mini", "gpt-5-pro", "o3", "o3-pro",
    "o4-mini", "codex-mini-latest", "text-embedding-3-small", "whisper-1", "tts-1",
)

# What POST /v1/audio/speech returns: fixed pseudo-random bytes tests can compare with.
SPEECH_BYTES = random.Random(1234).randbytes(300_000)
SPEECH_CHUNK = 32 * 1024

CHAT_ONLY_IN_RESPONSES = "This model is only supported in v1/responses and not in v1/chat/completions."
JSON_PARSE_ERROR = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
    "valid JSON. If you have trouble figuring out how to fix this, please contact us through our "
    "help center at help.openai.com.)"
)
SERVER_ERROR = (
    "The server had an error processing your request. Sorry about that! You can retry your request, "
    "or contact us through our help center at help.openai.com if you keep seeing this error."
)

# Default answers echo at most this much of the user's text: a megabyte prompt gets a short answer.
ECHO_LIMIT = 1000
_ALNUM = string.ascii_letters + string.digits
_TERMINAL_EVENT = {
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "failed": "response.failed",
}


def _hex_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(25)}"


def _random_text(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def _obfuscation(delta: str) -> str:
    """Padding the API adds to deltas so that lengths (mod 16) leak nothing."""
    return _random_text(-len(delta) % 16)


def _given(mapping: dict, key: str, default: Any) -> Any:
    value = mapping.get(key)
    return default if value is None else value


def _is_reasoning_model(model: str) -> bool:
    return re.match(r"(o\d|gpt-5|codex)", model) is not None


# ---------------------------------------------------------------- item builders


def message_item(text: str = "", annotations: Any = (), refusal: str | None = None) -> dict:
    """An assistant message; with `refusal` (and no text) it holds just a refusal part."""
    content = []
    if text or refusal is None:
        content.append({"type": "output_text", "annotations": list(annotations), "logprobs": [], "text": text})
    if refusal is not None:
        content.append({"type": "refusal", "refusal": refusal})
    return {"id": _hex_id("msg"), "type": "message", "status": "completed", "content": content,
            "role": "assistant"}


def url_citation(url: str, title: str, start_index: int, end_index: int) -> dict:
    """A url_citation annotation as web search answers carry them."""
    return {"type": "url_citation", "end_index": end_index, "start_index": start_index, "title": title,
            "url": url}


def reasoning_item(summary_parts: Any = (), encrypted_content: str | None = None) -> dict:
    item: dict[str, Any] = {"id": _hex_id("rs"), "type": "reasoning"}
    if encrypted_content is not None:
        item["encrypted_content"] = encrypted_content
    item["summary"] = [{"type": "summary_text", "text": text} for text in summary_parts]
    return item


def function_call_item(name: str, arguments: str | dict, call_id: str | None = None) -> dict:
    """A function call; dict arguments are serialised compactly, as the model writes them."""
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, separators=(",", ":"))
    return {"id": _hex_id("fc"), "type": "function_call", "status": "completed", "arguments": arguments,
            "call_id": call_id or f"call_{_random_text(24)}", "name": name}


def custom_tool_call_item(name: str, input: str, call_id: str | None = None) -> dict:
    """A call of a custom (freeform) tool such as Codex's apply_patch: its input is free text."""
    return {"id": _hex_id("ctc"), "type": "custom_tool_call", "status": "completed",
            "call_id": call_id or f"call_{_random_text(24)}", "input": input, "name": name}


def web_search_call_item(query: str) -> dict:
    return {"id": _hex_id("ws"), "type": "web_search_call", "status": "completed",
            "action": {"type": "search", "queries": [query], "query": query}}


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


# ---------------------------------------------------------------- Response objects


def _echo_reasoning(model: str, requested: dict | None) -> dict:
    if not _is_reasoning_model(model):
        return {"effort": None, "summary": None}
    requested = requested or {}
    summary = requested.get("summary")
    # The API reports the summary style it picked; "auto" comes back as "detailed".
    return {"effort": _given(requested, "effort", "medium"), "summary": "detailed" if summary == "auto" else summary}


def _echo_text(text: dict | None) -> dict:
    text = text or {}
    fmt = dict(_given(text, "format", {"type": "text"}))
    if fmt.get("type") == "json_schema":
        fmt = {"type": "json_schema", "description": fmt.get("description"), "name": fmt.get("name"),
               "schema": fmt.get("schema"), "strict": _given(fmt, "strict", False)}
    return {"format": fmt, "verbosity": _given(text, "verbosity", "medium")}


def _echo_tool(tool: dict) -> dict:
    kind = tool.get("type")
    if kind == "function":
        return {"type": "function", "description": tool.get("description"), "name": tool.get("name"),
                "parameters": tool.get("parameters"), "strict": _given(tool, "strict", True)}
    if kind in ("web_search", "web_search_preview"):
        location = {"type": "approximate", "city": None, "country": "US", "region": None, "timezone": None}
        return {"type": kind, "filters": None, "search_context_size": "medium",
                **tool, "user_location": {**location, **(tool.get("user_location") or {})}}
    return dict(tool)


def _with_encrypted_reasoning(item: dict, include: list) -> dict:
    """Reasoning items carry encrypted_content when the request includes it."""
    if item.get("type") != "reasoning" or "encrypted_content" in item \
            or "reasoning.encrypted_content" not in include:
        return item
    blob = "gAAAAAB" + base64.urlsafe_b64encode(secrets.token_bytes(96)).decode()
    return {"id": item["id"], "type": "reasoning", "encrypted_content": blob,
            **{k: v for k, v in item.items() if k not in ("id", "type")}}


def _token_logprobs(text: str, top: int) -> list[dict]:
    """Per-token logprobs for a text, shaped as the API returns them (one token per word here)."""
    entries = []
    for rank, token in enumerate(re.findall(r"\S+\s*|\s+", text)):
        logprob = -0.01 * (rank % 7 + 1)
        alternatives = [{"token": token, "logprob": logprob, "bytes": list(token.encode())}] + [
            {"token": f"alt{n}", "logprob": logprob - n, "bytes": list(f"alt{n}".encode())} for n in range(1, top)]
        entries.append({"token": token, "logprob": logprob, "bytes": list(token.encode()),
                        "top_logprobs": alternatives[:top]})
    return entries


def _with_logprobs(item: dict, include: list, top: int) -> dict:
    """Output text carries token logprobs when the request includes them."""
    if item.get("type") != "message" or "message.output_text.logprobs" not in include:
        return item
    for part in item["content"]:
        if part["type"] == "output_text" and not part.get("logprobs"):
            part["logprobs"] = _token_logprobs(part["text"], top)
    return item


def _item_text(item: dict) -> str:
    if item.get("type") == "message":
        return "".join(part.get("text") or part.get("refusal") or "" for part in item.get("content", []))
    if item.get("type") == "function_call":
        return item.get("arguments", "")
    if item.get("type") == "custom_tool_call":
        return item.get("input", "")
    return ""


def _complete_usage(usage: dict) -> dict:
    filled = {"input_tokens": 0, "input_tokens_details": {"cache_write_tokens": 0, "cached_tokens": 0}, "output_tokens": 0,
              "output_tokens_details": {"reasoning_tokens": 0}, **usage}
    filled.setdefault("total_tokens", filled["input_tokens"] + filled["output_tokens"])
    return filled


def _estimate_usage(request: dict, output: list[dict]) -> dict:
    prompt = json.dumps(request.get("input", ""), ensure_ascii=False) + (request.get("instructions") or "")
    reasoning = sum(64 + sum(len(p["text"]) for p in item.get("summary", [])) // 4
                    for item in output if item.get("type") == "reasoning")
    visible = sum(len(_item_text(item)) // 4 + 1 for item in output if item.get("type") != "reasoning")
    return _complete_usage({"input_tokens": 7 + len(prompt) // 4, "output_tokens": visible + reasoning,
                            "output_tokens_details": {"reasoning_tokens": reasoning}})


def build_response(request: dict | None, output: list[dict], status: str = "completed",
                   usage: dict | None = None, incomplete_details: dict | None = None,
                   error: dict | None = None, model: str | None = None) -> dict:
    """A complete Response object echoing the request's parameters as the API does.

    Usage is estimated when not given (none for failed and unfinished
    responses); an incomplete response defaults to the max_output_tokens
    reason and marks its last message incomplete; a failed one defaults to a
    server_error.
    """
    request = request or {}
    requested_model = _given(request, "model", "gpt-4o")
    model = model or MODEL_SNAPSHOTS.get(requested_model, requested_model)
    include = request.get("include") or []
    output = [_with_logprobs(_with_encrypted_reasoning(copy.deepcopy(item), include), include,
                             request.get("top_logprobs") or 0) for item in output]
    if status == "incomplete":
        incomplete_details = incomplete_details or {"reason": "max_output_tokens"}
        if output and output[-1].get("type") == "message":
            output[-1]["status"] = "incomplete"
    if status == "failed":
        error = error or {"code": "server_error", "message": SERVER_ERROR}
    if usage is not None:
        usage = _complete_usage(usage)
    elif status in ("completed", "incomplete"):
        usage = _estimate_usage(request, output)
    tier = request.get("service_tier")
    now = int(time.time())
    return {
        "id": _hex_id("resp"),
        "object": "response",
        "created_at": now,
        "status": status,
        "background": bool(request.get("background")),
        "billing": {"payer": "developer"},
        "completed_at": now if status == "completed" else None,
        "error": error,
        "frequency_penalty": 0.0,
        "incomplete_details": incomplete_details,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"),
        "model": model,
        "moderation": _moderation(request.get("moderation")) if status in ("completed", "incomplete") else None,
        "output": output,
        "parallel_tool_calls": _given(request, "parallel_tool_calls", True),
        "presence_penalty": 0.0,
        "previous_response_id": request.get("previous_response_id"),
        "prompt_cache_key": request.get("prompt_cache_key"),
        "prompt_cache_retention": request.get("prompt_cache_retention"),
        "reasoning": _echo_reasoning(model, request.get("reasoning")),
        "safety_identifier": request.get("safety_identifier"),
        # The answer names the tier that served it; "auto" resolves to "default".
        "service_tier": "default" if tier in (None, "auto") else tier,
        "store": _given(request, "store", True),
        "temperature": float(_given(request, "temperature", 1.0)),
        "text": _echo_text(request.get("text")),
        "tool_choice": _given(request, "tool_choice", "auto"),
        "tools": [_echo_tool(tool) for tool in request.get("tools") or []],
        "top_logprobs": _given(request, "top_logprobs", 0),
        "top_p": float(_given(request, "top_p", 1.0)),
        "truncation": _given(request, "truncation", "disabled"),
        "usage": usage,
        "user": request.get("user"),
        "metadata": _given(request, "metadata", {}),
    }


# The categories of omni-moderation-latest, as a recorded moderated chat stream lists them.
MODERATION_CATEGORIES = ("harassment", "harassment/threatening", "sexual", "hate", "hate/threatening", "illicit",
                         "illicit/violent", "self-harm/intent", "self-harm/instructions", "self-harm", "sexual/minors",
                         "violence", "violence/graphic")


def _moderation(requested: dict | None) -> dict | None:
    """Results for the input and the output when moderation was asked for: nothing flagged."""
    if not requested:
        return None
    result = {"type": "moderation_result", "model": requested["model"], "flagged": False,
              "categories": dict.fromkeys(MODERATION_CATEGORIES, False),
              "category_scores": dict.fromkeys(MODERATION_CATEGORIES, 1e-05),
              "category_applied_input_types": {category: ["text"] for category in MODERATION_CATEGORIES}}
    return {"input": result, "output": copy.deepcopy(result)}


def _snapshot(response: dict, status: str) -> dict:
    """The response as reported before it finished (lifecycle events, background polls)."""
    return {**response, "status": status, "completed_at": None, "error": None, "incomplete_details": None,
            "output": [], "usage": None, "moderation": None,
            "service_tier": "auto" if response["service_tier"] == "default" else response["service_tier"]}


# ---------------------------------------------------------------- stream events


def _pieces(text: str, size: int, spans: list[tuple[int, int]] = ()) -> list[str]:
    """Split text into deltas of `size` characters, never cutting inside a span."""
    cuts = set(range(0, len(text), max(1, size))) | {len(text)}
    for start, end in spans:
        cuts |= {start, end}
    cuts = sorted(c for c in cuts if 0 <= c <= len(text)
                  and not any(start < c < end for start, end in spans))
    return [text[a:b] for a, b in zip(cuts, cuts[1:])]


def _annotation_end(annotation: dict, text: str) -> int:
    return annotation.get("end_index", annotation.get("index", len(text)))


class _EventWriter:
    """Collects events, numbering them in emission order."""

    def __init__(self, obfuscate: bool) -> None:
        self.events: list[dict] = []
        self.obfuscate = obfuscate

    def emit(self, type_: str, **fields: Any) -> None:
        self.events.append({"type": type_, **fields, "sequence_number": len(self.events)})

    def delta(self, type_: str, delta: str, **fields: Any) -> None:
        extra = {"obfuscation": _obfuscation(delta)} if self.obfuscate else {}
        self.emit(type_, delta=delta, **fields, **extra)


def _message_events(w: _EventWriter, index: int, item: dict, size: int) -> None:
    w.emit("response.output_item.added", item={**item, "status": "in_progress", "content": []}, output_index=index)
    for ci, part in enumerate(item["content"]):
        where = {"content_index": ci, "item_id": item["id"], "output_index": index}
        if part["type"] == "refusal":
            w.emit("response.content_part.added", **where, part={"type": "refusal", "refusal": ""})
            for piece in _pieces(part["refusal"], size):
                w.emit("response.refusal.delta", **where, delta=piece)
            w.emit("response.refusal.done", **where, refusal=part["refusal"])
        else:
            text, annotations = part["text"], part.get("annotations", [])
            w.emit("response.content_part.added", **where,
                   part={"type": "output_text", "annotations": [], "logprobs": [], "text": ""})
            spans = [(a["start_index"], a["end_index"]) for a in annotations if "start_index" in a]
            written, pending = 0, 0
            tokens = part.get("logprobs") or []
            pieces = [entry["token"] for entry in tokens] if tokens else _pieces(text, size, spans)
            for n, piece in enumerate(pieces):
                w.delta("response.output_text.delta", piece, **where, logprobs=tokens[n:n + 1])
                written += len(piece)
                # Each annotation follows the delta that completes its span.
                while pending < len(annotations) and _annotation_end(annotations[pending], text) <= written:
                    w.emit("response.output_text.annotation.added", **where, annotation_index=pending,
                           annotation=annotations[pending])
                    pending += 1
            for ai in range(pending, len(annotations)):
                w.emit("response.output_text.annotation.added", **where, annotation_index=ai,
                       annotation=annotations[ai])
            w.emit("response.output_text.done", **where, logprobs=tokens, text=text)
        w.emit("response.content_part.done", **where, part=part)


def _reasoning_events(w: _EventWriter, index: int, item: dict, size: int) -> None:
    w.emit("response.output_item.added", item={**item, "summary": []}, output_index=index)
    where = {"item_id": item["id"], "output_index": index}
    for si, part in enumerate(item.get("summary", [])):
        w.emit("response.reasoning_summary_part.added", **where,
               part={"type": "summary_text", "text": ""}, summary_index=si)
        for piece in _pieces(part["text"], size):
            w.delta("response.reasoning_summary_text.delta", piece, **where, summary_index=si)
        w.emit("response.reasoning_summary_text.done", **where, summary_index=si, text=part["text"])
        w.emit("response.reasoning_summary_part.done", **where, part=part, summary_index=si)


def _function_call_events(w: _EventWriter, index: int, item: dict, size: int) -> None:
    w.emit("response.output_item.added", item={**item, "status": "in_progress", "arguments": ""},
           output_index=index)
    where = {"item_id": item["id"], "output_index": index}
    for piece in _pieces(item["arguments"], size):
        w.delta("response.function_call_arguments.delta", piece, **where)
    w.emit("response.function_call_arguments.done", **where, name=item["name"], arguments=item["arguments"])


def _custom_tool_call_events(w: _EventWriter, index: int, item: dict, size: int) -> None:
    w.emit("response.output_item.added", item={**item, "status": "in_progress", "input": ""}, output_index=index)
    where = {"item_id": item["id"], "output_index": index}
    for piece in _pieces(item["input"], size):
        w.delta("response.custom_tool_call_input.delta", piece, **where)
    w.emit("response.custom_tool_call_input.done", **where, input=item["input"])


def _web_search_events(w: _EventWriter, index: int, item: dict, size: int) -> None:
    action = {"type": item.get("action", {}).get("type", "search")}
    w.emit("response.output_item.added",
           item={"id": item["id"], "type": "web_search_call", "status": "in_progress", "action": action},
           output_index=index)
    for phase in ("in_progress", "searching", "completed"):
        w.emit(f"response.web_search_call.{phase}", item_id=item["id"], output_index=index)


_ITEM_EVENTS = {
    "message": _message_events,
    "reasoning": _reasoning_events,
    "function_call": _function_call_events,
    "custom_tool_call": _custom_tool_call_events,
    "web_search_call": _web_search_events,
}


def stream_events(response: dict, text_chunk: int = 8) -> list[dict]:
    """The event sequence the API streams for a finished `response`.

    Background responses start queued (response.created + response.queued)
    and, as recorded from the live API, carry no `obfuscation` on deltas.
    Other item types than those built above are announced and finished
    without intermediate events.
    """
    final = {k: v for k, v in response.items() if k != "billing"}  # billing only appears in JSON answers
    if final["status"] not in _TERMINAL_EVENT:
        raise ValueError(f"no event ends a stream with status {final['status']!r}")
    w = _EventWriter(obfuscate=not final["background"])
    if final["background"]:
        w.emit("response.created", response=_snapshot(final, "queued"))
        w.emit("response.queued", response=_snapshot(final, "queued"))
    else:
        w.emit("response.created", response=_snapshot(final, "in_progress"))
    w.emit("response.in_progress", response=_snapshot(final, "in_progress"))
    for index, item in enumerate(final["output"]):
        events_for = _ITEM_EVENTS.get(item["type"])
        if events_for is None:
            w.emit("response.output_item.added", item=item, output_index=index)
        else:
            events_for(w, index, item, text_chunk)
        w.emit("response.output_item.done", item=item, output_index=index)
    if final["status"] == "failed":
        error = final["error"]
        detail = {"type": error.get("type", error.get("code")), "code": error.get("code"),
                  "message": error["message"], "param": error.get("param")}
        w.emit("error", code=detail["code"], message=detail["message"], param=detail["param"], error=detail)
    w.emit(_TERMINAL_EVENT[final["status"]], response=final)
    return w.events


def sse_bytes(event: dict) -> bytes:
    """One SSE frame as the API writes it: `event: <type>` and a compact `data:` line."""
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    prefix = f"event: {event['type']}\n" if "type" in event else ""
    return f"{prefix}data: {data}\n\n".encode()


def _numbered(events: list[dict]) -> list[dict]:
    """Events with `sequence_number` filled in where missing, continuing the count."""
    out, next_number = [], 0
    for event in events:
        if "sequence_number" not in event:
            event = {**event, "sequence_number": next_number}
        next_number = event["sequence_number"] + 1
        out.append(event)
    return out


# ---------------------------------------------------------------- behaviours


@dataclass
class Reply:
    """A plain HTTP answer, e.g. an error body (`json=error_body(...)`)."""
    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Stream:
    """An SSE answer from explicit events.

    `delay` seconds pass between events; `heartbeat_pause` adds a silence
    after the first two events (where reasoning models go quiet while they
    think); `first_pause` is a silence after the headers, before the first
    event (an upstream slow to begin); `cut_after=N` closes the connection
    after N frames with no final chunk, so the client sees a broken body
    rather than a clean end; `raw` byte strings are written as-is after the
    events (see `sse_bytes`).
    `content_type` and `headers` make it another kind of streamed body (a
    `content-length` header frames it by length instead of in chunks).
    """
    events: list[dict] = field(default_factory=list)
    delay: float = 0.0
    cut_after: int | None = None
    raw: list[bytes] | None = None
    heartbeat_pause: float = 0.0
    first_pause: float = 0.0
    content_type: str = "text/event-stream; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Hang:
    """Accept the request, send nothing for `seconds`, then close the connection."""
    seconds: float


@dataclass
class Respond:
    """A realistic Response built from output items: JSON, or events for `stream: true`."""
    output: list[dict] = field(default_factory=list)
    status: str = "completed"
    usage: dict | None = None
    incomplete_details: dict | None = None
    error: dict | None = None
    model: str | None = None


Behaviour = Reply | Stream | Hang | Respond


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    raw_path: str = ""  # as sent, still percent-encoded


@dataclass
class _Stored:
    """A response kept for GET /v1/responses/{id}, cancel and stream resumption."""
    final: dict
    events: list[dict] | None = None
    polls: int = 0
    done: bool = False
    cancelled: bool = False
    started: float | None = None  # when a scripted stream began: a resumed stream replays it at its own pace
    delay: float = 0.0


def _last_user_text(items: Any) -> str:
    if isinstance(items, str):
        return items
    for item in reversed(items or []):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return "\n".join(part.get("text", "") for part in content or []
                             if part.get("type") in ("input_text", "text"))
    return ""


def _default_output(request: dict) -> list[dict]:
    text = _last_user_text(request.get("input"))[:ECHO_LIMIT]
    summary = []
    if (request.get("reasoning") or {}).get("summary"):
        summary = [f"**Answering the user**\n\nThe user wrote {text!r}, so I will echo it back."]
    return [reasoning_item(summary), message_item(f"Echo: {text}")]


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], list[dict]]:
    """Form fields and files of a multipart/form-data body, byte-exact."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        return {}, []
    fields, files = {}, []
    for part in body.split(b"--" + match.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        head_text = head.decode("utf-8", "replace")
        name = re.search(r'\bname="([^"]*)"', head_text)
        filename = re.search(r'\bfilename="([^"]*)"', head_text)
        part_type = re.search(r"(?im)^content-type:\s*(.+)$", head_text)
        if filename:
            files.append({"field": name.group(1) if name else None, "filename": filename.group(1),
                          "content_type": part_type.group(1).strip() if part_type else None,
                          "size": len(content), "sha256": hashlib.sha256(content).hexdigest()})
        elif name:
            fields[name.group(1)] = content.decode("utf-8", "replace")
    return fields, files


def _embedding(text: str, dimensions: int) -> list[float]:
    seed = hashlib.sha256(text.encode()).digest()
    values = [random.Random(seed + bytes([i])).uniform(-1, 1) for i in range(dimensions)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


def _chat_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "\n".join(p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"
                             and isinstance(p.get("text"), str)) if isinstance(content, list) else ""
    return ""


# ---------------------------------------------------------------- one exchange


class _Exchange:
    """One request/response on the wire, watching for the client going away."""

    def __init__(self, fake: FakeUpstream, receive: Any, send: Any) -> None:
        self.fake, self.receive, self.send = fake, receive, send
        self.gone: asyncio.Future | None = None

    async def _until_disconnect(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass

    def watch(self) -> None:
        self.gone = asyncio.ensure_future(self._until_disconnect())

    def unwatch(self) -> None:
        if self.gone is not None:
            self.gone.cancel()

    async def must_stop(self, seconds: float) -> bool:
        """Wait `seconds`; True (after counting a disconnect) if the client left or the server stops."""
        stop = asyncio.ensure_future(self.fake._stopping.wait())
        await asyncio.wait({self.gone, stop}, timeout=max(seconds, 0), return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if self.gone.done():
            self.fake._count_disconnect()
            return True
        if self.fake._stopping.is_set():
            await self.drop()
            return True
        return False

    async def drop(self) -> None:
        """Close the TCP connection mid-exchange (no final chunk, no response if none started).

        ASGI cannot express this, so it reaches uvicorn's transport through its
        `send`, then waits for uvicorn to register the disconnect so it does not
        report an unfinished response.
        """
        self.send.__self__.transport.close()
        await self.gone

    async def start(self, status: int, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.fake.statuses.append(status)
        answered = len(self.fake.statuses)
        headers = {"content-type": content_type, "x-request-id": f"req_{secrets.token_hex(16)}",
                   "openai-version": "2020-10-01", "openai-processing-ms": str(random.randint(40, 400)),
                   "x-ratelimit-limit-requests": "5000", "x-ratelimit-remaining-requests": str(5000 - answered),
                   "x-ratelimit-reset-requests": "12ms", "x-ratelimit-limit-tokens": "800000",
                   "x-ratelimit-remaining-tokens": str(800000 - 37 * answered), "x-ratelimit-reset-tokens": "2ms",
                   **{k.lower(): v for k, v in (extra or {}).items()}}
        self.fake.request_ids.append(headers["x-request-id"])
        self.fake.answer_headers.append(headers)
        await self.send({"type": "http.response.start", "status": status,
                         "headers": [(k.encode(), v.encode()) for k, v in headers.items()]})

    async def reply(self, status: int, body: bytes, content_type: str = "application/json",
                    headers: dict[str, str] | None = None) -> None:
        await self.start(status, content_type, headers)
        await self.send({"type": "http.response.body", "body": body})

    async def json(self, payload: Any, status: int = 200) -> None:
        await self.reply(status, json.dumps(payload, indent=2).encode())

    async def error(self, status: int, message: str, **details: Any) -> None:
        await self.json(error_body(message, **details), status)

    async def chunks(self, chunks: list[bytes], content_type: str, *, delay: float = 0.0,
                     heartbeat_pause: float = 0.0, first_pause: float = 0.0, cut_after: int | None = None,
                     headers: dict[str, str] | None = None) -> bool:
        """Write `chunks` as one streamed body; True if every chunk went out and the body ended."""
        await self.start(200, content_type, headers)
        self.watch()
        try:
            limit = len(chunks) if cut_after is None else min(cut_after, len(chunks))
            for n, chunk in enumerate(chunks[:limit]):
                pause = (delay if n else first_pause) + (heartbeat_pause if n == 2 else 0.0)
                if await self.must_stop(pause):
                    return False
                await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
                self.fake.streamed_bytes += len(chunk)
            if cut_after is not None:
                await self.drop()
                return False
            if await self.must_stop(heartbeat_pause if len(chunks) < 3 else 0.0):
                return False
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})
            return True
        finally:
            self.unwatch()

    async def hang(self, seconds: float) -> None:
        self.watch()
        try:
            if not await self.must_stop(seconds):
                await self.drop()
        finally:
            self.unwatch()


# ---------------------------------------------------------------- the server


class FakeUpstream:
    """The fake API as an ASGI app plus what tests inspect and script.

    Scriptable endpoints (POST /v1/responses, GET /v1/responses/{id},
    POST /v1/chat/completions, GET /v1/models) take the next scripted behaviour, else answer
    by default: an echo Response (a reasoning item, summarised when the
    request asks for a summary, then `Echo: <last user text>`), the stored
    response, or a chat completion echo. Every request is recorded first.

    `disconnects` counts answers (streams and `Hang`s) whose client went away
    before the answer ended; connections the fake cuts itself do not count.
    `active` is the number of requests being answered right now (an upstream
    connection a proxy left open shows here), `streamed_bytes` the body
    bytes of streamed answers written so far (backpressure shows as a pause),
    `statuses` the status of every answer (500 for one the fake crashed in)
    and `request_ids` its `x-request-id`, as the API names each answer.
    """

    def __init__(self) -> None:
        self.base_url = ""
        # The answer to a Responses request the script leaves to the fake (None: its echo), for a demo.
        self.answer: Callable[[dict], Respond | None] | None = None
        self._disconnected = threading.Condition()
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.active = 0
        self.reset()

    # ------------------------------------------------ test-facing API

    def reset(self) -> None:
        self.requests: list[Recorded] = []
        self.cancelled: list[str] = []
        self.disconnects = 0
        self.streamed_bytes = 0
        self.statuses: list[int] = []  # of every answer, in order
        self.request_ids: list[str] = []  # the x-request-id of every answer, in order
        self.answer_headers: list[dict[str, str]] = []  # the headers of every answer, in order
        self.responses_only: set[str] = set(RESPONSES_ONLY_MODELS)
        self.background_polls = 2  # GETs of a background response until it reports its final state
        self._script: deque[Behaviour] = deque()
        self._stored: dict[str, _Stored] = {}

    def script(self, *behaviours: Behaviour) -> None:
        self._script.extend(behaviours)

    def requests_to(self, path_suffix: str, method: str = "POST") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    def wait_for_disconnect(self, timeout: float = 5.0, count: int = 1) -> Awaitable[None] | None:
        """Wait until `disconnects >= count`, raising TimeoutError after `timeout` seconds.

        Called from a thread without a running event loop it blocks; called
        inside one (async tests) it returns an awaitable, so the loop that
        may be running the proxy is never blocked.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            with self._disconnected:
                if not self._disconnected.wait_for(lambda: self.disconnects >= count, timeout):
                    raise TimeoutError(f"{self.disconnects} disconnect(s) after {timeout}s, wanted {count}")
            return None
        return self._poll_disconnects(timeout, count)

    async def _poll_disconnects(self, timeout: float, count: int) -> None:
        deadline = time.monotonic() + timeout
        while self.disconnects < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.disconnects} disconnect(s) after {timeout}s, wanted {count}")
            await asyncio.sleep(0.01)

    def _count_disconnect(self) -> None:
        with self._disconnected:
            self.disconnects += 1
            self._disconnected.notify_all()

    def _stop(self) -> None:
        """Make in-flight streams and hangs end now so the server can shut down."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    # ------------------------------------------------ ASGI entry

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self._loop = asyncio.get_running_loop()
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:
            name = key.decode("latin-1").lower()
            headers[name] = f"{headers[name]}, {value.decode('latin-1')}" if name in headers \
                else value.decode("latin-1")
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        record = Recorded(scope["method"], scope["path"],
                          dict(parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True)),
                          headers, bytes(body), parsed, scope.get("raw_path", b"").decode("latin-1"))
        self.requests.append(record)
        self.active += 1
        try:
            await self._route(_Exchange(self, receive, send), record)
        except Exception:
            self.statuses.append(500)  # uvicorn answers a crashed exchange with a 500
            raise
        finally:
            self.active -= 1

    async def _route(self, ex: _Exchange, r: Recorded) -> None:
        method, path = r.method, r.path
        one = re.fullmatch(r"/v1/responses/([^/]+)", path)
        cancel = re.fullmatch(r"/v1/responses/([^/]+)/cancel", path)
        if (method, path) == ("POST", "/v1/responses"):
            await self._scripted(ex, r, self._create_response)
        elif method == "GET" and one:
            await self._scripted(ex, r, self._retrieve_response)
        elif method == "DELETE" and one:
            await self._delete_response(ex, one.group(1))
        elif method == "POST" and cancel:
            await self._cancel_response(ex, cancel.group(1))
        elif (method, path) == ("POST", "/v1/chat/completions"):
            model = r.json.get("model") if isinstance(r.json, dict) else None
            if model in self.responses_only:
                await ex.error(404, CHAT_ONLY_IN_RESPONSES, param="model")
            else:
                await self._scripted(ex, r, self._chat_completion)
        elif (method, path) == ("GET", "/v1/models"):
            await self._scripted(ex, r, self._models)
        elif (method, path) == ("POST", "/v1/embeddings"):
            await self._embeddings(ex, r)
        elif (method, path) == ("POST", "/v1/audio/transcriptions"):
            await self._transcription(ex, r)
        elif (method, path) == ("POST", "/v1/files"):
            await self._file_upload(ex, r)
        elif (method, path) == ("POST", "/v1/audio/speech"):
            await ex.chunks([SPEECH_BYTES[i:i + SPEECH_CHUNK] for i in range(0, len(SPEECH_BYTES), SPEECH_CHUNK)],
                            "audio/mpeg")
        else:
            await ex.error(404, f"Invalid URL ({method} {path})")

    async def _scripted(self, ex: _Exchange, r: Recorded, default: Any) -> None:
        behaviour = self._script.popleft() if self._script else None
        if isinstance(behaviour, Reply):
            body = json.dumps(behaviour.json, indent=2).encode() if behaviour.json is not None else behaviour.body
            await ex.reply(behaviour.status, body, behaviour.content_type, behaviour.headers)
        elif isinstance(behaviour, Stream):
            events = _numbered(behaviour.events)
            if r.path == "/v1/responses" and isinstance(r.json, dict) and r.json.get("background"):
                self._remember_stream(events, behaviour.delay, behaviour.first_pause)
            await ex.chunks([sse_bytes(e) for e in events] + list(behaviour.raw or []), behaviour.content_type,
                            delay=behaviour.delay, heartbeat_pause=behaviour.heartbeat_pause,
                            first_pause=behaviour.first_pause, cut_after=behaviour.cut_after,
                            headers=behaviour.headers)
        elif isinstance(behaviour, Hang):
            await ex.hang(behaviour.seconds)
        else:
            await default(ex, r, behaviour)

    async def _models(self, ex: _Exchange, r: Recorded, behaviour: Any) -> None:
        await ex.json({"object": "list", "data": [
            {"id": m, "object": "model", "created": 1715367049, "owned_by": "system"} for m in LISTED_MODELS]})

    # ------------------------------------------------ Responses API

    async def _send_events(self, ex: _Exchange, events: list[dict], obfuscation: bool = True) -> bool:
        if not obfuscation:
            events = [{k: v for k, v in e.items() if k != "obfuscation"} for e in events]
        return await ex.chunks([sse_bytes(e) for e in events], "text/event-stream; charset=utf-8")

    async def _create_response(self, ex: _Exchange, r: Recorded, respond: Respond | None) -> None:
        if not isinstance(r.json, dict):
            await ex.error(400, JSON_PARSE_ERROR)
            return
        request = r.json
        respond = respond or (self.answer(request) if self.answer else None) or Respond(output=_default_output(request))
        response = self.annotated(request, build_response(request, respond.output, respond.status, respond.usage,
                                                          respond.incomplete_details, respond.error, respond.model))
        background = response["background"]
        stored = _Stored(final=response, done=not background)
        if response["store"] or background:
            self._stored[response["id"]] = stored
        if request.get("stream"):
            stored.events = stream_events(response)
            obfuscation = (request.get("stream_options") or {}).get("include_obfuscation") is not False
            if await self._send_events(ex, stored.events, obfuscation):
                stored.done = True
        elif background:
            await ex.json(self._view(stored) | {"status": "queued"})
        else:
            await ex.json(response)

    def annotated(self, request: dict, response: dict) -> dict:
        """A created Response as this API gives it (a subclass adds what its API adds)."""
        return response

    def _remember_stream(self, events: list[dict], delay: float, first_pause: float) -> None:
        """Keep a scripted background stream so GET ?stream=true can resume it: what the run has produced at
        once, the rest as the run produces it (``delay`` apart), as the API replays a background run."""
        snapshots = [e["response"] for e in events if isinstance(e.get("response"), dict) and "id" in e["response"]]
        if snapshots:
            self._stored[snapshots[0]["id"]] = _Stored(final=snapshots[-1], events=events,
                                                      done=snapshots[-1].get("status") in _TERMINAL_EVENT,
                                                      started=time.monotonic() + first_pause, delay=delay)

    def _view(self, stored: _Stored) -> dict:
        final = stored.final
        if stored.cancelled:
            return _snapshot(final, "cancelled")
        if not stored.done:
            return _snapshot(final, "in_progress")
        return final

    async def _retrieve_response(self, ex: _Exchange, r: Recorded, respond: Respond | None) -> None:
        response_id = r.path.rsplit("/", 1)[1]
        streaming = r.query.get("stream") == "true"
        after = int(r.query.get("starting_after") or -1)
        obfuscation = r.query.get("include_obfuscation") != "false"
        if respond is not None:
            response = build_response({}, respond.output, respond.status, respond.usage,
                                      respond.incomplete_details, respond.error, respond.model) | {"id": response_id}
            if streaming:
                events = [e for e in stream_events(response) if e["sequence_number"] > after]
                await self._send_events(ex, events, obfuscation)
            else:
                await ex.json(response)
            return
        stored = self._stored.get(response_id)
        if stored is None:
            await ex.error(404, f"Response with id '{response_id}' not found.")
        elif streaming:
            events = stored.events or stream_events(stored.final)
            if stored.started is not None and stored.delay:
                produced = max(0, int((time.monotonic() - stored.started) / stored.delay) + 1)
                await ex.chunks([b"".join(sse_bytes(e) for e in events[:produced] if e["sequence_number"] > after)]
                                + [sse_bytes(e) for e in events[produced:] if e["sequence_number"] > after],
                                "text/event-stream; charset=utf-8", delay=stored.delay)
                return
            await self._send_events(ex, [e for e in events if e["sequence_number"] > after], obfuscation)
        else:
            stored.polls += 1
            if stored.polls >= self.background_polls:
                stored.done = True
            await ex.json(self._view(stored))

    async def _cancel_response(self, ex: _Exchange, response_id: str) -> None:
        self.cancelled.append(response_id)
        stored = self._stored.get(response_id)
        if stored is None:
            await ex.error(404, f"Response with id '{response_id}' not found.")
        elif not stored.final["background"]:
            await ex.error(400, "Cannot cancel a synchronous response.")
        elif stored.done and not stored.cancelled:
            await ex.error(400, "Cannot cancel a completed response.")
        else:
            stored.cancelled = True
            await ex.json(self._view(stored))

    async def _delete_response(self, ex: _Exchange, response_id: str) -> None:
        if self._stored.pop(response_id, None) is None:
            await ex.error(404, f"Response with id '{response_id}' not found.")
        else:
            await ex.json({"id": response_id, "object": "response.deleted", "deleted": True})

    # ------------------------------------------------ pass-through endpoints

    async def _chat_completion(self, ex: _Exchange, r: Recorded, respond: Respond | None) -> None:
        if respond is not None:
            await ex.error(500, "Respond describes Responses API answers; script a Reply or Stream here.",
                           type="server_error")
            return
        if not isinstance(r.json, dict):
            await ex.error(400, JSON_PARSE_ERROR)
            return
        request = r.json
        if not isinstance(request.get("messages"), list):
            await ex.error(400, f"Invalid type for 'messages': expected an array, but got {type(request.get('messages')).__name__} instead.",
                           param="messages", code="invalid_type")
            return
        requested_model = _given(request, "model", "gpt-4o")
        text = f"Echo: {_chat_text(request.get('messages'))[:ECHO_LIMIT]}"
        prompt_tokens = 7 + len(json.dumps(request.get("messages"), ensure_ascii=False)) // 4
        completion_tokens = len(text) // 4 + 1
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens,
                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
        head = {"id": f"chatcmpl-{_random_text(29)}", "created": int(time.time()),
                "model": MODEL_SNAPSHOTS.get(requested_model, requested_model), "service_tier": "default",
                "system_fingerprint": "fp_" + secrets.token_hex(5)}
        if not request.get("stream"):
            await ex.json({"id": head["id"], "object": "chat.completion", "created": head["created"],
                           "model": head["model"], "choices": [{
                               "index": 0, "message": {"role": "assistant", "content": text, "refusal": None,
                                                       "annotations": []},
                               "logprobs": None, "finish_reason": "stop"}],
                           "usage": usage, "service_tier": "default",
                           "system_fingerprint": head["system_fingerprint"]})
            return
        options = request.get("stream_options")
        with_usage = isinstance(options, dict) and bool(options.get("include_usage"))

        def chunk(delta: dict, finish: str | None = None, choices: list | None = None,
                  usage_value: dict | None = None) -> bytes:
            payload = {"id": head["id"], "object": "chat.completion.chunk", "created": head["created"],
                       "model": head["model"], "service_tier": "default",
                       "system_fingerprint": head["system_fingerprint"],
                       "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                       if choices is None else choices}
            if with_usage:
                payload["usage"] = usage_value
            payload["obfuscation"] = _random_text(-len(delta.get("content") or "") % 10 or 10)
            return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()

        frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
        frames += [chunk({"content": piece}) for piece in _pieces(text, 8)]
        frames.append(chunk({}, "stop"))
        if with_usage:
            frames.append(chunk({}, choices=[], usage_value=usage))
        frames.append(b"data: [DONE]\n\n")
        await ex.chunks(frames, "text/event-stream; charset=utf-8")

    async def _embeddings(self, ex: _Exchange, r: Recorded) -> None:
        if not isinstance(r.json, dict):
            await ex.error(400, JSON_PARSE_ERROR)
            return
        request = r.json
        inputs = request.get("input")
        inputs = [inputs] if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)) else inputs or []
        dimensions = _given(request, "dimensions", 16)
        data = []
        for index, value in enumerate(inputs):
            vector = _embedding(json.dumps(value), dimensions)
            if request.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(json.dumps(v)) // 4 + 1 for v in inputs)
        await ex.json({"object": "list", "data": data, "model": _given(request, "model", "text-embedding-3-small"),
                       "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def _transcription(self, ex: _Exchange, r: Recorded) -> None:
        fields, files = _parse_multipart(r.body, r.headers.get("content-type", ""))
        upload = next((f for f in files if f["field"] == "file"), None)
        if upload is None:
            await ex.error(400, "Missing required parameter: 'file'.", param="file",
                           code="missing_required_parameter")
            return
        await ex.json({"text": f"Transcript of {upload['filename']}", "file": upload, "fields": fields})


    async def _file_upload(self, ex: _Exchange, r: Recorded) -> None:
        """A file object, as the API answers an upload (with what the fake received of it, to check)."""
        fields, files = _parse_multipart(r.body, r.headers.get("content-type", ""))
        upload = next((f for f in files if f["field"] == "file"), None)
        if upload is None or "purpose" not in fields:
            missing = "file" if upload is None else "purpose"
            await ex.error(400, f"Missing required parameter: '{missing}'.", param=missing,
                           code="missing_required_parameter")
            return
        await ex.json({"id": "file-" + secrets.token_hex(11), "object": "file", "bytes": upload["size"], "created_at": int(time.time()),
                       "filename": upload["filename"], "purpose": fields["purpose"], "status": "processed",
                       "sha256": upload["sha256"]})


@contextlib.contextmanager
def running_fake_upstream(fake: FakeUpstream | None = None) -> Iterator[FakeUpstream]:
    """A started FakeUpstream (or ``fake``, e.g. a subclass) on a free loopback port, served by uvicorn in a thread.

    On exit in-flight streams and hangs are cut and the server shuts down.
    """
    fake = fake or FakeUpstream()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Headers and body go out in separate writes; without NODELAY every answer waits for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(fake, http="h11", loop="asyncio", lifespan="off", proxy_headers=False,
                            log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="fake-upstream", daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("fake upstream did not start")
        time.sleep(0.002)
    fake.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    try:
        yield fake
    finally:
        fake._stop()
        server.should_exit = True
        thread.join(5)
        sock.close()
