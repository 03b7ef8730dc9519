"""Chat Completions request -> Responses request: the values a translation is made of, and the handlers
that the chat parameter table (:mod:`.params`) runs, each mapping the value of its parameter (what depends
on parameters left out is done by :func:`new_draft` and :func:`finished`). Pure: no I/O, no framework.

The chat request is validated while it is mapped, so every problem becomes an
:class:`InvalidRequest` naming the offending parameter (``messages[2].content``)
instead of an upstream error about a field the client never sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ...errors import InvalidRequest
from ..fields import (MAX_SAFETY_IDENTIFIER, bounded_string, check_choice, is_int, metadata, model_of, optional,
                      positive_int, string, typed)
from ..reasoning import REASONING_EFFORTS, REASONING_SUMMARIES
from .continuity import ENCRYPTED_REASONING, reasoning_keys

MIN_OUTPUT_TOKENS = 16  # the Responses API rejects smaller max_output_tokens
# Deeper JSON than this is refused: orjson parses up to 1024 levels but encodes at most 254, so a deeper
# request could be read but never sent on. No real request comes near it.
MAX_NESTING = 128

@dataclass(slots=True)
class MappingOptions:
    """Operator settings that shape a translated request."""

    reasoning_summary: str | None = "auto"
    max_n: int = 4
    # Deep-research models refuse to run without a search tool; add one when the request has none.
    require_search_tool: bool = False
    # Ask for encrypted reasoning, so it can be carried into later turns (multi-turn continuity).
    keep_reasoning: bool = False
    reasoning_effort: str | None = None  # used when the client sends none


# The values a translation is made of are immutable, and made for every request: named tuples, which cost a
# fraction of what frozen dataclasses do to build.


class ResponsesRequest(NamedTuple):
    """What goes upstream: the Responses request, and what the proxy added to it on its own."""

    body: dict[str, Any]
    model: str
    summary_added: bool = False  # ``reasoning.summary`` is the operator's default, not the client's choice


class ChatAnswer(NamedTuple):
    """How the answer is presented to the chat client: the proxy streams it or not, runs ``n`` choices, ends
    each at a stop sequence, and adds a usage chunk."""

    stream: bool = False
    include_usage: bool = False  # a streamed answer's final usage chunk
    n: int = 1
    stop: tuple[str, ...] = ()


class Provenance(NamedTuple):
    """Where the Responses request came from: the chat request, the position of the message behind each input
    item and the chat path of each tool, as its parts (None for what the proxy added), to name the client's
    parameters in upstream errors; and where each earlier answer starts in the input, with the keys its
    reasoning may be kept under."""

    request: dict[str, Any]
    sources: tuple[int | None, ...] = ()
    tool_sources: tuple[tuple[str | int, ...] | None, ...] = ()
    answers: tuple[tuple[int, tuple[str, ...]], ...] = ()

    @property
    def memory_keys(self) -> list[str]:
        """Every key the reasoning of an earlier answer may be kept under."""
        return [key for _, keys in self.answers for key in keys]


class Translation(NamedTuple):
    """A translated chat request: what goes upstream, how the answer is presented, where each part came from,
    and what the client asked for that was left out or changed (reported to it in headers)."""

    upstream: ResponsesRequest
    answer: ChatAnswer
    provenance: Provenance
    dropped: tuple[str, ...] = ()
    adjusted: tuple[str, ...] = ()


@dataclass(slots=True)
class Draft:
    """A translation being made: what the table's handlers write, one part each."""

    chat: dict[str, Any]
    options: MappingOptions
    body: dict[str, Any]
    stream: bool = False  # ChatAnswer's fields
    include_usage: bool = False
    n: int = 1
    stop: tuple[str, ...] = ()
    adjusted: list[str] = field(default_factory=list)
    summary_added: bool = False
    sources: list[int | None] = field(default_factory=list)
    tool_sources: list[tuple[str | int, ...] | None] = field(default_factory=list)
    answers: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)  # the upstream's tools, as they are gathered
    reasoning: dict[str, Any] = field(default_factory=dict)  # the upstream's reasoning settings, as they are gathered


