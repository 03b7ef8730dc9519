"""Validate proxy traffic against OpenAI's official OpenAPI schemas.

Tests use these checks to prove that what the proxy sends upstream is a valid
Responses request, that fake upstream output used in tests looks like the
real API, and that what clients get back is valid Chat Completions output.
Each check raises AssertionError naming the failing field and value.

The schemas (tests/spec/openai-schemas.json, a subset of the official spec)
are OpenAPI 3.1, i.e. JSON Schema 2020-12 plus a few OpenAPI habits adapted
on load: `oneOf` is read as `anyOf` (the spec relies on discriminators that
JSON Schema ignores, so overlapping shapes would fail `oneOf`), `nullable`
becomes "or null", `$recursiveRef` becomes a plain `$ref`, and
`discriminator`/`x-*` annotations are dropped.
"""

from __future__ import annotations

import copy
import functools
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, relevance
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA_FILE = Path(__file__).parent / "spec" / "openai-schemas.json"
_BASE = "urn:openai-schemas"
_PREFIX = "#/components/schemas/"

# Keywords whose value is a map of name -> schema, a schema, or a list of schemas.
_SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "dependentSchemas"}
_SCHEMA_ONE = {"items", "additionalProperties", "not", "if", "then", "else", "contains",
               "propertyNames", "unevaluatedProperties", "unevaluatedItems"}
_SCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}
_DROPPED = {"discriminator", "nullable", "$recursiveAnchor", "example"}


