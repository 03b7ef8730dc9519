"""Responses request -> Chat Completions request: the values a translation is made of, and the handlers that
the Responses parameter table (:mod:`.params`) runs, each mapping the value of its parameter into the chat
request (checking it, and naming it in the client's terms when it is malformed); what depends on parameters
left out is done by :func:`new_draft` and :func:`finished`. Pure: no I/O, no framework.

What the answer needs to be mapped back (the tools' chat names, the request's settings echoed as the
Responses API echoes them) is returned as :class:`RequestState`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import InvalidRequest, ProxyError
from ..fields import (MAX_SAFETY_IDENTIFIER, bounded_string, check_choice, metadata, model_of, optional, positive_int,
                      string, typed)
from ..reasoning import REASONING_EFFORTS, REASONING_SUMMARIES
from ..table import Handler
from ..to_responses.response import CHAT_SERVICE_TIERS
from .reasoning_seal import ReasoningSeal

# Tools run by OpenAI's platform: a chat upstream has no counterpart, so they are left out (or refused).
BUILTIN_TOOLS = frozenset((
    "web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11", "file_search",
    "code_interpreter", "image_generation", "computer", "computer_use", "computer_use_preview", "mcp",
    "local_shell", "shell", "apply_patch", "tool_search",
))
# Input items that record what those tools did: history a chat upstream cannot be shown.
BUILTIN_ITEMS = frozenset((
    "web_search_call", "file_search_call", "computer_call", "computer_call_output", "code_interpreter_call",
    "image_generation_call", "local_shell_call", "local_shell_call_output", "shell_call", "shell_call_output",
    "apply_patch_call", "apply_patch_call_output", "mcp_call", "mcp_list_tools", "mcp_approval_request",
    "mcp_approval_response", "tool_search_call", "tool_search_output",
))
RESPONSE_SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast", "ultrafast")
VERBOSITIES = ("low", "medium", "high")
ENCRYPTED_REASONING = "reasoning.encrypted_content"  # the `include` value that asks for sealed reasoning
NAMESPACE_SEPARATOR = "__"  # a namespace member's chat function name: <namespace>__<member>
CUSTOM_INPUT = "input"  # the one string argument a custom tool's function takes


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """Operator settings for a chat-only upstream."""

    # The upstream takes its reasoning back as the assistant message's `reasoning_content` (DeepSeek-style
    # thinking with tools needs it); otherwise reasoning items in the input are left out.
    reasoning_history: bool = False
    # "max_completion_tokens", or "max_tokens" for upstreams that only know that one.
    max_tokens_param: str = "max_completion_tokens"
    # A built-in tool in the request is a 400 instead of being left out.
    refuse_builtin_tools: bool = False
    # Where the upstream puts its reasoning: "fields" (`reasoning_content` or `reasoning`), "think" (those, and
    # a `<think>` block at the start of the content), or "none" (left out).
    reasoning_source: str = "fields"
    # Seals reasoning items' `encrypted_content` and opens those that come back (the server key's holder).
    reasoning_seal: ReasoningSeal | None = None


@dataclass(frozen=True, slots=True)
class ToolName:
    """What a chat function name stands for in the client's request."""

    name: str
    kind: str = "function"  # "function" or "custom" (called with one string, answered as a custom_tool_call)
    namespace: str | None = None
    source: str = ""  # the tool's path in the client's request (tools[1].tools[0] for a namespace's member)


@dataclass(slots=True)
class RequestState:
    """What the answer needs to be mapped back: the tools by chat name and the settings the Response echoes."""

    model: str
    stream: bool = False
    tools: dict[str, ToolName] = field(default_factory=dict)
    echo: dict[str, Any] = field(default_factory=dict)
    reasoning_source: str = "fields"
    seal: ReasoningSeal | None = None  # reasoning items carry `encrypted_content` (asked for by `include`)


Source = tuple[str, tuple[str, ...]]  # a chat message's Responses path, and those of its tool calls


@dataclass(slots=True)
class ChatRequest:
    """The chat request body, what was left out or changed (``x-proxy-dropped-params`` and
    ``x-proxy-adjusted-params``), the state the answer is mapped back with, and where the body came from: the
    client's Responses request, and the path of the input item (or instructions) behind each chat message,
    to name the client's parameters in upstream errors."""

    body: dict[str, Any]
    state: RequestState
    dropped: list[str] = field(default_factory=list)
    adjusted: list[str] = field(default_factory=list)
    request: dict[str, Any] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)
    # The input as items, each `item_reference` replaced by the item it names (what a stored response lists).
    input_items: list[dict[str, Any]] = field(default_factory=list)
    # Reasoning items whose `encrypted_content` was sealed under another key (another process, a changed key):
    # their own text served instead.
    unopened: list[str] = field(default_factory=list)