def new_draft(chat: Any, options: MappingOptions) -> Draft:
    """A draft for a parsed chat request, already checked by :func:`check_nesting`: an object with a model and
    messages. Not stored unless the client asks: chat completions are not kept by default either."""
    model = model_of(chat)
    if chat.get("messages") is None:
        raise InvalidRequest(_NO_MESSAGES, "messages")
    body: dict[str, Any] = {"model": model, "store": False}
    if options.keep_reasoning:
        body["include"] = [ENCRYPTED_REASONING]
    return Draft(chat, options, body)


def finished(draft: Draft, dropped: list[str]) -> Translation:
    """The translation, once the table's handlers have run: what depends on parameters left out is settled."""
    _settle_tools(draft)
    _settle_reasoning(draft)
    body = draft.body
    return Translation(
        upstream=ResponsesRequest(body, body["model"], draft.summary_added),
        answer=ChatAnswer(draft.stream, draft.include_usage, draft.n, draft.stop),
        provenance=Provenance(draft.chat, tuple(draft.sources), tuple(draft.tool_sources), tuple(draft.answers)),
        dropped=tuple(dropped),
        adjusted=tuple(draft.adjusted),
    )


def check_nesting(value: Any) -> None:
    """Refuse JSON nested more than :data:`MAX_NESTING` levels (walked level by level, without recursion)."""
    level = [value]
    for _ in range(MAX_NESTING):
        level = [child for node in level for child in (node.values() if isinstance(node, dict) else node)
                 if isinstance(child, (dict, list))]
        if not level:
            return
    raise InvalidRequest(f"The request is nested more than {MAX_NESTING} levels deep.", code="nesting_too_deep")


# --- messages ---------------------------------------------------------------


_NO_MESSAGES = "'messages' must be a non-empty array of message objects."


def map_messages(draft: Draft, name: str, messages: Any) -> None:
    """Map chat history to ``instructions`` and Responses input items, noting the position of the message
    behind each item, and where earlier answers start (when their reasoning is kept).

    Leading system/developer messages become ``instructions``: they are the
    same on every turn, so the upstream's prompt cache keeps hitting. Ones that
    appear later in the conversation stay where they are, as developer
    messages, because their position carries meaning.
    """
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(_NO_MESSAGES, name)
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    answers: list[tuple[int, tuple[str, ...]]] = []
    legacy_calls: list[tuple[str, str]] = []  # (name, synthetic call_id) of legacy function_call turns
    sources = draft.sources
    for position, message in enumerate(messages):
        where = f"messages[{position}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"'{where}' must be an object.", where)
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text_content(message.get("content"), f"{where}.content")
            if not items and isinstance(text, str):
                instructions.append(text)
            else:  # later in the conversation, or marking a cache breakpoint, which instructions cannot carry
                items.append({"role": "developer", "content": text})
        elif role == "user":
            items.append({"role": "user", "content": _user_content(message.get("content"), f"{where}.content")})
        elif role == "assistant":
            answer = _assistant_items(message, where, legacy_calls)
            keys = reasoning_keys(answer)
            if keys:
                answers.append((len(items), tuple(keys)))
            items.extend(answer)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"'{where}.tool_call_id' must be a non-empty string.", f"{where}.tool_call_id")
            output = _text_content(message.get("content"), f"{where}.content")
            items.append({"type": "function_call_output", "call_id": call_id, "output": output})
        elif role == "function":
            name = message.get("name")
            call_id = _legacy_call_id(legacy_calls, name)
            output = _text_content(message.get("content"), f"{where}.content")
            items.append({"type": "function_call_output", "call_id": call_id, "output": output})
        else:
            raise InvalidRequest(
                f"Invalid value for '{where}.role': {role!r}. Supported roles are system, developer, user, "
                "assistant, tool and function.",
                f"{where}.role",
            )
        sources.extend([position] * (len(items) - len(sources)))
    if instructions:
        draft.body["instructions"] = "\n\n".join(instructions)
    draft.body["input"] = items
    if draft.options.keep_reasoning:
        draft.answers = answers


