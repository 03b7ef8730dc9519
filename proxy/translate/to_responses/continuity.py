"""Reasoning continuity across turns, for the chat direction. Pure: no I/O.

Chat apps resend the whole history but cannot carry Responses reasoning items.
An answer's reasoning is kept (by the shell's store) under keys the client will
send back unchanged: the answer's tool-call ids, or a hash of its text. When
the conversation returns, the kept items are put back in front of the answer,
and the phases its messages had (for models that mark them) back on them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..fields import as_list

if TYPE_CHECKING:
    from .request import Translation

ENCRYPTED_REASONING = "reasoning.encrypted_content"  # what ``include`` asks for, to keep an answer's reasoning


def kept_reasoning(response: dict[str, Any] | None) -> tuple[list[str], list[dict[str, Any]]]:
    """The keys a finished answer will come back under, and the reasoning items worth keeping for it (with its
    messages' phases, for the models that mark them)."""
    if not response:
        return [], []
    output = [item for item in as_list(response.get("output")) if isinstance(item, dict)]
    reasoning = [
        {"type": "reasoning", "id": item.get("id"), "encrypted_content": item["encrypted_content"],
         "summary": [{"type": "summary_text", "text": part["text"]} for part in as_list(item.get("summary"))
                     if isinstance(part, dict) and isinstance(part.get("text"), str)]}
        for item in output if item.get("type") == "reasoning" and isinstance(item.get("id"), str)
        and isinstance(item.get("encrypted_content"), str) and item["encrypted_content"]
    ]
    if not reasoning:
        return [], []
    answer = [item for item in output if item.get("type") in ("message", "function_call", "custom_tool_call")]
    return reasoning_keys(answer), reasoning + answer_phases(answer)


_THINK_BLOCK = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


def reasoning_keys(answer: list[dict[str, Any]]) -> list[str]:
    """What identifies an answer when its conversation comes back: its tool-call ids, else its text.

    Chat clients send tool-call ids back unchanged; a plain answer is recognised by a hash of its text.
    """
    keys = [item["call_id"] for item in answer if item.get("type") in ("function_call", "custom_tool_call")
            and isinstance(item.get("call_id"), str)]
    if keys:
        return keys
    text = _returned_text(answer)
    return ["text:" + hashlib.sha256(text.strip().encode()).hexdigest()] if text.strip() else []


def _returned_text(answer: list[dict[str, Any]]) -> str:
    """An answer's text as a client sends it back, without the think block clients in "think" mode keep."""
    return _THINK_BLOCK.sub("", _answer_text(answer), count=1)


def _answer_text(answer: list[dict[str, Any]]) -> str:
    """The text of an answer's messages, joined. Also reads upstream output (the reasoning memory), so a
    malformed item adds nothing instead of raising."""
    return "".join(part["text"] for item in answer if item.get("type") == "message"
                   for part in (item.get("content") if isinstance(item.get("content"), list) else ())
                   if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str))


PHASE = "message_phase"  # kept beside reasoning items: a message's phase and length; never sent upstream
_PHASES = ("commentary", "final_answer")


def answer_phases(answer: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The phase (``commentary`` or ``final_answer``) and text length of each message of an answer, when every
    message has one: newer models want them back, and a chat history, holding the messages' text joined, cannot."""
    messages = [item for item in answer if item.get("type") == "message"]
    if not messages or not all(item.get("phase") in _PHASES for item in messages):
        return []
    return [{"type": PHASE, "phase": item["phase"], "length": len(_answer_text([item]))} for item in messages]


def restore_reasoning(translation: Translation, kept: Mapping[str, list[dict[str, Any]]]) -> Translation:
    """The translation with the reasoning items kept for earlier answers back in front of them, and their
    messages' phases on them.

    An item goes in once, before the latest answer it was kept for: the same answer text can recur in a
    conversation ("Done."), and the upstream refuses an input that holds one item id twice.
    """
    upstream, provenance = translation.upstream, translation.provenance
    items, sources = list(upstream.body["input"]), list(provenance.sources)
    placed: set[Any] = set()
    for start, keys in reversed(provenance.answers):  # from the end, so earlier positions stay valid
        found = next((kept[key] for key in keys if kept.get(key)), None) or ()
        phases = [item for item in found if item.get("type") == PHASE]
        if phases:
            phased = _phased(items[start], phases)
            items[start:start + 1] = phased
            sources[start:start + 1] = sources[start:start + 1] * len(phased)
        fresh = [item for item in found if item.get("type") != PHASE and item.get("id") not in placed]
        if fresh:
            placed.update(item.get("id") for item in fresh)
            items[start:start] = fresh
            sources[start:start] = [None] * len(fresh)
    return translation._replace(upstream=upstream._replace(body={**upstream.body, "input": items}),
                                provenance=provenance._replace(sources=tuple(sources)))


def _phased(message: dict[str, Any], phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An answer's message from a chat history as the messages it was, each with its phase; unchanged unless
    its text (a think block aside, which the restored reasoning replaces) is exactly theirs, joined."""
    if message.get("type") != "message" or any(part.get("type") != "output_text" for part in message["content"]):
        return [message]
    text = _returned_text([message])
    if sum(phase["length"] for phase in phases) != len(text):
        return [message]
    messages, offset = [], 0
    for phase in phases:
        piece = text[offset:offset + phase["length"]]
        offset += phase["length"]
        messages.append({"type": "message", "role": "assistant", "phase": phase["phase"],
                         "content": [{"type": "output_text", "text": piece, "annotations": []}]})
    return messages
