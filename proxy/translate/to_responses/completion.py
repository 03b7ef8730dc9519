"""Chat chunks -> one Chat Completion. Pure: no I/O, no framework.

A non-streamed answer is the streamed answer folded, so the two cannot
disagree: every mapping rule lives in the stream translator.
"""

from __future__ import annotations

from typing import Any

from ..fields import as_str
from .response import CHAT_SERVICE_TIERS, chat_moderation, terminal_event
from .stream import THINK_CLOSE, THINK_OPEN, Presentation, StreamTranslator, summed_usage

EMPTY_THINK_BLOCK = THINK_OPEN + THINK_CLOSE


class _Choice:
    __slots__ = ("content", "reasoning", "refusal", "annotations", "calls", "logprobs", "finish_reason", "filters")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.annotations: list[dict[str, Any]] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.logprobs: list[dict[str, Any]] | None = None
        self.finish_reason: str | None = None
        self.filters: dict[str, Any] | None = None  # Azure's content filter results for the output

    def add(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") or {}
        if delta.get("content"):
            self.content.append(delta["content"])
        if delta.get("reasoning_content"):
            self.reasoning.append(delta["reasoning_content"])
        if delta.get("refusal"):
            self.refusal.append(delta["refusal"])
        self.annotations.extend(delta.get("annotations") or ())
        for call in delta.get("tool_calls") or ():
            self._add_call(call)
        if choice.get("logprobs"):
            self.logprobs = (self.logprobs or []) + list(choice["logprobs"].get("content") or ())
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        if choice.get("content_filter_results") is not None:
            self.filters = choice["content_filter_results"]

    def _add_call(self, call: dict[str, Any]) -> None:
        slot = self.calls.get(call["index"])
        if slot is None:
            slot = {key: value for key, value in call.items() if key != "index"}
            if slot.get("type") == "function":
                slot["function"] = dict(slot.get("function") or {})
            self.calls[call["index"]] = slot
            return
        arguments = (call.get("function") or {}).get("arguments")
        if arguments:
            slot["function"]["arguments"] = slot["function"].get("arguments", "") + arguments

    def message(self) -> dict[str, Any]:
        # A think block that stayed empty was opened only to show "thinking" while a stream waited.
        content = "".join(self.content).removeprefix(EMPTY_THINK_BLOCK)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content if content or not (self.calls or self.refusal) else None,
            "refusal": "".join(self.refusal) if self.refusal else None,
        }
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            message["tool_calls"] = [self.calls[index] for index in sorted(self.calls)]
        if self.annotations:
            message["annotations"] = self.annotations
        return message


class CompletionBuilder:
    """Collects the chunks of one or more choices and builds the completion."""

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
        self._prompt_filters: list[dict[str, Any]] | None = None

    def add(self, frames: list[dict[str, Any]]) -> None:
        for frame in frames:
            if "prompt_filter_results" in frame:
                self._prompt_filters = frame["prompt_filter_results"]
            for choice in frame.get("choices") or ():
                self._choices.setdefault(choice.get("index", 0), _Choice()).add(choice)

    def build(self, translators: list[StreamTranslator]) -> dict[str, Any]:
        first = translators[0]
        responses = [translator.response for translator in translators]
        final = next(filter(None, responses), {})
        completion: dict[str, Any] = {
            "id": first.id,
            "object": "chat.completion",
            "created": final.get("created_at") if isinstance(final.get("created_at"), int) else first.created,
            "model": as_str(final.get("model")) or first.model,
            "choices": [_choice(index, choice) for index, choice in sorted(self._choices.items())],
        }
        if self._prompt_filters is not None:
            completion["prompt_filter_results"] = self._prompt_filters
        if as_str(final.get("service_tier")) in CHAT_SERVICE_TIERS:
            completion["service_tier"] = final["service_tier"]
        usage = summed_usage(responses)
        if usage is not None:
            completion["usage"] = usage
        moderation = chat_moderation(final.get("moderation"))  # with n > 1, the first choice's (as streamed)
        if moderation is not None:
            completion["moderation"] = moderation
        return completion


def _choice(index: int, choice: _Choice) -> dict[str, Any]:
    built = {"index": index, "message": choice.message(),
             "logprobs": {"content": choice.logprobs, "refusal": None} if choice.logprobs is not None else None,
             "finish_reason": choice.finish_reason or "stop"}
    if choice.filters is not None:
        built["content_filter_results"] = choice.filters
    return built


def responses_to_chat(response: dict[str, Any], presentation: Presentation | None = None,
                      completion_id: str | None = None) -> dict[str, Any]:
    """Map a finished Response object to a Chat Completion; raises ProxyError for a failed one."""
    translator = StreamTranslator(as_str(response.get("model")), presentation=presentation, completion_id=completion_id)
    builder = CompletionBuilder()
    builder.add(translator.start())
    builder.add(translator.feed(terminal_event(response) or {"type": "response.completed", "response": response}))
    builder.add(translator.finish())
    if translator.error is not None:
        raise translator.error
    return builder.build([translator])