def _adapt(schema: Any, component: str) -> Any:
    """Rewrite one OpenAPI schema into plain JSON Schema 2020-12."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED or key.startswith("x-"):
            continue
        if key == "$recursiveRef":
            out["$ref"] = _PREFIX + component
        elif key in _SCHEMA_MAPS:
            out[key] = {name: _adapt(sub, component) for name, sub in value.items()}
        elif key in _SCHEMA_ONE:
            out[key] = _adapt(value, component)
        elif key in _SCHEMA_LISTS:
            subs = [_adapt(sub, component) for sub in value]
            if key == "oneOf":
                if "anyOf" in schema:  # keep both constraints
                    out.setdefault("allOf", []).append({"anyOf": subs})
                else:
                    out["anyOf"] = subs
            else:
                out.setdefault(key, []).extend(subs)
        else:
            out[key] = value
    if schema.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def _document() -> dict:
    raw = json.loads(SCHEMA_FILE.read_text("utf-8"))
    schemas = raw["components"]["schemas"]
    return {"components": {"schemas": {n: _adapt(s, n) for n, s in schemas.items()}}}


@functools.cache
def _registry() -> Registry:
    resource = Resource.from_contents(_document(), default_specification=DRAFT202012)
    return Registry().with_resource(_BASE, resource)


@functools.cache
def _validator(name: str) -> Draft202012Validator:
    if name not in _document()["components"]["schemas"]:
        raise KeyError(f"schema {name!r} is not in {SCHEMA_FILE.name}")
    return Draft202012Validator({"$ref": f"{_BASE}{_PREFIX}{name}"}, registry=_registry())


def _schema(name: str) -> dict:
    return _document()["components"]["schemas"][name]


@functools.cache
def _event_schemas() -> dict[str, str]:
    """Stream event `type` -> name of its event schema (the spec's discriminator)."""
    by_type: dict[str, str] = {}
    for branch in _schema("ResponseStreamEvent")["anyOf"]:
        name = branch["$ref"].removeprefix(_PREFIX)
        for value in _schema(name)["properties"]["type"].get("enum", []):
            by_type[value] = name
    return by_type


# ---------------------------------------------------------------- error reporting


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _off_branch(errors: list[ValidationError]) -> bool:
    """True if an anyOf branch failed on its JSON type or its `type` tag."""
    for err in errors:
        path = list(err.relative_path)
        if path == ["type"] or (not path and err.validator == "type"):
            return True
    return False


def _explain(error: ValidationError) -> ValidationError:
    """Pick the most useful leaf error, following the branch the value aimed at."""
    while error.context:
        branches: dict[Any, list[ValidationError]] = defaultdict(list)
        for sub in error.context:
            branches[sub.relative_schema_path[0]].append(sub)
        candidates = [errs for errs in branches.values() if not _off_branch(errs)]
        if not candidates:
            break
        error = max(min(candidates, key=len), key=relevance)
    return error


def _describe(error: ValidationError) -> str:
    leaf = _explain(error)
    message = leaf.message
    if leaf.validator == "anyOf" and isinstance(leaf.instance, dict) and "type" in leaf.instance:
        message = f"no allowed shape has type {leaf.instance['type']!r}"
    elif len(message) > 300:
        message = message[:297] + "..."
    return f"{leaf.json_path}: {message}; value: {_short(leaf.instance)}"


def _check(name: str, instance: Any, label: str | None = None) -> None:
    errors = sorted(_validator(name).iter_errors(instance), key=relevance, reverse=True)
    if errors:
        lines = [_describe(e) for e in errors[:5]]
        more = f"\n  ... and {len(errors) - 5} more" if len(errors) > 5 else ""
        raise AssertionError(f"{label or name}: " + "\n  also: ".join(lines) + more)


# ---------------------------------------------------------------- request defaults


def _fill_request_defaults(body: dict) -> dict:
    """Deep copy of a CreateResponse body with the live API's defaults filled in.

    The spec is generated from response-side types and marks these fields
    required, while the API defaults them on requests.
    """
    body = copy.deepcopy(body)
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "function":
            tool.setdefault("strict", True)
    items = body.get("input")
    if isinstance(items, list):
        for item in items:
            if (isinstance(item, dict) and item.get("role") == "assistant"
                    and item.get("type", "message") == "message"
                    and isinstance(item.get("content"), list)
                    and any(isinstance(p, dict) and p.get("type") in ("output_text", "refusal")
                            for p in item["content"])):
                item.setdefault("id", "msg_default")
                item.setdefault("status", "completed")
        _fill_parts(items)
    return body


def _fill_parts(node: Any) -> None:
    if isinstance(node, list):
        for sub in node:
            _fill_parts(sub)
    elif isinstance(node, dict):
        if node.get("type") == "input_image":
            node.setdefault("detail", "auto")
        elif node.get("type") == "output_text":
            node.setdefault("annotations", [])
            node.setdefault("logprobs", [])
        for sub in node.values():
            if isinstance(sub, (list, dict)):
                _fill_parts(sub)


def _all_properties(schema: dict) -> set[str]:
    """Property names of a schema, walking `$ref` and `allOf` parts."""
    names = set(schema.get("properties", {}))
    if "$ref" in schema:
        names |= _all_properties(_schema(schema["$ref"].removeprefix(_PREFIX)))
    for part in schema.get("allOf", []):
        names |= _all_properties(part)
    return names


@functools.cache
def create_response_keys() -> frozenset[str]:
    """Every top-level key CreateResponse defines."""
    return frozenset(_all_properties(_schema("CreateResponse")))


# ---------------------------------------------------------------- public checks


def check_create_response(body: dict) -> None:
    """A request body the proxy sends to POST /v1/responses."""
    if not isinstance(body, dict):
        raise AssertionError(f"CreateResponse: $: not an object; value: {_short(body)}")
    unknown = sorted(set(body) - create_response_keys())
    if unknown:
        raise AssertionError(
            f"CreateResponse: $: unknown top-level key(s) {unknown}; "
            f"value: {_short({k: body[k] for k in unknown})}"
        )
    _check("CreateResponse", _fill_request_defaults(body))


def check_response(body: dict) -> None:
    """A Responses API response object (non-stream answer or inside events)."""
    _check("Response", body)


def check_stream_event(event: dict) -> None:
    """One Responses streaming event (the JSON of one SSE `data:` line)."""
    kind = event.get("type") if isinstance(event, dict) else None
    name = _event_schemas().get(kind) if isinstance(kind, str) else None
    if name is None:
        raise AssertionError(
            f"ResponseStreamEvent: $.type: unknown event type; value: {_short(kind)}"
        )
    _check(name, event, f"ResponseStreamEvent {kind}")


def check_chat_request(body: dict) -> None:
    """A request body a client sends to POST /v1/chat/completions."""
    _check("CreateChatCompletionRequest", body)


def check_chat_completion(body: dict) -> None:
    """A non-stream Chat Completions answer."""
    _check("CreateChatCompletionResponse", body)


def check_chat_chunk(chunk: dict) -> None:
    """One Chat Completions stream chunk (the JSON of one SSE `data:` line)."""
    _check("CreateChatCompletionStreamResponse", chunk)


def check_error_body(body: dict) -> None:
    """An error body: {"error": {"message", "type", "param", "code"}}."""
    _check("ErrorResponse", body)
