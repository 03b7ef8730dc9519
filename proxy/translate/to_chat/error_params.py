"""The Responses names of the chat paths that need more than a rename: messages (made of input items or
instructions), tools (a function's fields one level up), tool_choice, response_format (Responses' text.format)
and reasoning_effort. Each is a row's ``errors`` in the Responses parameter table. Pure.
"""

from __future__ import annotations

from typing import Any

from ..paths import Mapped, Path, parse, renamed

# The chat fields of a message, a tool call or a function tool that have a Responses name; below a field not
# here (the parameters of a custom tool's function) the item is named instead.
_MESSAGE_FIELDS = {"role": ["role"], "content": ["content"]}
_TOOL_MESSAGE_FIELDS = {"tool_call_id": ["call_id"], "content": ["output"]}
_CALL_FIELDS = {"id": ["call_id"], "function": []}
_CALL_FUNCTION_FIELDS = {"name": ["name"], "arguments": ["arguments"]}
_FUNCTION_FIELDS = {"name": ["name"], "description": ["description"], "parameters": ["parameters"],
                    "strict": ["strict"]}


def messages_source(spelled: str, rest: Path, request: Any) -> Mapped | None:
    """``messages[i]...`` -> the input item (or instructions) behind the message; a tool call's fields -> its
    ``function_call`` item's."""
    if not rest or not isinstance(rest[0], int) or rest[0] >= len(request.sources):
        return None
    source, calls = request.sources[rest[0]]
    where, tail = parse(source), rest[1:]
    if where == ["previous_response_id"]:
        return where, False  # the stored history
    if tail[:1] == ["tool_calls"] and len(tail) > 1 and isinstance(tail[1], int) and tail[1] < len(calls):
        call, tail = parse(calls[tail[1]]), tail[2:]
        if tail[:1] == ["function"]:
            tail = tail[1:]
            return _named(call, tail, _CALL_FUNCTION_FIELDS) if tail else (call, False)
        return _named(call, tail, _CALL_FIELDS)
    if len(where) == 1:  # a string: instructions, or all of the input
        return where, not tail or tail == ["content"]
    role = request.body["messages"][rest[0]].get("role")
    if role != "tool" and tail[:1] == ["content"] and len(tail) > 1:  # content parts, one for one
        return ([*where, *tail], True) if tail[2:] in ([], ["text"], ["type"]) else ([*where, *tail[:2]], False)
    return _named(where, tail, _TOOL_MESSAGE_FIELDS if role == "tool" else _MESSAGE_FIELDS)


def tools_source(spelled: str, rest: Path, request: Any) -> Mapped | None:
    """``tools[i].function.parameters`` -> ``tools[k].parameters`` (or a namespace member's path)."""
    if not rest or not isinstance(rest[0], int):
        return None
    tools = request.body.get("tools", ())
    tool = request.state.tools.get(tools[rest[0]]["function"]["name"]) if rest[0] < len(tools) else None
    if tool is None:
        return None
    where, tail = parse(tool.source), rest[1:]
    if tail[:1] != ["function"]:
        return _named(where, tail, {})
    if tool.kind != "function" and tail[1:] != ["name"]:
        return where, False  # a custom tool's function is the proxy's making
    return _named(where, tail[1:], _FUNCTION_FIELDS) if tail[1:] else (where, True)


def tool_choice_source(spelled: str, rest: Path, request: Any) -> Mapped | None:
    """``tool_choice.function.name`` -> ``tool_choice.name``."""
    if rest[:1] == ["function"]:
        return (["tool_choice", "name"], True) if rest[1:] == ["name"] else (["tool_choice"], False)
    return _named(["tool_choice"], rest, {})


def text_source(spelled: str, rest: Path, request: Any) -> Mapped | None:
    """``response_format.json_schema.schema`` -> ``text.format.schema``; ``verbosity`` -> ``text.verbosity``."""
    if spelled == "verbosity":
        return ["text", "verbosity", *rest], True
    if rest[:1] == ["json_schema"]:
        rest = rest[1:]
    return ["text", "format", *rest], True


def reasoning_source(spelled: str, rest: Path, request: Any) -> Mapped | None:
    """``reasoning_effort`` -> ``reasoning.effort``."""
    return ["reasoning", "effort", *rest], True


def _named(where: Path, tail: Path, fields: dict[str, Path]) -> Mapped:
    """``where`` followed by ``tail`` with its first field renamed; the item alone (not all of the path) when
    that field has no Responses name."""
    return renamed(where, tail, fields) or (where, False)
