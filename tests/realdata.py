"""Loader for the real OpenAI traffic recorded in tests/fixtures/realdata.

The recordings come from several public projects, each in its own format
(see fixtures/realdata/SOURCES.md). This module hides those formats behind one
`Recording` type so tests can replay real upstream Responses streams and bodies,
and compare with real Chat Completions output, without caring where a
recording came from.

Formats handled:
- `ai/*.chunks.txt`: one SSE `data` JSON object per line (no prefixes, no [DONE]);
  a file may hold several Responses streams back to back.
- `ai/*.json`: one raw response body (or error body).
- `*.yaml`: VCR cassettes; request in `parsed_body` or a JSON string `body`,
  response in `parsed_body` or `body.string` (SSE text, JSON text, or gzip bytes).
- `openai-dotnet/*.json`: SDK session records; `Entries[]` with `RequestBody`,
  `StatusCode` and `ResponseBody` (a JSON object, or a list of SSE lines).
- `openai-python/*.bin`: a raw Chat Completions SSE byte stream.

Recordings are parsed once and shared: treat them as read-only
(`copy.deepcopy` before mutating).
"""

from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

FIXTURES = Path(__file__).parent / "fixtures" / "realdata"

Api = Literal["responses", "chat"]
Kind = Literal["stream", "body", "error"]

TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})

# The vercel error fixtures store neither URL nor status; which API they came
# from is given by the fixture directory they were taken from upstream.
_VERCEL_ERROR_API: dict[str, Api] = {
    "openai-error.1": "responses",
    "reasoning-model-temperature-error": "responses",
    "reasoning-model-legacy-parameter-error": "chat",
}

# The same conversation (model, prompt, tools, output options) sent to both APIs
# by one upstream test, recorded interaction by interaction. The pydantic-ai pair
# differs only in the structured-output schema's name and strictness.
_PAIRED_FILES = [
    ("mirascope/output__test_refusal__openai_gpt_4o_responses__stream",
     "mirascope/output__test_refusal__openai_gpt_4o_completions__stream"),
    ("mirascope/output__test_max_tokens__openai_gpt_4o_responses__stream",
     "mirascope/output__test_max_tokens__openai_gpt_4o_completions__stream"),
    ("mirascope/output__test_call_with_tools__openai_gpt_4o_responses__stream",
     "mirascope/output__test_call_with_tools__openai_gpt_4o_completions__stream"),
    ("pydantic-ai/test_native_output", "pydantic-ai/test_openai_native_output"),
]

# One representative recording per behaviour the translator must handle.
NOTABLE = {
    "text_stream": "openai-dotnet/ResponsesTests_StreamingResponses#1",
    "reasoning_summary_stream": "pydantic-ai/test_openai_responses_thinking_part_iter#1",
    "parallel_function_call_stream": "mirascope/output__test_call_with_tools__openai_gpt_4o_responses__stream#1",
    "web_search_citations_stream": "mirascope/input__test_web_search_tool_stream__openai_gpt_4o_responses#1",
    "refusal_stream": "mirascope/output__test_refusal__openai_gpt_4o_responses__stream#1",
    "incomplete_stream": "mirascope/output__test_max_tokens__openai_gpt_4o_responses__stream#1",
    "failed_stream": "ai/openai-error.1.chunks#1",
    "reasoning_body": "pydantic-ai/test_openai_responses_model_thinking_part#1",
    "function_call_body": "llm/test_responses_interleaved_reasoning_between_tool_calls#4",
    "web_search_body": "openai-dotnet/ResponsesToolTests_WebSearchCall#1",
    "refusal_body": "mirascope/output__test_refusal__openai_gpt_4o_responses__sync#1",
    "incomplete_body": "openai-dotnet/ResponsesTests_MaxTokens#1",
    "error_body": "pydantic-ai/test_openai_responses_thinking_with_modified_history#2",
    "chat_text_stream": "ai/openai-text.chunks#1",
    "chat_parallel_tool_calls_stream": "openai-python/f82268f2fefd5cfbc7eeb59c297688be2f6ca0849a6e4f17851b517310841d9b#1",
    "chat_refusal_stream": "mirascope/output__test_refusal__openai_gpt_4o_completions__stream#1",
    "chat_body": "ai/openai-text#1",
    "chat_error_body": "openai-dotnet/ChatTests_AuthFailure#1",
}