class Draft:
    """One request being mapped: the chat body so far, the report, and what the answer will need."""

    __slots__ = ("request", "options", "body", "state", "dropped", "adjusted", "history", "input_mapped", "sources",
                 "input_items", "known", "unopened")

    def __init__(self, request: dict[str, Any], options: ChatOptions, history: Sequence[Any] | None) -> None:
        self.request = request
        self.options = options
        self.body: dict[str, Any] = {"messages": []}
        self.sources: list[Source] = []  # beside body["messages"]
        self.state = RequestState(model="", reasoning_source=options.reasoning_source)
        self.dropped: list[str] = []
        self.adjusted: list[str] = []
        self.history = history
        self.input_mapped = False
        self.input_items: list[dict[str, Any]] = []
        self.known: dict[str, dict[str, Any]] = {}  # the items an `item_reference` may name, by id
        self.unopened: list[str] = []


def new_draft(request: Any, options: ChatOptions, history: Sequence[Any] | None) -> Draft:
    """A draft for a parsed Responses request: an object with a model, its echoed settings the API's defaults
    until the table's handlers set them."""
    model = model_of(request)
    draft = Draft(request, options, history)
    draft.state.model = draft.state.echo["model"] = model
    for key, value in _ECHO_DEFAULTS.items():
        draft.state.echo[key] = dict(value) if isinstance(value, dict) else value
    return draft


def finished(draft: Draft, dropped: list[str]) -> ChatRequest:
    """The chat request, once the table's handlers have run: the history when there was no input, and what
    depends on tools left out."""
    if not draft.input_mapped and draft.history:
        map_input(draft, "input", None)
    if not draft.body["messages"]:
        raise InvalidRequest("The request has no input: give 'input' (a string or an array of items).", "input")
    _settle_tool_choice(draft)
    body = {"model": draft.state.model, **draft.body}
    return ChatRequest(body, draft.state, [*draft.dropped, *dropped], draft.adjusted, draft.request, draft.sources,
                       draft.input_items, draft.unopened)


# --- model, instructions, input -----------------------------------------------


def map_instructions(draft: Draft, key: str, instructions: Any) -> None:
    draft.state.echo["instructions"] = instructions
    if isinstance(instructions, str):
        if instructions:
            draft.body["messages"].insert(0, {"role": "system", "content": instructions})
            draft.sources.insert(0, (key, ()))
        return
    if isinstance(instructions, list):  # the API echoes them as input items; here they lead the conversation
        messages = _Messages(draft)
        for index, item in enumerate(instructions):
            messages.add(item, f"{key}[{index}]")
        draft.body["messages"][:0] = messages.finish()
        draft.sources[:0] = messages.sources
        return
    raise InvalidRequest("Invalid type for 'instructions': expected a string or an array of input items.",
                         "instructions")


def map_input(draft: Draft, key: str, value: Any) -> None:
    draft.input_mapped = True
    messages = _Messages(draft)
    if isinstance(value, list) and any(isinstance(item, dict) and item.get("type") == "item_reference"
                                       for item in value):
        draft.known = _known_items([*(draft.history or ()), *value])
    for item in draft.history or ():
        messages.add(item, "previous_response_id")
    if isinstance(value, str):
        messages.flush()
        messages.emit({"role": "user", "content": value}, key)
        draft.input_items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    elif isinstance(value, list):
        for index, item in enumerate(value):
            messages.add(item, f"{key}[{index}]")  # each an object once added
            reference = item.get("type") == "item_reference"
            draft.input_items.append(_referenced(draft, item, f"{key}[{index}]") if reference else item)
    elif value is not None:
        raise InvalidRequest("Invalid type for 'input': expected a string or an array of input items.", key)
    draft.body["messages"].extend(messages.finish())
    draft.sources.extend(messages.sources)


def _known_items(items: list[Any]) -> dict[str, dict[str, Any]]:
    """The items an ``item_reference`` may name, by id: those of the ``previous_response_id`` chain and the
    request's own input (a reference names an item, never another reference)."""
    return {item["id"]: item for item in items
            if isinstance(item, dict) and isinstance(item.get("id"), str) and item.get("type") != "item_reference"}


