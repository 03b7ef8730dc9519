"""Responses stream events -> chat.completion.chunk payloads. A sans-I/O state machine.

Feed it each parsed Responses event; it returns the payloads to send as SSE
``data:`` frames (chunks, or one ``{"error": ...}`` body) as soon as they can
be known. The caller writes ``[DONE]`` after :attr:`StreamTranslator.done`
when :attr:`StreamTranslator.error` is ``None``, and calls
:meth:`StreamTranslator.finish` when the upstream stream ends, so a stream cut
short is reported as an error instead of looking like a finished answer.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import ProxyError
from .response import (
    REASONING_PART_SEPARATOR,
    chat_annotation,
    chat_tool_call,
    chat_usage,
    failure,
    finish_reason,
    new_completion_id,
    reasoning_texts,
    upstream_failure,
)

TERMINAL_EVENTS = frozenset(("response.completed", "response.incomplete", "response.failed", "error"))


class _Call:
    __slots__ = ("index", "sent")

    def __init__(self, index: int, sent: int) -> None:
        self.index = index
        self.sent = sent  # characters of arguments already sent


class StreamTranslator:
    def __init__(
        self,
        model: str,
        *,
        include_usage: bool = False,
        completion_id: str | None = None,
        created: int | None = None,
    ) -> None:
        self.id = completion_id or new_completion_id()
        self.created = created or int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.done = False
        self.error: ProxyError | None = None
        self.response: dict[str, Any] | None = None  # the final Response object, once known
        self._calls: dict[str, _Call] = {}  # by item id
        self._call_ids_by_output: dict[int, str] = {}
        self._text_sent: dict[str, int] = {}  # characters of output_text sent, by item id
        self._part_offsets: dict[tuple[str, int], int] = {}  # where each text part starts in content
        self._content_length = 0
        self._reasoning_parts: set[tuple[str, Any]] = set()
        self._reasoning_items: set[str] = set()

    # --- public API ---------------------------------------------------------

    def start(self) -> list[dict[str, Any]]:
        """The first chunk, sent as soon as the upstream accepts the request."""
        return [self._chunk({"role": "assistant"})]

    def feed(self, event: Any) -> list[dict[str, Any]]:
        if self.done or not isinstance(event, dict):
            return []
        handler = _HANDLERS.get(event.get("type"))
        return handler(self, event) if handler else []

    def finish(self) -> list[dict[str, Any]]:
        """Call at the end of the upstream stream; reports a stream that never finished."""
        if self.done:
            return []
        return self.fail(ProxyError(502, "The upstream stream ended before the response was complete.",
                                    "server_error", code="upstream_stream_incomplete"))

    def fail(self, error: ProxyError) -> list[dict[str, Any]]:
        """End the stream with an error (upstream failure, cut connection, timeout)."""
        if self.done:
            return []
        self.done = True
        self.error = error
        return [error.body()]

    # --- event handlers -----------------------------------------------------

    def _text_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        delta = event.get("delta")
        if not isinstance(delta, str) or not delta:
            return []
        item_id = str(event.get("item_id"))
        self._part_offsets.setdefault((item_id, event.get("content_index", 0)), self._content_length)
        self._text_sent[item_id] = self._text_sent.get(item_id, 0) + len(delta)
        self._content_length += len(delta)
        return [self._chunk({"content": delta})]

    def _refusal_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        delta = event.get("delta")
        if not isinstance(delta, str) or not delta:
            return []
        self._text_sent.setdefault(str(event.get("item_id")), 0)
        return [self._chunk({"refusal": delta})]

    def _annotation(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        offset = self._part_offsets.get((str(event.get("item_id")), event.get("content_index", 0)), 0)
        annotation = chat_annotation(event.get("annotation"), offset)
        return [self._chunk({"annotations": [annotation]})] if annotation else []

    def _reasoning_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        delta = event.get("delta")
        if not isinstance(delta, str) or not delta:
            return []
        item_id = str(event.get("item_id"))
        part = (item_id, event.get("summary_index", event.get("content_index", 0)))
        if part not in self._reasoning_parts:
            if self._reasoning_parts:
                delta = REASONING_PART_SEPARATOR + delta
            self._reasoning_parts.add(part)
            self._reasoning_items.add(item_id)
        return [self._chunk({"reasoning_content": delta})]

    def _item_added(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        item = event.get("item")
        if isinstance(item, dict) and item.get("type") == "function_call":
            return self._announce(item, event.get("output_index"))
        return []

    def _arguments_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        delta = event.get("delta")
        call = self._call_for(event)
        if call is None or not isinstance(delta, str) or not delta:
            return []
        call.sent += len(delta)
        return [self._tool_delta(call.index, {"function": {"arguments": delta}})]

    def _arguments_done(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        call = self._call_for(event)
        return self._rest_of_arguments(call, event.get("arguments")) if call else []

    def _item_done(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        item = event.get("item")
        return self._reconcile(item, event.get("output_index")) if isinstance(item, dict) else []

    def _terminal(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        response = event.get("response")
        if not isinstance(response, dict):
            response = {"status": "completed" if event.get("type") == "response.completed" else "incomplete"}
        self.response = response
        if event.get("type") == "response.failed" or response.get("status") in ("failed", "cancelled"):
            return self.fail(failure(response))
        frames: list[dict[str, Any]] = []
        for index, item in enumerate(response.get("output") or ()):
            if isinstance(item, dict):
                frames.extend(self._reconcile(item, index))
        frames.append(self._chunk({}, finish_reason(response, bool(self._calls))))
        if self.include_usage:
            frames.append({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.model, "choices": [], "usage": chat_usage(response.get("usage"))})
        self.done = True
        return frames

    def _error_event(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        return self.fail(upstream_failure(event))

    # --- helpers ------------------------------------------------------------

    def _announce(self, item: dict[str, Any], output_index: Any) -> list[dict[str, Any]]:
        item_id = str(item.get("id") or f"output-{output_index}")
        if item_id in self._calls:
            return []
        arguments = item.get("arguments") or ""
        call = _Call(len(self._calls), len(arguments))
        self._calls[item_id] = call
        if isinstance(output_index, int):
            self._call_ids_by_output[output_index] = item_id
        return [self._tool_delta(call.index, {
            "id": item.get("call_id") or item_id, "type": "function",
            "function": {"name": item.get("name") or "", "arguments": arguments},
        })]

    def _call_for(self, event: dict[str, Any]) -> _Call | None:
        item_id = event.get("item_id")
        if item_id is None:
            item_id = self._call_ids_by_output.get(event.get("output_index"))
        return self._calls.get(str(item_id)) if item_id is not None else None

    def _rest_of_arguments(self, call: _Call, arguments: Any) -> list[dict[str, Any]]:
        """Arguments that arrived only in a ``done`` event must still reach the client."""
        if not isinstance(arguments, str) or len(arguments) <= call.sent:
            return []
        rest = arguments[call.sent:]
        call.sent = len(arguments)
        return [self._tool_delta(call.index, {"function": {"arguments": rest}})]

    def _reconcile(self, item: dict[str, Any], output_index: Any) -> list[dict[str, Any]]:
        """Send whatever a finished item holds that its delta events did not carry."""
        kind = item.get("type")
        item_id = str(item.get("id"))
        if kind == "function_call":
            frames = self._announce(item, output_index)
            call = self._calls[str(item.get("id") or f"output-{output_index}")]
            return frames + self._rest_of_arguments(call, item.get("arguments"))
        if kind == "message":
            if item_id not in self._text_sent:
                return self._whole_message(item)
            text = "".join(part.get("text") or "" for part in item.get("content") or ()
                           if isinstance(part, dict) and part.get("type") == "output_text")
            if len(text) > self._text_sent[item_id]:
                return self._text_delta({"item_id": item_id, "delta": text[self._text_sent[item_id]:]})
            return []
        if kind == "reasoning" and item_id not in self._reasoning_items:
            return [frame for index, text in enumerate(reasoning_texts(item))
                    for frame in self._reasoning_delta({"item_id": item_id, "summary_index": index, "delta": text})]
        if kind == "custom_tool_call" and item_id not in self._calls:
            call = _Call(len(self._calls), 0)
            self._calls[item_id] = call
            return [self._tool_delta(call.index, chat_tool_call(item) or {})]
        return []

    def _whole_message(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        frames: list[dict[str, Any]] = []
        item_id = str(item.get("id"))
        for index, part in enumerate(item.get("content") or ()):
            if not isinstance(part, dict):
                continue
            if part.get("type") == "output_text":
                frames.extend(self._text_delta({"item_id": item_id, "content_index": index, "delta": part.get("text")}))
                for annotation in part.get("annotations") or ():
                    frames.extend(self._annotation({"item_id": item_id, "content_index": index,
                                                    "annotation": annotation}))
            elif part.get("type") == "refusal":
                frames.extend(self._refusal_delta({"item_id": item_id, "delta": part.get("refusal")}))
        self._text_sent.setdefault(item_id, 0)
        return frames

    def _tool_delta(self, index: int, fields: dict[str, Any]) -> dict[str, Any]:
        return self._chunk({"tool_calls": [{"index": index, **fields}]})

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }


_HANDLERS = {
    "response.output_text.delta": StreamTranslator._text_delta,
    "response.refusal.delta": StreamTranslator._refusal_delta,
    "response.output_text.annotation.added": StreamTranslator._annotation,
    "response.reasoning_summary_text.delta": StreamTranslator._reasoning_delta,
    "response.reasoning_text.delta": StreamTranslator._reasoning_delta,
    "response.output_item.added": StreamTranslator._item_added,
    "response.function_call_arguments.delta": StreamTranslator._arguments_delta,
    "response.function_call_arguments.done": StreamTranslator._arguments_done,
    "response.output_item.done": StreamTranslator._item_done,
    "response.completed": StreamTranslator._terminal,
    "response.incomplete": StreamTranslator._terminal,
    "response.failed": StreamTranslator._terminal,
    "error": StreamTranslator._error_event,
}