@dataclass
class Recording:
    """One recorded upstream answer (a stream, a JSON body or an error body)."""

    name: str  # "<folder>/<file stem>#<n>", n = 1-based interaction/stream index
    api: Api
    kind: Kind
    request: dict | None  # JSON request body, when the recording stores it
    status: int | None  # HTTP status; None when the fixture does not store it
    events: list[dict] = field(default_factory=list)  # stream: parsed SSE data, no [DONE]
    body: dict | None = None  # body / error: the parsed JSON body
    source: str = ""  # fixture path relative to fixtures/realdata

    @property
    def event_types(self) -> list[str]:
        """`type` of each Responses stream event (empty for chat streams)."""
        return [e.get("type", "") for e in self.events] if self.api == "responses" else []


# ---------------------------------------------------------------- parsing helpers


def parse_sse(text: str) -> list[dict]:
    """Parse SSE text into the JSON of each `data:` payload, skipping [DONE].

    When an `event:` line is present it must name the payload's `type`.
    """
    events: list[dict] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if not data:
            continue
        payload = "\n".join(data)
        if payload.strip() == "[DONE]":
            continue
        obj = json.loads(payload)
        if name is not None and obj.get("type") != name:
            raise ValueError(f"SSE event {name!r} carries data of type {obj.get('type')!r}")
        events.append(obj)
    return events


def split_responses_stream(events: list[dict]) -> list[list[dict]]:
    """Split back-to-back Responses streams: each runs up to a terminal event."""
    streams: list[list[dict]] = []
    current: list[dict] = []
    for ev in events:
        if ev.get("type") == "response.created" and current:
            streams.append(current)
            current = []
        current.append(ev)
        if ev.get("type") in TERMINAL_EVENTS:
            streams.append(current)
            current = []
    if current:
        streams.append(current)
    return streams


def _decode(raw: Any) -> str:
    if isinstance(raw, bytes):
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8")
    return raw


def _is_sse(text: str) -> bool:
    head = text.lstrip()
    return head.startswith("event:") or head.startswith("data:")


def _api_of(url: str) -> Api | None:
    path = url.split("?", 1)[0]
    if path.endswith("/chat/completions"):
        return "chat"
    if "/v1/responses" in path:
        return "responses"
    return None


def _classify_body(body: Any, status: int | None) -> Kind | None:
    """"body"/"error" for a Responses or Chat answer; None for anything else."""
    if not isinstance(body, dict):
        return None
    if (status is not None and status >= 400) or (body.get("error") and "object" not in body):
        return "error"
    if body.get("object") in ("response", "chat.completion"):
        return "body"
    return None  # e.g. a deletion result or an input_items listing


def _from_answer(name: str, source: str, api: Api, request: dict | None,
                 status: int | None, answer: Any) -> list[Recording]:
    """Build the recordings of one HTTP answer (SSE text, JSON text or object)."""
    if isinstance(answer, str):
        if _is_sse(answer):
            events = parse_sse(answer)
            parts = split_responses_stream(events) if api == "responses" else [events]
            if len(parts) == 1:
                return [Recording(name, api, "stream", request, status, parts[0], None, source)]
            return [Recording(f"{name}.{i}", api, "stream", request, status, p, None, source)
                    for i, p in enumerate(parts, 1)]
        answer = json.loads(answer)
    kind = _classify_body(answer, status)
    if kind is None:
        return []
    return [Recording(name, api, kind, request, status, [], answer, source)]


# ---------------------------------------------------------------- per-format loaders