def _referenced(draft: Draft, reference: dict[str, Any], where: str) -> dict[str, Any]:
    """The item an ``item_reference`` names; 404 as the API answers when there is none."""
    item_id = string(reference.get("id"), f"{where}.id")
    found = draft.known.get(item_id)
    if found is None:
        raise ProxyError(404, f"Item with id '{item_id:.200}' not found.", "invalid_request_error", "input")
    return found


def map_history(draft: Draft, key: str, value: Any) -> None:
    draft.state.echo[key] = string(value, key)
    if draft.history is None:
        raise ProxyError(404, f"Previous response with id '{value}' not found.", "invalid_request_error", key,
                         "previous_response_not_found")


def refuse_stored(draft: Draft, key: str, value: Any) -> None:
    """A parameter whose meaning is stored on OpenAI's platform: leaving it out would answer another question."""
    raise InvalidRequest(f"'{key}' is not supported for this model.", key, "unsupported_parameter")


class _Messages:
    """Input items -> chat messages. An assistant turn (its reasoning, text and tool calls) is one message."""

    __slots__ = ("draft", "out", "sources", "turn", "turn_source", "turn_calls", "reasoning")

    def __init__(self, draft: Draft) -> None:
        self.draft = draft
        self.out: list[dict[str, Any]] = []
        self.sources: list[Source] = []  # beside out
        self.turn: dict[str, Any] | None = None  # the assistant message being gathered
        self.turn_source = ""  # the path of the item that began it
        self.turn_calls: list[str] = []  # the paths of its tool calls' items
        self.reasoning: list[str] = []  # reasoning waiting for the assistant message it preceded

    def finish(self) -> list[dict[str, Any]]:
        self.flush()
        return self.out

    def emit(self, message: dict[str, Any], where: str, calls: tuple[str, ...] = ()) -> None:
        self.out.append(message)
        self.sources.append((where, calls))

    def flush(self) -> None:
        self.close_turn()
        self.reasoning = []

    def close_turn(self) -> None:
        if self.turn is not None:
            self.emit(self.turn, self.turn_source, tuple(self.turn_calls))
            self.turn = None

    def assistant(self, where: str, fresh: bool = False) -> dict[str, Any]:
        """The assistant message to add to, or (``fresh``) a new one; ``where`` is the item that adds to it."""
        if fresh:
            self.close_turn()
        if self.turn is None:
            self.turn_source, self.turn_calls = where, []
            self.turn = {"role": "assistant", "content": None}
            if self.reasoning:
                self.turn["reasoning_content"] = "\n\n".join(self.reasoning)
                self.reasoning = []
        return self.turn

    def add(self, item: Any, where: str) -> None:
        if not isinstance(item, dict):
            raise InvalidRequest(f"Invalid type for '{where}': expected an input item object.", where)
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"
        string(kind, f"{where}.type")
        handler = _ITEMS.get(kind)
        if handler is not None:
            handler(self, item, where)
        elif kind in BUILTIN_ITEMS:
            self.draft.dropped.append(where)
        elif kind == "item_reference":
            self.add(_referenced(self.draft, item, where), where)
        else:
            raise InvalidRequest(f"Invalid value for '{where}.type': {kind!r:.100}.", f"{where}.type", "invalid_value")

    def message(self, item: dict[str, Any], where: str) -> None:
        role = item.get("role")
        content = item.get("content")
        if role == "assistant":
            text, refusal = _assistant_content(content, f"{where}.content")
            if text is None and refusal is None:
                return
            # Text after text, or after tool calls (chat puts a message's text before its calls), is a new message.
            turn = self.assistant(where, fresh=self.turn is not None and (self.turn["content"] is not None
                                                                          or "tool_calls" in self.turn))
            turn["content"] = text
            if refusal is not None:
                turn["refusal"] = refusal
            return
        if role not in ("user", "system", "developer"):
            raise InvalidRequest(f"Invalid value for '{where}.role': {role!r:.100}. Supported values are user, "
                                 "assistant, system and developer.", f"{where}.role", "invalid_value")
        self.flush()
        chat_role = "user" if role == "user" else "system"  # chat-only upstreams know no developer role
        self.emit({"role": chat_role, "content": _content(content, f"{where}.content", role)}, where)

    def function_call(self, item: dict[str, Any], where: str) -> None:
        name = string(item.get("name"), f"{where}.name")
        namespace = item.get("namespace")
        if namespace is not None:
            name = _namespaced(string(namespace, f"{where}.namespace"), name)
        self._call(item, where, name, string(item.get("arguments"), f"{where}.arguments"))

    def custom_tool_call(self, item: dict[str, Any], where: str) -> None:
        name = string(item.get("name"), f"{where}.name")
        namespace = item.get("namespace")
        if namespace is not None:
            name = _namespaced(string(namespace, f"{where}.namespace"), name)
        self._call(item, where, name, json.dumps({CUSTOM_INPUT: string(item.get("input"), f"{where}.input")},
                                                 ensure_ascii=False))

    def _call(self, item: dict[str, Any], where: str, name: str, arguments: str) -> None:
        call_id = string(item.get("call_id"), f"{where}.call_id")
        turn = self.assistant(where)
        turn.setdefault("tool_calls", []).append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
        self.turn_calls.append(where)

    def call_output(self, item: dict[str, Any], where: str) -> None:
        call_id = string(item.get("call_id"), f"{where}.call_id")
        self.flush()
        self.emit({"role": "tool", "tool_call_id": call_id, "content": self._output(item.get("output"),
                                                                                   f"{where}.output")}, where)

    def _output(self, output: Any, where: str) -> str:
        """A tool's output as text: chat tool messages carry text only, so other parts are reported dropped."""
        if isinstance(output, str):
            return output
        if not isinstance(output, list):
            raise InvalidRequest(f"Invalid type for '{where}': expected a string or an array of content parts.",
                                 where)
        texts = []
        for index, part in enumerate(output):
            spot = f"{where}[{index}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("input_text", "output_text"):
                texts.append(string(part.get("text"), f"{spot}.text"))
            elif kind in ("input_image", "input_file"):
                self.draft.dropped.append(spot)
            else:
                raise InvalidRequest(f"Invalid content part at '{spot}': expected input_text, input_image or "
                                     "input_file.", spot)
        return "".join(texts)

    def reasoning_item(self, item: dict[str, Any], where: str) -> None:
        if not self.draft.options.reasoning_history:
            return
        text = self._unsealed(item, where)
        if text is None:
            text = "\n\n".join(_reasoning_texts(item, where))
        if not text:
            return
        self.close_turn()  # reasoning comes before the answer it led to: that one is finished
        self.reasoning.append(text)

    def _unsealed(self, item: dict[str, Any], where: str) -> str | None:
        """The reasoning sealed in the item's ``encrypted_content``: its text, or "" when another model wrote it
        (the upstream takes back its own reasoning only); None when the proxy has no seal there it can open (the
        item's own text serves). An altered seal is a 400, as the API answers for encrypted content it cannot
        verify."""
        sealed, seal = item.get("encrypted_content"), self.draft.options.reasoning_seal
        if sealed is None or seal is None:
            return None
        opened = seal.open(string(sealed, f"{where}.encrypted_content"))
        if opened.kind == "altered":
            raise InvalidRequest(f"The encrypted content {sealed[:8]}...{sealed[-4:]} could not be verified.",
                                 f"{where}.encrypted_content", "invalid_encrypted_content")
        if opened.kind == "foreign":
            self.draft.unopened.append(where)
        if opened.kind != "reasoning":
            return None
        return opened.text if opened.model.lower() == self.draft.state.model.lower() else ""