def _text_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    """Text of system, tool and function messages: a string or text parts, joined; kept as ``input_text`` parts
    when one marks a prompt cache breakpoint, which joined text would lose."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for index, part in enumerate(content):
            spot = f"{where}[{index}]"
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text", "output_text"):
                raise InvalidRequest(f"'{spot}' must be a text content part.", spot)
            parts.append(_with_breakpoint(part, {"type": "input_text", "text": string(part.get("text"), f"{spot}.text")},
                                          spot))
        if any("prompt_cache_breakpoint" in part for part in parts):
            return parts
        return "".join(part["text"] for part in parts)
    raise InvalidRequest(f"'{where}' must be a string or an array of content parts.", where)


def _with_breakpoint(part: dict[str, Any], mapped: dict[str, Any], where: str) -> dict[str, Any]:
    """``mapped`` with the part's ``prompt_cache_breakpoint`` (the end of a prefix to cache), if it has one."""
    mark = part.get("prompt_cache_breakpoint")
    if mark is not None:
        if not isinstance(mark, dict) or mark.get("mode", "explicit") != "explicit":
            raise InvalidRequest(f"'{where}.prompt_cache_breakpoint' must be {{\"mode\": \"explicit\"}}.",
                                 f"{where}.prompt_cache_breakpoint")
        mapped["prompt_cache_breakpoint"] = {"mode": "explicit"}
    return mapped


def _user_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"'{where}' must be a string or an array of content parts.", where)
    return [_user_part(part, f"{where}[{index}]") for index, part in enumerate(content)]


