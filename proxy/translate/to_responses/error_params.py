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

from ...errors import ProxyError
from ..paths import Mapped, Path, parse, reach, render, rename_param, renamed
from .request import Translation


def name_chat_params(error: ProxyError, translation: Translation) -> None:
    """Make ``error`` (an upstream's answer to ``translation.body``) name the chat request's parameters."""
    rename_param(error, lambda param: chat_param(param, translation))


def chat_param(param: str, translation: Translation) -> tuple[str, bool] | None:
    """The chat path for a Responses request's parameter path, and whether all of it was mapped;
    None when it names nothing the client sent under another name."""
    path = parse(param)
    if not path:
        return None
    head, rest = path[0], path[1:]
    chat = translation.request
    mapped: Mapped | None
    if head == "input":
        mapped = _input_param(rest, translation) if rest else (["messages"], True)
    elif head == "instructions":  # the leading system messages, joined
        mapped = ["messages"], False
    elif head == "tools":
        mapped = _tool_param(rest, translation)
    elif head == "text":
        mapped = _text_param(rest, chat)
    elif head == "max_output_tokens":
        name = next((key for key in ("max_completion_tokens", "max_tokens") if chat.get(key) is not None), None)
        mapped = ([name, *rest], True) if name else None
    elif head == "reasoning":
        mapped = _reasoning_param(rest, chat)
    elif head == "tool_choice":
        mapped = _tool_choice_param(rest, chat)
    else:
        mapped = None
    if mapped is None:
        return None
    chat_path, whole = mapped
    # Only where the client's request has it: a field may be missing (the proxy's default was sent), not its parent.
    known, reached = reach(chat, chat_path)
    if whole and known == len(chat_path) - 1 and not isinstance(reached, dict):
        chat_path = chat_path[:known]  # a field of what the client sent as one value (an image as its URL alone)
    elif known < len(chat_path) - (1 if whole else 0):
        chat_path, whole = chat_path[:known], False
    rendered = render(chat_path)
    return None if not chat_path or rendered == param else (rendered, whole)


def _input_param(rest: Path, translation: Translation) -> Mapped | None:
    index = rest[0]
    sources = translation.sources
    if not isinstance(index, int) or index >= len(sources) or sources[index] is None:
        return None  # an item the proxy put there (reasoning kept from an earlier turn)
    position = sources[index]
    message = translation.request["messages"][position]
    item = translation.body["input"][index]
    where: Path = ["messages", position]
    tail = rest[1:]
    kind = item.get("type")
    if kind in _CALLS:
        # The message's calls are its items in order: ``tool_calls``, then a legacy ``function_call``.
        order = sum(1 for earlier in range(index) if sources[earlier] == position
                    and translation.body["input"][earlier].get("type") in _CALLS)
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


def _tool_param(rest: Path, translation: Translation) -> Mapped | None:
    if not rest:
        return None
    index = rest[0]
    sources = translation.tool_sources
    if not isinstance(index, int) or index >= len(sources) or sources[index] is None:
        return None
    where = list(sources[index])
    tail = rest[1:]
    kind = translation.body["tools"][index].get("type")
    if not tail:
        return where, True
    if where[0] == "tools" and kind in ("function", "custom"):
        fields = ("name", "description", "parameters", "strict") if kind == "function" else ("name", "description", "format")
        return renamed(where, tail, {name: [kind, name] for name in fields}) or (where, False)
    if where[0] == "functions" or tail == ["search_context_size"]:  # named alike
        return where + tail, True
    return where, False


def _text_param(rest: Path, chat: dict[str, Any]) -> Mapped | None:
    if rest[:1] == ["verbosity"]:
        return ["verbosity"], True
    if rest[:1] != ["format"] or chat.get("response_format") is None:
        return None
    tail = rest[1:]
    if not tail or tail[0] == "type":
        return ["response_format", *tail], True
    return ["response_format", "json_schema", *tail], True


def _reasoning_param(rest: Path, chat: dict[str, Any]) -> Mapped | None:
    if rest == ["effort"] and chat.get("reasoning_effort") is not None:
        return ["reasoning_effort"], True
    return None  # named alike when the client sent ``reasoning``; otherwise the operator's setting


def _tool_choice_param(rest: Path, chat: dict[str, Any]) -> Mapped | None:
    choice = chat.get("tool_choice")
    if choice is None and chat.get("function_call") is not None:
        return (["function_call", *rest[:1]], True) if rest in ([], ["name"]) else None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if rest == ["name"] and kind in ("function", "custom"):
        return ["tool_choice", kind, "name"], True
    if kind == "allowed_tools" and rest[:1] in (["mode"], ["tools"]):
        return ["tool_choice", "allowed_tools", *rest[:2]], len(rest) <= 2
    return None