_ITEMS: dict[str, Callable[[_Messages, dict[str, Any], str], None]] = {
    "message": _Messages.message,
    "function_call": _Messages.function_call,
    "custom_tool_call": _Messages.custom_tool_call,
    "function_call_output": _Messages.call_output,
    "custom_tool_call_output": _Messages.call_output,
    "reasoning": _Messages.reasoning_item,
}


def _reasoning_texts(item: dict[str, Any], where: str) -> list[str]:
    """A reasoning item's text: its raw reasoning where the client kept it, else its summary."""
    texts = []
    for key, kind in (("content", "reasoning_text"), ("summary", "summary_text")):
        parts = item.get(key)
        if parts is None:
            continue
        for index, part in enumerate(typed(parts, list, f"{where}.{key}")):
            if not isinstance(part, dict) or part.get("type") != kind:
                raise InvalidRequest(f"Invalid value for '{where}.{key}[{index}]': expected a {kind} part.",
                                     f"{where}.{key}[{index}]")
            texts.append(string(part.get("text"), f"{where}.{key}[{index}].text"))
        if texts:
            return texts
    return texts


def _assistant_content(content: Any, where: str) -> tuple[str | None, str | None]:
    """An assistant message's text and refusal, each joined, None when absent."""
    if isinstance(content, str):
        return content, None
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid type for '{where}': expected a string or an array of content parts.", where)
    texts, refusals = [], []
    for index, part in enumerate(content):
        spot = f"{where}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("output_text", "input_text"):
            texts.append(string(part.get("text"), f"{spot}.text"))
        elif kind == "refusal":
            refusals.append(string(part.get("refusal"), f"{spot}.refusal"))
        else:
            raise InvalidRequest(f"Invalid content part at '{spot}': an assistant message holds output_text and "
                                 "refusal parts.", f"{spot}.type")
    return ("".join(texts) if texts else None), ("".join(refusals) if refusals else None)