def _user_part(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise InvalidRequest(f"'{where}' must be a content part object.", where)
    return _with_breakpoint(part, _user_part_body(part, where), where)


def _user_part_body(part: dict[str, Any], where: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind in ("text", "input_text"):
        return {"type": "input_text", "text": string(part.get("text"), f"{where}.text")}
    if kind == "image_url":
        image = part.get("image_url")
        if isinstance(image, str):
            image = {"url": image}
        if not isinstance(image, dict):
            raise InvalidRequest(f"'{where}.image_url' must be an object with a 'url'.", f"{where}.image_url")
        url = string(image.get("url"), f"{where}.image_url.url")
        detail = image.get("detail") or "auto"
        if detail not in ("auto", "low", "high"):
            raise InvalidRequest(f"'{where}.image_url.detail' must be auto, low or high.", f"{where}.image_url.detail")
        return {"type": "input_image", "image_url": url, "detail": detail}
    if kind == "file":
        file = part.get("file")
        if not isinstance(file, dict):
            raise InvalidRequest(f"'{where}.file' must be an object.", f"{where}.file")
        mapped = {"type": "input_file"}
        for key in ("file_data", "file_id", "filename"):
            if file.get(key) is not None:
                mapped[key] = string(file[key], f"{where}.file.{key}")
        if "file_data" not in mapped and "file_id" not in mapped:
            raise InvalidRequest(f"'{where}.file' needs 'file_data' or 'file_id'.", f"{where}.file")
        return mapped
    if kind in ("input_image", "input_file"):
        return _responses_part(part, kind, where)
    if kind == "input_audio":
        raise InvalidRequest(
            "Audio input ('input_audio' content parts) is not supported by the Responses API that serves this model.",
            where,
            "unsupported_content_type",
        )
    raise InvalidRequest(f"Invalid content part type {kind!r} at '{where}'.", f"{where}.type")


_IMAGE_DETAILS = ("auto", "low", "high", "original")


def _responses_part(part: dict[str, Any], kind: str, where: str) -> dict[str, Any]:
    """An ``input_image``/``input_file`` part a client sent in the Responses form, rebuilt from its checked fields."""
    fields = ("image_url", "file_id") if kind == "input_image" else ("file_data", "file_id", "file_url", "filename")
    mapped = {"type": kind, **{key: string(part[key], f"{where}.{key}") for key in fields if part.get(key) is not None}}
    if kind == "input_image":
        mapped["detail"] = part.get("detail") or "auto"
        if mapped["detail"] not in _IMAGE_DETAILS:
            raise InvalidRequest(f"'{where}.detail' must be {', '.join(_IMAGE_DETAILS)}.", f"{where}.detail")
    if not any(key in mapped for key in fields):
        raise InvalidRequest(f"'{where}' needs one of {', '.join(fields)}.", where)
    return mapped


def _assistant_items(message: dict[str, Any], where: str, legacy_calls: list[tuple[str, str]]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str):
        if content:
            parts.append({"type": "output_text", "text": content, "annotations": []})
    elif isinstance(content, list):
        for index, part in enumerate(content):
            spot = f"{where}.content[{index}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("text", "output_text", "input_text"):
                parts.append({"type": "output_text", "text": string(part.get("text"), f"{spot}.text"), "annotations": []})
            elif kind == "refusal":
                parts.append({"type": "refusal", "refusal": string(part.get("refusal"), f"{spot}.refusal")})
            else:
                raise InvalidRequest(f"'{spot}' must be a text or refusal content part.", spot)
    elif content is not None:
        raise InvalidRequest(f"'{where}.content' must be a string, an array of content parts, or null.", f"{where}.content")
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append({"type": "refusal", "refusal": refusal})

    items: list[dict[str, Any]] = []
    if parts:
        items.append({"type": "message", "role": "assistant", "content": parts})
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if not isinstance(tool_calls, list):
            raise InvalidRequest(f"'{where}.tool_calls' must be an array.", f"{where}.tool_calls")
        for index, call in enumerate(tool_calls):
            items.append(_history_call(call, f"{where}.tool_calls[{index}]"))
    function_call = message.get("function_call")
    if function_call is not None:
        spot = f"{where}.function_call"
        if not isinstance(function_call, dict):
            raise InvalidRequest(f"'{spot}' must be an object.", spot)
        name = string(function_call.get("name"), f"{spot}.name")
        call_id = f"call_legacy_{len(legacy_calls)}"
        legacy_calls.append((name, call_id))
        items.append({"type": "function_call", "call_id": call_id, "name": name,
                      "arguments": _arguments(function_call.get("arguments"), f"{spot}.arguments")})
    return items


def _history_call(call: Any, where: str) -> dict[str, Any]:
    if not isinstance(call, dict):
        raise InvalidRequest(f"'{where}' must be an object.", where)
    call_id = string(call.get("id"), f"{where}.id")
    if call.get("type") == "custom":
        custom = call.get("custom")
        if not isinstance(custom, dict):
            raise InvalidRequest(f"'{where}.custom' must be an object.", f"{where}.custom")
        return {"type": "custom_tool_call", "call_id": call_id, "name": string(custom.get("name"), f"{where}.custom.name"),
                "input": string(custom.get("input", ""), f"{where}.custom.input")}
    function = call.get("function")
    if not isinstance(function, dict):
        raise InvalidRequest(f"'{where}.function' must be an object.", f"{where}.function")
    return {"type": "function_call", "call_id": call_id, "name": string(function.get("name"), f"{where}.function.name"),
            "arguments": _arguments(function.get("arguments"), f"{where}.function.arguments")}


def _legacy_call_id(legacy_calls: list[tuple[str, str]], name: Any) -> str:
    """Pair a legacy ``function`` message with the assistant call it answers."""
    for index in range(len(legacy_calls) - 1, -1, -1):
        if legacy_calls[index][0] == name:
            return legacy_calls.pop(index)[1]
    if legacy_calls:
        return legacy_calls.pop()[1]
    raise InvalidRequest("A 'function' message must follow an assistant message with a 'function_call'.", "messages")


def _arguments(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise InvalidRequest(f"'{where}' must be a JSON-encoded string.", where)


# --- tools ------------------------------------------------------------------


_SEARCH_TOOLS = frozenset(("web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11",
                           "file_search", "mcp"))


def map_tools(draft: Draft, name: str, given: Any) -> None:
    """``tools`` and the legacy ``functions`` as Responses tools."""
    mapped, kind = (_tool, "tool") if name == "tools" else (_function_tool, "function")
    if not isinstance(given, list):
        raise InvalidRequest(f"'{name}' must be an array of {kind} objects.", name)
    draft.tools.extend(mapped(entry, f"{name}[{index}]") for index, entry in enumerate(given))
    draft.tool_sources.extend((name, index) for index in range(len(given)))


def map_web_search(draft: Draft, name: str, options: Any) -> None:
    draft.tools.append(_web_search_tool(options))
    draft.tool_sources.append((name,))


def map_tool_choice(draft: Draft, name: str, choice: Any) -> None:
    """``tool_choice``, or the legacy ``function_call`` when there is none."""
    if name == "function_call":
        if draft.chat.get("tool_choice") is not None:
            return
        choice = _legacy_choice(choice)
    draft.body["tool_choice"] = _tool_choice(choice)


def _settle_tools(draft: Draft) -> None:
    tools = draft.tools
    if draft.options.require_search_tool and not any(tool["type"] in _SEARCH_TOOLS for tool in tools):
        tools.append({"type": "web_search_preview"})
        draft.tool_sources.append(None)
    if tools:
        draft.body["tools"] = tools


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise InvalidRequest(f"'{where}' must be an object.", where)
    kind = tool.get("type", "function")
    if kind == "function":
        return _function_tool(tool.get("function"), f"{where}.function")
    if kind == "custom":
        custom = tool.get("custom")
        if not isinstance(custom, dict):
            raise InvalidRequest(f"'{where}.custom' must be an object.", f"{where}.custom")
        mapped = {"type": "custom", "name": string(custom.get("name"), f"{where}.custom.name")}
        if custom.get("description") is not None:
            mapped["description"] = string(custom["description"], f"{where}.custom.description")
        if custom.get("format") is not None:
            mapped["format"] = _custom_format(custom["format"], f"{where}.custom.format")
        return mapped
    raise InvalidRequest(f"Unsupported tool type {kind!r} at '{where}.type'; use 'function' or 'custom'.", f"{where}.type")


def _custom_format(value: Any, where: str) -> dict[str, Any]:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return {"type": "text"}
    if kind == "grammar" and value.get("syntax") in ("lark", "regex"):
        return {"type": "grammar", "syntax": value["syntax"], "definition": string(value.get("definition"),
                                                                                    f"{where}.definition")}
    raise InvalidRequest(f"'{where}' must be {{\"type\": \"text\"}} or a grammar with a syntax (lark or regex) "
                         "and a definition.", where)


def _function_tool(function: Any, where: str) -> dict[str, Any]:
    if not isinstance(function, dict):
        raise InvalidRequest(f"'{where}' must be an object with a 'name'.", where)
    parameters = function.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    elif not isinstance(parameters, dict):
        raise InvalidRequest(f"'{where}.parameters' must be a JSON schema object.", f"{where}.parameters")
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidRequest(f"'{where}.description' must be a string.", f"{where}.description")
    strict = optional(function, "strict", bool, f"{where}.strict")
    tool = {"type": "function", "name": string(function.get("name"), f"{where}.name"), "parameters": parameters,
            # Responses treats a missing `strict` as true, chat as false: always say it.
            "strict": bool(strict)}
    if description is not None:
        tool["description"] = description
    return tool


def _web_search_tool(options: Any) -> dict[str, Any]:
    if not isinstance(options, dict):
        raise InvalidRequest("'web_search_options' must be an object.", "web_search_options")
    tool: dict[str, Any] = {"type": "web_search"}
    size = options.get("search_context_size")
    if size is not None:
        if size not in ("low", "medium", "high"):
            raise InvalidRequest("'web_search_options.search_context_size' must be low, medium or high.",
                                 "web_search_options.search_context_size")
        tool["search_context_size"] = size
    location = options.get("user_location")
    if location is not None:
        approximate = location.get("approximate") if isinstance(location, dict) else None
        if not isinstance(approximate, dict):
            raise InvalidRequest("'web_search_options.user_location.approximate' must be an object.",
                                 "web_search_options.user_location")
        tool["user_location"] = {"type": "approximate", **{
            key: string(approximate[key], f"web_search_options.user_location.approximate.{key}")
            for key in ("city", "country", "region", "timezone") if approximate.get(key) is not None
        }}
    return tool


def _tool_choice(choice: Any) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function" and isinstance(choice.get("function"), dict):
            return {"type": "function", "name": string(choice["function"].get("name"), "tool_choice.function.name")}
        if kind == "custom" and isinstance(choice.get("custom"), dict):
            return {"type": "custom", "name": string(choice["custom"].get("name"), "tool_choice.custom.name")}
        if kind == "allowed_tools" and isinstance(choice.get("allowed_tools"), dict):
            allowed = choice["allowed_tools"]
            tools = allowed.get("tools")
            if not isinstance(tools, list) or allowed.get("mode") not in ("auto", "required"):
                raise InvalidRequest("'tool_choice.allowed_tools' needs a mode (auto or required) and a tools array.",
                                     "tool_choice.allowed_tools")
            return {"type": "allowed_tools", "mode": allowed["mode"], "tools": [_allowed_tool(t) for t in tools]}
    raise InvalidRequest(
        "'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}.",
        "tool_choice",
    )


def _allowed_tool(tool: Any) -> dict[str, Any]:
    if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
        return {"type": "function", "name": string(tool["function"].get("name"), "tool_choice.allowed_tools.tools")}
    if isinstance(tool, dict) and isinstance(tool.get("custom"), dict):
        return {"type": "custom", "name": string(tool["custom"].get("name"), "tool_choice.allowed_tools.tools")}
    raise InvalidRequest("Each of 'tool_choice.allowed_tools.tools' must name a function or custom tool.",
                         "tool_choice.allowed_tools.tools")


def _legacy_choice(function_call: Any) -> str | dict[str, Any]:
    if function_call in ("auto", "none"):
        return function_call
    if isinstance(function_call, dict):
        return {"type": "function", "function": {"name": function_call.get("name")}}
    raise InvalidRequest("'function_call' must be 'auto', 'none' or {\"name\": ...}.", "function_call")


# --- limits, reasoning, output format -----------------------------------------


def map_limits(draft: Draft, name: str, value: Any) -> None:
    """``max_completion_tokens``, or its legacy name ``max_tokens`` when it is the only one."""
    if "max_output_tokens" in draft.body:
        return
    value = positive_int(value, name)
    if value < MIN_OUTPUT_TOKENS:
        draft.adjusted.append(f"{name}={value}->{MIN_OUTPUT_TOKENS}")
        value = MIN_OUTPUT_TOKENS
    draft.body["max_output_tokens"] = value


def map_reasoning(draft: Draft, name: str, value: Any) -> None:
    """Responses' own ``reasoning`` (which some clients send), then chat's ``reasoning_effort``, which wins."""
    if name == "reasoning":
        given = typed(value, dict, name)
        draft.reasoning.update({key: given[key] for key in ("effort", "summary") if given.get(key) is not None})
    else:
        draft.reasoning["effort"] = value


def _settle_reasoning(draft: Draft) -> None:
    """The operator's defaults where the client gave none, and the values checked."""
    reasoning, options = draft.reasoning, draft.options
    if "effort" not in reasoning and options.reasoning_effort:
        reasoning["effort"] = options.reasoning_effort
    if "effort" in reasoning:
        check_choice(reasoning["effort"], REASONING_EFFORTS, "reasoning_effort")
    if "summary" in reasoning:
        check_choice(reasoning["summary"], REASONING_SUMMARIES, "reasoning.summary")
    if "summary" not in reasoning and options.reasoning_summary:
        reasoning["summary"] = options.reasoning_summary
        draft.summary_added = True
    if reasoning:
        draft.body["reasoning"] = reasoning


def map_text(draft: Draft, name: str, value: Any) -> None:
    """``response_format`` and ``verbosity``: Responses' ``text``."""
    text = draft.body.setdefault("text", {})
    if name == "response_format":
        text["format"] = _text_format(value)
    else:
        if value not in ("low", "medium", "high"):
            raise InvalidRequest("'verbosity' must be low, medium or high.", "verbosity")
        text["verbosity"] = value


def _text_format(response_format: Any) -> dict[str, Any]:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise InvalidRequest("'response_format.json_schema' must be an object with a 'name' and a 'schema'.",
                                 "response_format.json_schema")
        mapped = {"type": "json_schema", "name": string(spec.get("name"), "response_format.json_schema.name"),
                  "schema": spec.get("schema", {})}
        if spec.get("description") is not None:
            mapped["description"] = string(spec["description"], "response_format.json_schema.description")
        if spec.get("strict") is not None:
            mapped["strict"] = typed(spec["strict"], bool, "response_format.json_schema.strict")
        return mapped
    raise InvalidRequest("'response_format.type' must be text, json_object or json_schema.", "response_format")


def map_logprobs(draft: Draft, name: str, value: Any) -> None:
    """``logprobs`` asks for them in ``include``; ``top_logprobs`` needs it."""
    if name == "logprobs":
        if typed(value, bool, name):
            draft.body.setdefault("include", []).append("message.output_text.logprobs")
        return
    if not is_int(value) or not 0 <= value <= 20:
        raise InvalidRequest("'top_logprobs' must be an integer from 0 to 20.", name)
    if value and not draft.chat.get("logprobs"):
        raise InvalidRequest("'top_logprobs' requires 'logprobs' to be true.", name)
    if value:
        draft.body[name] = value


_SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast", "ultrafast")
_CACHE_RETENTIONS = ("in_memory", "24h")
_CACHE_OPTIONS = {"ttl": ("30m",), "mode": ("implicit", "explicit")}
_MODERATION_MODES = ("score", "block")
_CHOICES = {"service_tier": _SERVICE_TIERS, "prompt_cache_retention": _CACHE_RETENTIONS}


# Parameters that mean the same in both APIs, copied once checked: the upstream must never be the one to
# reject a field the proxy forwarded.


def copy_string(draft: Draft, name: str, value: Any) -> None:
    draft.body[name] = string(value, name)


def copy_safety_identifier(draft: Draft, name: str, value: Any) -> None:
    draft.body[name] = bounded_string(value, name, MAX_SAFETY_IDENTIFIER)


def copy_boolean(draft: Draft, name: str, value: Any) -> None:
    draft.body[name] = typed(value, bool, name)


def copy_choice(draft: Draft, name: str, value: Any) -> None:
    check_choice(value, _CHOICES[name], name)
    draft.body[name] = value


def copy_metadata(draft: Draft, name: str, value: Any) -> None:
    draft.body[name] = metadata(value, name)


def copy_cache_options(draft: Draft, name: str, cache: Any) -> None:
    """Prompt cache options, named alike in both APIs: the known ones checked, a null one left out (as not
    given), others (the options grow with the API) sent on."""
    checked = {}
    for key, value in typed(cache, dict, name).items():
        if value is None:
            continue
        allowed = _CACHE_OPTIONS.get(key)
        if allowed is not None:
            check_choice(value, allowed, f"{name}.{key}")
        checked[key] = value
    draft.body[name] = checked


def copy_moderation(draft: Draft, name: str, moderation: Any) -> None:
    """Moderated completions: the same object in both APIs, checked as far as its shape and policy modes; the
    moderation model is the upstream's to judge."""
    string(typed(moderation, dict, name).get("model"), "moderation.model")
    policy = optional(moderation, "policy", dict, "moderation.policy")
    if policy is not None:
        for side in ("input", "output"):
            config = policy.get(side)
            if config is None:
                continue
            if not isinstance(config, dict) or "mode" not in config:
                raise InvalidRequest(f"'moderation.policy.{side}' must be an object with a 'mode'.",
                                     f"moderation.policy.{side}")
            check_choice(config["mode"], _MODERATION_MODES, f"moderation.policy.{side}.mode")
    draft.body[name] = moderation


def map_stream(draft: Draft, name: str, stream: Any) -> None:
    """Whether the answer is streamed; the upstream streams too (the shell may choose to stream a non-streamed
    answer's upstream request as well)."""
    if typed(stream, bool, name):
        draft.stream = True
        draft.body["stream"] = True


def map_stream_options(draft: Draft, name: str, options: Any) -> None:
    """Whether a streamed answer ends with a usage chunk."""
    include_usage = optional(typed(options, dict, name), "include_usage", bool, f"{name}.include_usage")
    draft.include_usage = bool(draft.stream and include_usage)


def map_choices(draft: Draft, name: str, n: Any) -> None:
    """``n`` choices: the request runs ``n`` times upstream (the Responses API answers one at a time)."""
    max_n = draft.options.max_n
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= max_n:
        raise InvalidRequest(f"'n' must be an integer from 1 to {max_n}.", "n")
    draft.n = n


def map_stop(draft: Draft, name: str, stop: Any) -> None:
    """Stop sequences, which the Responses API does not have: the proxy ends the answer at one."""
    if stop == "":
        return
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(item, str) for item in stops):
        raise InvalidRequest("'stop' must be a string or an array of up to 4 strings.", "stop")
    draft.stop = tuple(item for item in stops if item)


def reject_audio(draft: Draft, name: str, value: Any) -> None:
    """Refuse, loudly, what the Responses API cannot do rather than answer wrongly: ``audio``, or ``audio`` in
    ``modalities``."""
    if name == "audio" or "audio" in typed(value, list, name):
        raise InvalidRequest("Audio output is not supported for this model.", name, "unsupported_parameter")
