"""Upstream errors in the client's terms. Pure: no I/O, no framework.

An upstream refusing a translated request names the Responses parameter it
refused (``input[3].content[0].image_url``, ``tools[0].parameters``,
``max_output_tokens``), while the client sent chat parameters
(``messages[2].content[0].image_url.url``, ``tools[0].function.parameters``,
``max_completion_tokens``). The error's ``param`` is given the chat path, and
the message's quoted mentions of the Responses path too when the whole path
maps; where only its start maps (an input item, a tool) ``param`` names that
part of the chat request and the message stays as the upstream wrote it.
Paths with no chat counterpart (what the proxy added) are left alone. Applied
to the upstream's refusal of the request and to the failures its stream reports.
"""

from __future__ import annotations

from typing import Any

from ..paths import Mapped, Path, renamed
from .request import Translation


def messages_param(spelled: str, rest: Path, translation: Translation) -> Mapped | None:
    if spelled == "instructions":  # the leading system messages, joined
        return ["messages"], False
    return _input_param(rest, translation) if rest else (["messages"], True)


def _input_param(rest: Path, translation: Translation) -> Mapped | None:
    index = rest[0]
    sources = translation.provenance.sources
    if not isinstance(index, int) or index >= len(sources) or sources[index] is None:
        return None  # an item the proxy put there (reasoning kept from an earlier turn)
    position = sources[index]
    message = translation.provenance.request["messages"][position]
    inputs = translation.upstream.body["input"]
    item = inputs[index]
    where: Path = ["messages", position]
    tail = rest[1:]
    kind = item.get("type")
    if kind in _CALLS:
        # The message's calls are its items in order: ``tool_calls``, then a legacy ``function_call``.
        order = sum(1 for earlier in range(index) if sources[earlier] == position
                    and inputs[earlier].get("type") in _CALLS)
        return _history_call_param(where, tail, message, item, order)
    if kind == "function_call_output":
        renames = {"output": ["content"], "call_id": ["name" if message.get("role") == "function" else "tool_call_id"]}
        return renamed(where, tail, renames) or (where, False)
    if not tail or tail == ["role"]:
        return where + tail, True
    if tail[0] != "content" or message.get("content") is None:  # (an assistant's refusal may be its only part)
        return where, False
    return _content_param([*where, "content"], tail[1:], message.get("content"), item.get("content"))


_CALLS = ("function_call", "custom_tool_call")


def _history_call_param(where: Path, tail: Path, message: dict[str, Any], item: dict[str, Any], order: int) -> Mapped:
    """The ``order``-th tool call of an earlier answer: one of the assistant message's ``tool_calls``, or its
    legacy ``function_call``."""
    calls = message.get("tool_calls") if isinstance(message.get("tool_calls"), list) else []
    if order >= len(calls):
        where = [*where, "function_call"]
        renames = {"name": ["name"], "arguments": ["arguments"]}
    else:
        where = [*where, "tool_calls", order]
        nested = "custom" if item.get("type") == "custom_tool_call" else "function"
        renames = {"call_id": ["id"], "name": [nested, "name"], "arguments": [nested, "arguments"],
                   "input": [nested, "input"]}
    return renamed(where, tail, renames) or (where, False)


_PART_RENAMES = {
    "image_url": {"image_url": ["image_url", "url"], "detail": ["image_url", "detail"]},
    "file": {key: ["file", key] for key in ("file_data", "file_id", "filename")},
}


def _content_param(where: Path, tail: Path, sent: Any, mapped: Any) -> Mapped:
    """A message's content: its parts match one to one when both are lists of the same length."""
    if not tail:
        return where, True
    if not (isinstance(tail[0], int) and isinstance(sent, list) and isinstance(mapped, list)
            and len(sent) == len(mapped) and tail[0] < len(sent) and isinstance(sent[tail[0]], dict)):
        return where, False
    part = sent[tail[0]]
    renames = _PART_RENAMES.get(part.get("type"))
    if renames is None:
        return [*where, *tail], True
    return renamed([*where, tail[0]], tail[1:], renames) or ([*where, tail[0]], False)


def tools_param(_: str, rest: Path, translation: Translation) -> Mapped | None:
    """A tool of ``tools``, ``functions`` or ``web_search_options``."""
    if not rest:
        return None
    index = rest[0]
    sources = translation.provenance.tool_sources
    if not isinstance(index, int) or index >= len(sources) or sources[index] is None:
        return None
    where = list(sources[index])
    tail = rest[1:]
    kind = translation.upstream.body["tools"][index].get("type")
    if not tail:
        return where, True
    if where[0] == "tools" and kind in ("function", "custom"):
        fields = ("name", "description", "parameters", "strict") if kind == "function" else ("name", "description", "format")
        return renamed(where, tail, {name: [kind, name] for name in fields}) or (where, False)
    if where[0] == "functions" or tail == ["search_context_size"]:  # named alike
        return where + tail, True
    return where, False


def format_param(_: str, rest: Path, translation: Translation) -> Mapped | None:
    """``text.format``: the ``json_schema`` object's fields are one level up in Responses."""
    if not rest or rest[0] == "type":
        return ["response_format", *rest], True
    return ["response_format", "json_schema", *rest], True


def tool_choice_param(_: str, rest: Path, translation: Translation) -> Mapped | None:
    choice = translation.provenance.request["tool_choice"]
    kind = choice.get("type") if isinstance(choice, dict) else None
    if rest == ["name"] and kind in ("function", "custom"):
        return ["tool_choice", kind, "name"], True
    if kind == "allowed_tools" and rest[:1] in (["mode"], ["tools"]):
        return ["tool_choice", "allowed_tools", *rest[:2]], len(rest) <= 2
    return None


def function_call_param(_: str, rest: Path, translation: Translation) -> Mapped | None:
    """The legacy ``function_call``: only the function's name is there to name."""
    return (["function_call", *rest[:1]], True) if rest in ([], ["name"]) else None