def _content(content: Any, where: str, role: str) -> str | list[dict[str, Any]]:
    """User, system and developer content: a string, or chat content parts (one text part as a string,
    which every chat upstream reads)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid type for '{where}': expected a string or an array of content parts.", where)
    parts = [_part(part, f"{where}[{index}]", role) for index, part in enumerate(content)]
    if all(part["type"] == "text" for part in parts) and (len(parts) <= 1 or role != "user"):
        return "".join(part["text"] for part in parts)
    return parts


_IMAGE_DETAILS = ("auto", "low", "high")


def _part(part: Any, where: str, role: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": string(part.get("text"), f"{where}.text")}
    if kind == "refusal":
        return {"type": "text", "text": string(part.get("refusal"), f"{where}.refusal")}
    if role == "user" and kind == "input_image":
        return _image(part, where)
    if role == "user" and kind == "input_file":
        return _file(part, where)
    expected = "input_text, input_image or input_file" if role == "user" else "input_text"
    raise InvalidRequest(f"Invalid content part at '{where}': a {role} message holds {expected} parts.",
                         f"{where}.type", "invalid_value")


def _image(part: dict[str, Any], where: str) -> dict[str, Any]:
    url = part.get("image_url")
    if url is None:
        raise InvalidRequest(f"'{where}' needs an 'image_url': images by 'file_id' are not supported for this model.",
                             f"{where}.image_url", "unsupported_parameter")
    image = {"url": string(url, f"{where}.image_url")}
    detail = part.get("detail")
    if detail is not None and detail != "auto":
        if detail not in (*_IMAGE_DETAILS, "original"):
            raise InvalidRequest(f"Invalid value for '{where}.detail': {detail!r:.100}.", f"{where}.detail",
                                 "invalid_value")
        image["detail"] = "high" if detail == "original" else detail  # chat's finest is high
    return {"type": "image_url", "image_url": image}


def _file(part: dict[str, Any], where: str) -> dict[str, Any]:
    if part.get("file_url") is not None and part.get("file_data") is None and part.get("file_id") is None:
        raise InvalidRequest(f"'{where}.file_url' is not supported for this model: send 'file_data' or 'file_id'.",
                             f"{where}.file_url", "unsupported_parameter")
    file = {key: string(part[key], f"{where}.{key}") for key in ("file_data", "file_id", "filename")
            if part.get(key) is not None}
    if "file_data" not in file and "file_id" not in file:
        raise InvalidRequest(f"'{where}' needs 'file_data' or 'file_id'.", where)
    return {"type": "file", "file": file}


# --- tools ----------------------------------------------------------------------


def _namespaced(namespace: str, name: str) -> str:
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}"


def map_tools(draft: Draft, key: str, tools: Any) -> None:
    if not isinstance(tools, list):
        raise InvalidRequest("Invalid type for 'tools': expected an array of tool objects.", "tools")
    chat_tools: list[dict[str, Any]] = []
    echoed: list[dict[str, Any]] = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(kind, str):
            raise InvalidRequest(f"'{where}' must be a tool object with a 'type'.", f"{where}.type")
        if kind == "namespace":
            namespace = string(tool.get("name"), f"{where}.name")
            members = tool.get("tools")
            if not isinstance(members, list) or not members:
                raise InvalidRequest(f"'{where}.tools' must be a non-empty array of function or custom tools.",
                                     f"{where}.tools")
            prefix = string(tool["description"], f"{where}.description") if tool.get("description") else ""
            for number, member in enumerate(members):
                spot = f"{where}.tools[{number}]"
                member_kind = member.get("type") if isinstance(member, dict) else None
                if member_kind not in ("function", "custom"):
                    raise InvalidRequest(f"'{spot}' must be a function or custom tool.", f"{spot}.type")
                chat_tools.append(_member(draft, member, spot, member_kind, namespace, prefix))
            echoed.append({**_without_nulls(tool), "description": prefix})  # a string, in the Response
        elif kind in ("function", "custom"):
            chat_tools.append(_member(draft, tool, where, kind, None, ""))
            echoed.append(_echoed_tool(tool, kind))
        elif kind in BUILTIN_TOOLS and draft.options.refuse_builtin_tools:
            raise InvalidRequest(f"The built-in tool '{kind}' is not supported for this model.", f"{where}.type",
                                 "unsupported_tool")
        else:  # built-in, or newer than this proxy: nothing a chat upstream can run
            draft.dropped.append(f"{where}.{kind}" if kind in BUILTIN_TOOLS else where)
    if chat_tools:
        draft.body["tools"] = chat_tools
    draft.state.echo["tools"] = echoed


def _member(draft: Draft, tool: dict[str, Any], where: str, kind: str, namespace: str | None,
            prefix: str) -> dict[str, Any]:
    """A function or custom tool (alone or a namespace's member) as a chat function tool."""
    name = string(tool.get("name"), f"{where}.name")
    chat_name = _namespaced(namespace, name) if namespace else name
    if chat_name in draft.state.tools:
        raise InvalidRequest(f"Duplicate tool name '{chat_name}' at '{where}.name'.", f"{where}.name",
                             "duplicate_tool_name")
    draft.state.tools[chat_name] = ToolName(name, kind, namespace, where)
    description = tool.get("description")
    if description is not None:
        description = string(description, f"{where}.description")
    description = "\n\n".join(filter(None, (prefix, description)))
    function: dict[str, Any] = {"name": chat_name}
    if kind == "function":
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise InvalidRequest(f"Invalid type for '{where}.parameters': expected a JSON schema object.",
                                 f"{where}.parameters")
        strict = optional(tool, "strict", bool, f"{where}.strict")
        if description:
            function["description"] = description
        function["parameters"] = parameters if parameters is not None else {"type": "object", "properties": {}}
        if strict is not None:
            function["strict"] = strict
    else:
        grammar = _custom_format(tool.get("format"), f"{where}.format")
        function["description"] = "\n\n".join(filter(None, (description, grammar)))
        function["parameters"] = {
            "type": "object",
            "properties": {CUSTOM_INPUT: {"type": "string", "description": "The tool's raw input text."}},
            "required": [CUSTOM_INPUT],
            "additionalProperties": False,
        }
    return {"type": "function", "function": function}


def _custom_format(value: Any, where: str) -> str:
    """What a custom tool's format asks of its input, told to the model in the function's description."""
    if value is None:
        return ""
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return ""
    if kind == "grammar" and value.get("syntax") in ("lark", "regex"):
        definition = string(value.get("definition"), f"{where}.definition")
        return (f"Give the input as the string argument '{CUSTOM_INPUT}'. It must match this {value['syntax']} "
                f"grammar:\n```\n{definition}\n```")
    raise InvalidRequest(f"'{where}' must be {{\"type\": \"text\"}} or a grammar with a syntax (lark or regex) and "
                         "a definition.", where)


def _echoed_tool(tool: dict[str, Any], kind: str) -> dict[str, Any]:
    """A tool as the Response lists it: function tools with every field the API fills in; a custom tool as sent,
    but for null fields."""
    if kind == "custom":
        return _without_nulls(tool)
    return {"type": "function", "name": tool["name"], "description": tool.get("description"),
            "parameters": tool.get("parameters"), "strict": True if tool.get("strict") is None else tool["strict"]}


def _without_nulls(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool as sent, but for null fields: the Response lists them absent (its fields are never null)."""
    return {key: value for key, value in tool.items() if value is not None}


def map_tool_choice(draft: Draft, key: str, choice: Any) -> None:
    draft.state.echo["tool_choice"] = choice
    if choice in ("auto", "none", "required"):
        draft.body["tool_choice"] = choice
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("function", "custom"):
        draft.body["tool_choice"] = {"type": "function",
                                       "function": {"name": _chosen(draft, choice, "tool_choice", kind)}}
        return
    if kind == "allowed_tools":
        tools = choice.get("tools")
        if not isinstance(tools, list) or choice.get("mode") not in ("auto", "required"):
            raise InvalidRequest("'tool_choice' of type allowed_tools needs a mode (auto or required) and a tools "
                                 "array.", "tool_choice")
        allowed = set()
        for index, tool in enumerate(tools):
            where = f"tool_choice.tools[{index}]"
            tool_kind = tool.get("type") if isinstance(tool, dict) else None
            if isinstance(tool_kind, str) and tool_kind in BUILTIN_TOOLS:
                continue  # the model may use it: it cannot, as it may not use what was left out
            if tool_kind not in ("function", "custom"):
                raise InvalidRequest(f"'{where}' must name a function or custom tool.", where)
            allowed.add(_chosen(draft, tool, where, tool_kind))
        # Chat-only upstreams rarely know allowed_tools: the tools not allowed are left out instead.
        draft.body["tools"] = [tool for tool in draft.body.get("tools", ()) if tool["function"]["name"] in allowed]
        draft.body["tool_choice"] = choice["mode"]
        draft.adjusted.append(f"tool_choice=allowed_tools->{choice['mode']}")
        return
    if isinstance(kind, str) and (kind in BUILTIN_TOOLS or kind in ("mcp", "apply_patch", "shell")):
        raise InvalidRequest(f"'tool_choice' forces the built-in tool '{kind}', which is not supported for this "
                             "model.", "tool_choice", "unsupported_tool")
    raise InvalidRequest("Invalid value for 'tool_choice': expected 'auto', 'none', 'required', or an object naming "
                         "a function or custom tool.", "tool_choice", "invalid_value")


def _chosen(draft: Draft, choice: dict[str, Any], where: str, kind: str) -> str:
    """The chat function name of a tool that ``tool_choice`` names; a 400 when no such tool was offered."""
    name = string(choice.get("name"), f"{where}.name")
    for chat_name, tool in draft.state.tools.items():
        if tool.kind == kind and (chat_name == name or (tool.namespace and tool.name == name)):
            return chat_name
    raise InvalidRequest(f"'{where}.name' names the {kind} tool '{name}', which is not in 'tools'.", f"{where}.name",
                         "invalid_value")


def _settle_tool_choice(draft: Draft) -> None:
    """With no tool left for the upstream, what says how to use tools goes too: only ``required`` (which
    could only mean one of the tools left out) is refused."""
    if draft.body.get("tools"):
        return
    draft.body.pop("tools", None)
    if draft.body.get("tool_choice") == "required":
        raise InvalidRequest("'tool_choice' is 'required' but no tool this model can call was given.", "tool_choice",
                             "unsupported_tool")
    for key in ("tool_choice", "parallel_tool_calls"):
        if draft.body.pop(key, None) is not None and key in draft.request:
            draft.dropped.append(key)


def copy_parallel_tool_calls(draft: Draft, key: str, value: Any) -> None:
    draft.body[key] = draft.state.echo[key] = typed(value, bool, key)


# --- output format, reasoning, limits -------------------------------------------


def _given(fields: Any, where: str) -> Iterator[tuple[str, Any]]:
    """The fields an object gives a value (null is not given)."""
    return ((key, value) for key, value in typed(fields, dict, where).items() if value is not None)


def map_text(draft: Draft, name: str, text: Any) -> None:
    echo = dict(draft.state.echo["text"])
    for key, value in _given(text, name):
        if key == "format":
            echo["format"] = value
            response_format = _response_format(value)
            if response_format is not None:
                draft.body["response_format"] = response_format
        elif key == "verbosity":
            check_choice(value, VERBOSITIES, "text.verbosity")
            draft.body["verbosity"] = echo["verbosity"] = value
        else:
            draft.dropped.append(f"text.{key}")
    draft.state.echo["text"] = echo


def _response_format(value: Any) -> dict[str, Any] | None:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None  # chat's default; some upstreams refuse response_format altogether
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = value.get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequest("Invalid type for 'text.format.schema': expected a JSON schema object.",
                                 "text.format.schema")
        spec: dict[str, Any] = {"name": string(value.get("name"), "text.format.name"), "schema": schema}
        if value.get("description") is not None:
            spec["description"] = string(value["description"], "text.format.description")
        if value.get("strict") is not None:
            spec["strict"] = typed(value["strict"], bool, "text.format.strict")
        return {"type": "json_schema", "json_schema": spec}
    raise InvalidRequest("Invalid value for 'text.format.type': expected text, json_object or json_schema.",
                         "text.format.type", "invalid_value")


def map_reasoning(draft: Draft, name: str, reasoning: Any) -> None:
    echo = dict(draft.state.echo["reasoning"])
    for key, value in _given(reasoning, name):
        if key == "effort":
            check_choice(value, REASONING_EFFORTS, "reasoning.effort")
            draft.body["reasoning_effort"] = echo["effort"] = value
        else:  # a chat upstream's reasoning comes as it comes: the summary asked for is only echoed
            if key in ("summary", "generate_summary"):
                check_choice(value, REASONING_SUMMARIES, f"reasoning.{key}")
                echo[key] = value
            draft.dropped.append(f"reasoning.{key}")
    draft.state.echo["reasoning"] = echo


def map_include(draft: Draft, key: str, include: Any) -> None:
    """``reasoning.encrypted_content`` makes reasoning items carry their sealed reasoning; what else a request
    may include has no chat counterpart (reported dropped)."""
    for index, value in enumerate(typed(include, list, key)):
        if string(value, f"{key}[{index}]") == ENCRYPTED_REASONING and draft.options.reasoning_seal is not None:
            draft.state.seal = draft.options.reasoning_seal
        else:
            draft.dropped.append(f"{key}[{index}]")


def map_max_output_tokens(draft: Draft, key: str, value: Any) -> None:
    draft.body[draft.options.max_tokens_param] = draft.state.echo[key] = positive_int(value, key)


def copy_number(low: float, high: float) -> Handler:
    """A number in [low, high], copied."""
    def copy(draft: Draft, key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise InvalidRequest(f"Invalid '{key}': expected a number from {low:g} to {high:g}, got {value!r:.100}.",
                                 key, "invalid_value")
        draft.body[key] = draft.state.echo[key] = value
    return copy


def copy_string(draft: Draft, key: str, value: Any) -> None:
    draft.body[key] = draft.state.echo[key] = string(value, key)


def copy_safety_identifier(draft: Draft, key: str, value: Any) -> None:
    draft.body[key] = draft.state.echo[key] = bounded_string(value, key, MAX_SAFETY_IDENTIFIER)


def copy_metadata(draft: Draft, key: str, value: Any) -> None:
    draft.state.echo[key] = metadata(value, key)
    if value:
        draft.body[key] = value


def map_service_tier(draft: Draft, key: str, tier: Any) -> None:
    check_choice(tier, RESPONSE_SERVICE_TIERS, key)
    draft.state.echo[key] = tier
    if tier in CHAT_SERVICE_TIERS:
        draft.body["service_tier"] = tier
    else:
        draft.dropped.append("service_tier")


def map_stream(draft: Draft, key: str, stream: Any) -> None:
    if typed(stream, bool, "stream"):
        draft.state.stream = True
        draft.body["stream"] = True
        draft.body["stream_options"] = {"include_usage": True}  # usage comes in a last chunk


def map_background(draft: Draft, key: str, background: Any) -> None:
    """A background response is kept to be retrieved, so it must be stored, as the API requires."""
    draft.state.echo[key] = typed(background, bool, key)
    if background and draft.request.get("store") is False:
        raise InvalidRequest("Background mode requires 'store' to be true: a background response is kept so "
                             "that it can be retrieved.", "store", "invalid_value")


def echoed(kind: type, allowed: tuple[Any, ...] | range | None = None) -> Handler:
    """A setting with no chat counterpart that the Response echoes (its row reports it dropped): checked, and
    echoed."""
    def echo(draft: Draft, key: str, value: Any) -> None:
        if allowed is not None and typed(value, kind, key) not in allowed:
            raise InvalidRequest(f"Invalid value for '{key}': {value!r:.100}.", key, "invalid_value")
        draft.state.echo[key] = typed(value, kind, key)
    return echo


# The Response's settings when the request leaves them out, as the API fills them in.
_ECHO_DEFAULTS: dict[str, Any] = {
    "instructions": None, "tools": [], "tool_choice": "auto", "parallel_tool_calls": True, "temperature": 1.0,
    "top_p": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
    "reasoning": {"effort": None, "summary": None}, "max_output_tokens": None, "max_tool_calls": None,
    "metadata": {}, "store": True, "background": False, "previous_response_id": None, "truncation": "disabled",
    "top_logprobs": 0, "user": None, "safety_identifier": None, "prompt_cache_key": None, "service_tier": "auto",
    "prompt_cache_retention": None,
}