def _stem(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def _load_vercel_chunks(path: Path, source: str) -> list[Recording]:
    events = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    if events and events[0].get("object") == "chat.completion.chunk":
        return [Recording(f"{_stem(path)}#1", "chat", "stream", None, 200, events, None, source)]
    return [Recording(f"{_stem(path)}#{i}", "responses", "stream", None, 200, part, None, source)
            for i, part in enumerate(split_responses_stream(events), 1)]


def _load_vercel_body(path: Path, source: str) -> list[Recording]:
    body = json.loads(path.read_text("utf-8"))
    name = f"{_stem(path)}#1"
    if _classify_body(body, None) == "error":
        return [Recording(name, _VERCEL_ERROR_API[path.stem], "error", None, None, [], body, source)]
    api: Api = "chat" if body.get("object") == "chat.completion" else "responses"
    return [Recording(name, api, "body", None, 200, [], body, source)]


def _load_vcr(path: Path, source: str) -> list[Recording]:
    doc = yaml.load(path.read_bytes(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    out: list[Recording] = []
    for i, inter in enumerate(doc["interactions"], 1):
        req, resp = inter["request"], inter["response"]
        api = _api_of(req["uri"])
        if api is None:
            continue
        request = req.get("parsed_body")
        if request is None and req.get("body"):
            request = json.loads(_decode(req["body"]))
        if "parsed_body" in resp:
            answer = resp["parsed_body"]
        else:
            answer = _decode(resp["body"]["string"])
        out += _from_answer(f"{_stem(path)}#{i}", source, api, request,
                            resp["status"]["code"], answer)
    return out


def _load_dotnet(path: Path, source: str) -> list[Recording]:
    doc = json.loads(path.read_text("utf-8"))
    out: list[Recording] = []
    for i, entry in enumerate(doc["Entries"], 1):
        api = _api_of(entry["RequestUri"])
        if api is None:
            continue
        answer = entry["ResponseBody"]
        if isinstance(answer, list):
            answer = "".join(answer)
        request = entry.get("RequestBody")
        if isinstance(request, str):
            request = json.loads(request) if request else None
        out += _from_answer(f"{_stem(path)}#{i}", source, api, request,
                            entry["StatusCode"], answer)
    return out


def _load_python_bin(path: Path, source: str) -> list[Recording]:
    events = parse_sse(path.read_bytes().decode("utf-8"))
    return [Recording(f"{_stem(path)}#1", "chat", "stream", None, 200, events, None, source)]


def _load_file(path: Path) -> list[Recording]:
    source = path.relative_to(FIXTURES).as_posix()
    if path.suffix == ".yaml":
        return _load_vcr(path, source)
    if path.suffix == ".bin":
        return _load_python_bin(path, source)
    if path.parent.name == "openai-dotnet":
        return _load_dotnet(path, source)
    if path.name.endswith(".chunks.txt"):
        return _load_vercel_chunks(path, source)
    if path.suffix == ".json":
        return _load_vercel_body(path, source)
    return []


@functools.cache
def _all() -> tuple[Recording, ...]:
    recs: list[Recording] = []
    for path in sorted(FIXTURES.glob("*/*")):
        if path.is_file():
            recs += _load_file(path)
    return tuple(recs)


@functools.cache
def _by_name() -> dict[str, Recording]:
    index = {r.name: r for r in _all()}
    if len(index) != len(_all()):
        raise ValueError("duplicate recording names")
    return index


# ---------------------------------------------------------------- public API


def recordings(api: Api | None = None, kind: Kind | None = None) -> list[Recording]:
    """All recordings, optionally filtered by API and kind, in a stable order."""
    return [r for r in _all() if (api is None or r.api == api) and (kind is None or r.kind == kind)]


def get(name: str) -> Recording:
    """The recording with this exact name (KeyError if absent)."""
    try:
        return _by_name()[name]
    except KeyError:
        raise KeyError(f"no recording named {name!r}") from None


def paired_conversations() -> list[tuple[Recording, Recording]]:
    """(Responses, Chat) recordings of one conversation recorded on both APIs.

    The pairs come from upstream tests that ran the same conversation (model,
    prompt, tools, output options) against each API; interaction n of one file
    pairs with interaction n of the other. Follow-up turns carry each API's own
    tool call ids.
    """
    pairs: list[tuple[Recording, Recording]] = []
    index = _by_name()
    for resp_file, chat_file in _PAIRED_FILES:
        n = 1
        while f"{resp_file}#{n}" in index and f"{chat_file}#{n}" in index:
            pairs.append((index[f"{resp_file}#{n}"], index[f"{chat_file}#{n}"]))
            n += 1
    return pairs
