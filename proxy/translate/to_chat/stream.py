"""chat.completion.chunk payloads -> Responses stream events. A sans-I/O state machine.

Call :meth:`ResponseStream.start` when the upstream accepts the request, :meth:`ResponseStream.feed` with each
parsed chunk, and :meth:`ResponseStream.finish` when the upstream stream ends (or :meth:`ResponseStream.fail`
when it breaks); each returns the events to send, numbered from 0 without gaps. An answer ends with
``response.completed`` or ``response.incomplete`` only when the upstream gave a ``finish_reason``; otherwise
with ``response.failed``. Every ``added`` event is closed by its ``done`` event, also on failure.

Items follow the order chat upstreams answer in: reasoning, then the message, then the tool calls (several
may be open at once: their pieces arrive interleaved by index). Reasoning or text arriving after what
follows it opens a new item. The non-streamed answer is one chunk fed through this same machine
(:mod:`proxy.translate.to_chat.response`), so both forms agree.
"""

from __future__ import annotations

import json
import secrets
import re
import time
from collections.abc import Callable
from typing import Any

from ..fields import as_dict, as_int, as_str
from .request import CUSTOM_INPUT, RESPONSE_SERVICE_TIERS, RequestState, ToolName

# Codes a Response's `error` may carry (the spec's ResponseErrorCode); any other failure is a server_error.
RESPONSE_ERROR_CODES = frozenset((
    "server_error", "rate_limit_exceeded", "invalid_prompt", "data_residency_mismatch", "bio_policy",
    "vector_store_timeout", "invalid_image", "invalid_image_format", "invalid_base64_image", "invalid_image_url",
    "image_too_large", "image_too_small", "image_parse_error", "image_content_policy_violation",
    "invalid_image_mode", "image_file_too_large", "unsupported_image_media_type", "empty_image_file",
    "failed_to_download_image", "image_file_not_found",
))
_REASONING_KEYS = ("reasoning_content", "reasoning")  # where chat upstreams stream reasoning (DeepSeek, OpenRouter)
_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
# Settings echoed only when they have a value: the API's schema types them as strings, never null.
_OMITTED_WHEN_NULL = ("user",)


def new_response_id() -> str:
    """Unique and unguessable: a stored response is found by its id (and its caller's credentials)."""
    return "resp_" + secrets.token_hex(24)


class _Reasoning:
    __slots__ = ("id", "index", "pieces", "sealed")

    def __init__(self, item_id: str, index: int) -> None:
        self.id, self.index, self.pieces = item_id, index, []
        self.sealed: str | None = None  # the encrypted_content, once the item is done (when asked for)

    def item(self, done: bool) -> dict[str, Any]:
        if not done:
            return {"id": self.id, "type": "reasoning", "summary": []}
        item = {"id": self.id, "type": "reasoning"}
        if self.sealed is not None:
            item["encrypted_content"] = self.sealed
        item["summary"] = [{"type": "summary_text", "text": "".join(self.pieces)}]
        return item


class _Part:
    __slots__ = ("kind", "pieces", "annotations")

    def __init__(self, kind: str) -> None:
        self.kind, self.pieces, self.annotations = kind, [], []

    def body(self, done: bool) -> dict[str, Any]:
        text = "".join(self.pieces) if done else ""
        if self.kind == "refusal":
            return {"type": "refusal", "refusal": text}
        return {"type": "output_text", "text": text, "annotations": list(self.annotations) if done else [],
                "logprobs": []}


class _Message:
    __slots__ = ("id", "index", "parts", "open", "status")

    def __init__(self, item_id: str, index: int) -> None:
        self.id, self.index, self.parts, self.open, self.status = item_id, index, [], False, "in_progress"

    def item(self, done: bool) -> dict[str, Any]:
        return {"id": self.id, "type": "message", "status": self.status, "role": "assistant",
                "content": [part.body(True) for part in self.parts] if done else []}


class _Call:
    __slots__ = ("id", "index", "call_id", "name", "tool", "pieces", "input", "streamed", "status")

    def __init__(self, call_id: str) -> None:
        self.id, self.index, self.call_id, self.name = "", -1, call_id, ""  # index -1: not announced yet
        self.tool: ToolName | None = None
        self.pieces: list[str] = []
        self.input: _StringArgument | None = None  # a custom tool's input, decoded as it streams
        self.streamed: list[str] = []  # the input deltas sent
        self.status = "in_progress"

    @property
    def kind(self) -> str:
        return "custom_tool_call" if self.custom else "function_call"

    @property
    def custom(self) -> bool:
        return self.tool is not None and self.tool.kind == "custom"

    @property
    def client_name(self) -> str:
        return self.tool.name if self.tool is not None else self.name

    def arguments(self) -> str:
        return "".join(self.pieces)

    def custom_input(self) -> str:
        """A custom tool's input: the one string argument of its function, or what the model wrote, as is."""
        arguments = self.arguments()
        try:
            value = json.loads(arguments)
        except ValueError:
            return arguments
        return value[CUSTOM_INPUT] if isinstance(value, dict) and isinstance(value.get(CUSTOM_INPUT), str) else arguments

    def item(self, done: bool) -> dict[str, Any]:
        item: dict[str, Any] = {"id": self.id, "type": self.kind}
        if not self.custom:
            item["status"] = self.status if done else "in_progress"
        item["call_id"] = self.call_id
        if self.tool is not None and self.tool.namespace:
            item["namespace"] = self.tool.namespace
        item["name"] = self.client_name
        if self.custom:
            item["input"] = self.custom_input() if done else ""
        else:
            item["arguments"] = self.arguments() if done else ""
        return item


_STRING_START = re.compile(r'\s*\{\s*"' + CUSTOM_INPUT + r'"\s*:\s*"')
_PLAIN = re.compile(r'[^"\\]+')
_MAX_PREFIX = 64  # arguments that do not open with the input string by then never will


class _StringArgument:
    """Decodes, as its pieces arrive, the string in ``{"input": "..."}``: a custom tool's input, streamed."""

    __slots__ = ("raw", "at", "closed")

    def __init__(self) -> None:
        self.raw = ""
        self.at: int | None = None  # where undecoded string text starts in raw; None before the opening quote
        self.closed = False

    def feed(self, piece: str) -> str:
        self.raw += piece
        if self.closed:
            return ""
        if self.at is None:
            match = _STRING_START.match(self.raw)
            if match is None:
                self.closed = len(self.raw) > _MAX_PREFIX
                return ""
            self.at = match.end()
        out, raw, at = [], self.raw, self.at
        while at < len(raw):
            char = raw[at]
            if char == '"':
                self.closed = True
                break
            if char != "\\":
                run = _PLAIN.match(raw, at)
                out.append(run.group())
                at = run.end()
                continue
            length = _escape_length(raw, at)
            if length == 0:
                break  # the rest of the escape is still to come
            try:
                out.append(json.loads('"' + raw[at:at + length] + '"'))
            except ValueError:
                out.append(raw[at:at + length])
            at += length
        self.at = at
        return "".join(out)


def _escape_length(raw: str, at: int) -> int:
    """The length of the complete escape at ``raw[at]`` (a backslash), 0 while it is incomplete."""
    if at + 1 >= len(raw):
        return 0
    if raw[at + 1] != "u":
        return 2
    if at + 6 > len(raw):
        return 0
    if not _HIGH_SURROGATE.fullmatch(raw, at + 2, at + 6):
        return 6
    if at + 8 > len(raw):
        return 0  # a low surrogate may follow
    if raw[at + 6:at + 8] != "\\u":
        return 6
    return 12 if at + 12 <= len(raw) else 0


_HIGH_SURROGATE = re.compile(r"[dD][89abAB][0-9a-fA-F]{2}")


class _ThinkSplitter:
    """Splits content that opens with a ``<think>`` block into reasoning and text, whatever the chunking."""

    __slots__ = ("mode", "held")
    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self.mode = "start"  # start -> think -> after -> text, or start -> text
        self.held = ""

    def feed(self, text: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        buffer, self.held = self.held + text, ""
        if self.mode == "start":
            stripped = buffer.lstrip()
            if len(stripped) < len(self.OPEN) and self.OPEN.startswith(stripped):
                self.held = buffer
                return out
            if stripped.startswith(self.OPEN):
                self.mode, buffer = "think", stripped[len(self.OPEN):]
            else:
                self.mode = "text"
        if self.mode == "think":
            end = buffer.find(self.CLOSE)
            if end < 0:
                keep = next((size for size in range(min(len(buffer), len(self.CLOSE) - 1), 0, -1)
                             if self.CLOSE.startswith(buffer[-size:])), 0)
                self.held = buffer[len(buffer) - keep:]
                out.append(("reasoning", buffer[:len(buffer) - keep]))
                return out
            out.append(("reasoning", buffer[:end]))
            self.mode, buffer = "after", buffer[end + len(self.CLOSE):]
        if self.mode == "after":
            buffer = buffer.lstrip()
            if not buffer:
                return out
            self.mode = "text"
        out.append(("text", buffer))
        return out

    def flush(self) -> list[tuple[str, str]]:
        """What is held back, once no more text can complete it (a think block opens only at the start)."""
        held, self.held = self.held, ""
        if self.mode == "start":
            self.mode = "text"
        return [("reasoning" if self.mode == "think" else "text", held)] if held else []


class ResponseStream:
    """Turns one chat answer's chunks into the Responses event sequence (choice 0; others are ignored)."""

    def __init__(self, state: RequestState, *, response_id: str | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self.state = state
        self.id = response_id or new_response_id()
        self._token = self.id.removeprefix("resp_")
        self._now = now
        self.created_at = int(now())
        self.done = False
        self.response: dict[str, Any] | None = None  # the final Response, once known
        self._sequence = 0
        self._items: list[_Reasoning | _Message | _Call] = []
        self._reasoning: _Reasoning | None = None  # the open reasoning item
        self._message: _Message | None = None  # the open message
        self._calls: dict[int, _Call] = {}  # by chat tool-call index
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None
        self._service_tier: str | None = None
        self._think = _ThinkSplitter() if state.reasoning_source == "think" else None

    # --- public API ---------------------------------------------------------

    def start(self) -> list[dict[str, Any]]:
        snapshot = self._response("in_progress")
        return [self._event("response.created", response=snapshot),
                self._event("response.in_progress", response=self._response("in_progress"))]

    def feed(self, chunk: Any) -> list[dict[str, Any]]:
        if self.done or not isinstance(chunk, dict):
            return []
        if chunk.get("error") is not None:
            return self.fail(*_failure(chunk["error"]))
        if isinstance(chunk.get("service_tier"), str):
            self._service_tier = chunk["service_tier"]
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        if type(choices) is list and len(choices) == 1:
            events = self._next_piece(choices[0])
            if events is not None:
                return events
        events = []
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0 and self._finish_reason is None:
                self._choice(choice, events)
        return events

    def finish(self) -> list[dict[str, Any]]:
        """Call when the upstream stream ends: the terminal event, or a failure if the answer never finished."""
        if self.done:
            return []
        if self._finish_reason is None:
            return self.fail("The upstream stream ended before the response was complete.")
        self.done = True
        reason = _INCOMPLETE_REASONS.get(self._finish_reason)
        self.response = self._response("incomplete" if reason else "completed", reason)
        kind = "response.incomplete" if reason else "response.completed"
        return [self._event(kind, response=self.response)]

    def fail(self, message: str, code: str = "server_error") -> list[dict[str, Any]]:
        """End the answer as failed (an upstream error, a cut connection, a timeout): what was open is closed."""
        if self.done:
            return []
        events = self._close_all("incomplete")
        self.done = True
        code = code if code in RESPONSE_ERROR_CODES else "server_error"
        # The `error` event first, as the API sends it: clients (openai-python, openai-node) raise on it.
        events.append(self._event("error", code=code, message=message, param=None,
                                  error={"type": "server_error", "code": code, "message": message, "param": None}))
        self.response = self._response("failed", error={"code": code, "message": message})
        events.append(self._event("response.failed", response=self.response))
        return events

    def cancel(self) -> list[dict[str, Any]]:
        """End a background answer its client cancelled: what was open is closed as incomplete, and the Response
        is ``cancelled``. No terminal event follows: the API has none for a cancelled response."""
        if self.done:
            return []
        events = self._close_all("incomplete")
        self.done = True
        self.response = self._response("cancelled")
        return events

    # --- chunks -------------------------------------------------------------

    def _next_piece(self, choice: Any) -> list[dict[str, Any]] | None:
        """The events of the common choice, one more piece of the text or reasoning already streaming (a delta
        holding only ``content``, or only ``reasoning_content``), without :meth:`_choice`'s look at every field
        a delta may hold; None for any other choice, which :meth:`_choice` takes as it comes."""
        if type(choice) is not dict or choice.get("finish_reason") is not None or self._finish_reason is not None:
            return None
        delta = choice.get("delta")
        if type(delta) is not dict or len(delta) != 1 or choice.get("index", 0) != 0:
            return None
        ((key, text),) = delta.items()
        if type(text) is not str or not text:
            return None
        if key == "content":
            message = self._message
            if (self._think is not None or message is None or not message.open
                    or message.parts[-1].kind != "output_text"):
                return None
            message.parts[-1].pieces.append(text)
            return [self._text_delta(message, text)]
        if key in _REASONING_KEYS and self._reasoning is not None and self.state.reasoning_source != "none":
            self._reasoning.pieces.append(text)
            return [self._reasoning_delta(self._reasoning, text)]
        return None

    def _choice(self, choice: dict[str, Any], events: list[dict[str, Any]]) -> None:
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            delta = {}
        if self.state.reasoning_source != "none":
            for key in _REASONING_KEYS:
                if isinstance(delta.get(key), str) and delta[key]:
                    self._reasoning_text(delta[key], events)
        content = delta.get("content")
        if isinstance(content, str) and content:
            if self._think is None:
                self._text(content, events)
            else:
                self._split(self._think.feed(content), events)
        annotations = delta.get("annotations")
        for annotation in annotations if isinstance(annotations, list) else ():
            self._annotation(annotation, events)
        if isinstance(delta.get("refusal"), str) and delta["refusal"]:
            self._part("refusal", events).pieces.append(delta["refusal"])
            events.append(self._part_event("response.refusal.delta", delta=delta["refusal"]))
        calls = delta.get("tool_calls")
        if isinstance(delta.get("function_call"), dict):  # the legacy form: one call
            calls = [{"index": 0, "function": delta["function_call"]}]
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict):
                self._call_piece(call, events)
        reason = choice.get("finish_reason")
        if reason == "error":  # how gateways (OpenRouter) end an answer that failed mid-stream
            events.extend(self.fail(*_failure(choice.get("error") or "The upstream failed mid-answer.")))
            return
        if isinstance(reason, str) and reason:
            if self._think is not None:
                self._split(self._think.flush(), events)
            self._finish_reason = reason
            events.extend(self._close_all("incomplete" if reason in _INCOMPLETE_REASONS else "completed"))

    def _split(self, pieces: list[tuple[str, str]], events: list[dict[str, Any]]) -> None:
        for kind, text in pieces:
            if text:
                (self._reasoning_text if kind == "reasoning" else self._text)(text, events)

    def _reasoning_text(self, text: str, events: list[dict[str, Any]]) -> None:
        item = self._reasoning
        if item is None:
            events.extend(self._close_message())
            item = self._reasoning = self._add(_Reasoning(self._item_id("rs"), len(self._items)), events)
            events.append(self._event("response.reasoning_summary_part.added", item_id=item.id,
                                      output_index=item.index, summary_index=0,
                                      part={"type": "summary_text", "text": ""}))
        item.pieces.append(text)
        events.append(self._reasoning_delta(item, text))

    def _text(self, text: str, events: list[dict[str, Any]]) -> None:
        self._part("output_text", events).pieces.append(text)
        events.append(self._text_delta(self._message, text))

    # The two events of nearly every chunk, built as literals: cheaper than :meth:`_event`'s keywords and merge.

    def _reasoning_delta(self, item: _Reasoning, text: str) -> dict[str, Any]:
        sequence = self._sequence
        self._sequence = sequence + 1
        return {"type": "response.reasoning_summary_text.delta", "sequence_number": sequence, "item_id": item.id,
                "output_index": item.index, "summary_index": 0, "delta": text}

    def _text_delta(self, message: _Message, text: str) -> dict[str, Any]:
        sequence = self._sequence
        self._sequence = sequence + 1
        return {"type": "response.output_text.delta", "sequence_number": sequence, "item_id": message.id,
                "output_index": message.index, "content_index": len(message.parts) - 1, "delta": text,
                "logprobs": []}

    def _part(self, kind: str, events: list[dict[str, Any]]) -> _Part:
        """The open content part of this kind, opening the message and the part as needed."""
        message = self._message
        if message is None:
            events.extend(self._close_reasoning())
            message = self._message = self._add(_Message(self._item_id("msg"), len(self._items)), events)
        if message.open and message.parts[-1].kind == kind:
            return message.parts[-1]
        if message.open:
            events.extend(self._close_part(message))
        message.parts.append(_Part(kind))
        message.open = True
        events.append(self._event("response.content_part.added", item_id=message.id, output_index=message.index,
                                  content_index=len(message.parts) - 1, part=message.parts[-1].body(False)))
        return message.parts[-1]

    def _part_event(self, kind: str, **fields: Any) -> dict[str, Any]:
        message = self._message
        return self._event(kind, item_id=message.id, output_index=message.index,
                           content_index=len(message.parts) - 1, **fields)

    def _annotation(self, annotation: Any, events: list[dict[str, Any]]) -> None:
        citation = annotation.get("url_citation") if isinstance(annotation, dict) else None
        if not isinstance(citation, dict) or annotation.get("type") != "url_citation":
            return
        mapped = {"type": "url_citation", "start_index": as_int(citation.get("start_index")),
                  "end_index": as_int(citation.get("end_index")), "url": as_str(citation.get("url")),
                  "title": as_str(citation.get("title"))}
        part = self._part("output_text", events)
        part.annotations.append(mapped)
        events.append(self._part_event("response.output_text.annotation.added",
                                       annotation_index=len(part.annotations) - 1, annotation=mapped))

    def _call_piece(self, piece: dict[str, Any], events: list[dict[str, Any]]) -> None:
        index = piece.get("index", 0)
        if not isinstance(index, int) or isinstance(index, bool):
            return
        function = piece.get("function") if isinstance(piece.get("function"), dict) else {}
        call = self._calls.get(index)
        if call is None:
            if self._think is not None:  # text held back in case it opened a think block comes before the call
                self._split(self._think.flush(), events)
            events.extend(self._close_reasoning())
            events.extend(self._close_message())
            events.extend(self._close_finished_calls())
            call = self._calls[index] = _Call(as_str(piece.get("id")))
        elif call.status != "in_progress":
            return  # closed once its arguments were whole JSON: nothing meaningful can follow
        elif not call.call_id and isinstance(piece.get("id"), str):
            call.call_id = piece["id"]
        if isinstance(function.get("name"), str) and call.index < 0:
            call.name += function["name"]
            call.tool = self.state.tools.get(call.name)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            if call.index < 0:
                self._announce(call, events)
            call.pieces.append(arguments)
            if call.input is None:
                events.append(self._event("response.function_call_arguments.delta", item_id=call.id,
                                          output_index=call.index, delta=arguments))
            else:
                decoded = call.input.feed(arguments)
                if decoded:
                    call.streamed.append(decoded)
                    events.append(self._event("response.custom_tool_call_input.delta", item_id=call.id,
                                              output_index=call.index, delta=decoded))

    def _announce(self, call: _Call, events: list[dict[str, Any]]) -> None:
        """The call's item, once its name is known (it comes before its arguments); calls that started before
        it are announced first, so output items follow the chat calls' order."""
        for earlier in sorted(self._calls.items()):
            if earlier[1] is call:
                break
            if earlier[1].index < 0:
                self._announce(earlier[1], events)
        call.call_id = call.call_id or "call_" + self._token[:24] + str(len(self._items))
        call.input = _StringArgument() if call.custom else None
        call.id = self._item_id("ctc" if call.custom else "fc")
        self._add(call, events)

    # --- closing ------------------------------------------------------------

    def _close_finished_calls(self) -> list[dict[str, Any]]:
        """Close the calls whose arguments are whole JSON when the next one starts, as OpenAI streams calls one
        after the other; a call still incomplete stays open, as chat may interleave calls' pieces."""
        events: list[dict[str, Any]] = []
        for call in sorted(self._calls.values(), key=lambda call: call.index):
            if call.index >= 0 and call.status == "in_progress" and _whole_json(call.arguments()):
                events.extend(self._close_call(call, "completed"))
        return events

    def _close_all(self, status: str) -> list[dict[str, Any]]:
        events = self._close_reasoning() + self._close_message(status)
        for _, call in sorted(self._calls.items()):
            if call.index < 0:
                self._announce(call, events)
        for call in sorted(self._calls.values(), key=lambda call: call.index):
            if call.status == "in_progress":  # a call whose arguments are whole was not cut, whatever was after it
                events.extend(self._close_call(call, "completed" if _whole_json(call.arguments()) else status))
        return events

    def _close_reasoning(self) -> list[dict[str, Any]]:
        item, self._reasoning = self._reasoning, None
        if item is None:
            return []
        text = "".join(item.pieces)
        if self.state.seal is not None:
            item.sealed = self.state.seal.seal(self.state.model, text)
        return [self._event("response.reasoning_summary_text.done", item_id=item.id, output_index=item.index,
                            summary_index=0, text=text),
                self._event("response.reasoning_summary_part.done", item_id=item.id, output_index=item.index,
                            summary_index=0, part={"type": "summary_text", "text": text}),
                self._event("response.output_item.done", output_index=item.index, item=item.item(True))]

    def _close_message(self, status: str = "completed") -> list[dict[str, Any]]:
        message, self._message = self._message, None
        if message is None:
            return []
        events = self._close_part(message) if message.open else []
        message.status = status
        events.append(self._event("response.output_item.done", output_index=message.index, item=message.item(True)))
        return events

    def _close_part(self, message: _Message) -> list[dict[str, Any]]:
        message.open = False
        part = message.parts[-1]
        where = {"item_id": message.id, "output_index": message.index, "content_index": len(message.parts) - 1}
        text = "".join(part.pieces)
        if part.kind == "refusal":
            done = self._event("response.refusal.done", **where, refusal=text)
        else:
            done = self._event("response.output_text.done", **where, text=text, logprobs=[])
        return [done, self._event("response.content_part.done", **where, part=part.body(True))]

    def _close_call(self, call: _Call, status: str) -> list[dict[str, Any]]:
        call.status = status
        events = []
        if call.input is not None:
            final, streamed = call.custom_input(), "".join(call.streamed)
            if len(final) > len(streamed) and final.startswith(streamed):  # what was not decodable as it came
                events.append(self._event("response.custom_tool_call_input.delta", item_id=call.id,
                                          output_index=call.index, delta=final[len(streamed):]))
            events.append(self._event("response.custom_tool_call_input.done", item_id=call.id,
                                      output_index=call.index, input=final))
        else:
            events.append(self._event("response.function_call_arguments.done", item_id=call.id,
                                      output_index=call.index, name=call.client_name, arguments=call.arguments()))
        events.append(self._event("response.output_item.done", output_index=call.index, item=call.item(True)))
        return events

    # --- output -------------------------------------------------------------

    def _add(self, item: Any, events: list[dict[str, Any]]) -> Any:
        item.index = len(self._items)
        self._items.append(item)
        events.append(self._event("response.output_item.added", output_index=item.index, item=item.item(False)))
        return item

    def _item_id(self, prefix: str) -> str:
        return f"{prefix}_{self._token}{len(self._items):04x}"

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _response(self, status: str, incomplete: str | None = None,
                  error: dict[str, Any] | None = None) -> dict[str, Any]:
        """The Response object as the API shows it at this point of the answer."""
        echo = self.state.echo
        finished = status not in ("in_progress", "queued")
        response: dict[str, Any] = {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "background": echo["background"],
            "completed_at": int(self._now()) if status == "completed" else None,
            "error": error, "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": echo["instructions"], "max_output_tokens": echo["max_output_tokens"],
            "max_tool_calls": echo["max_tool_calls"], "model": echo["model"],
            "output": [item.item(True) for item in self._items] if finished else [],
            "parallel_tool_calls": echo["parallel_tool_calls"],
            "previous_response_id": echo["previous_response_id"], "prompt_cache_key": echo["prompt_cache_key"],
            "prompt_cache_retention": echo["prompt_cache_retention"], "reasoning": echo["reasoning"],
            "safety_identifier": echo["safety_identifier"],
            "service_tier": self._service_tier if self._service_tier in RESPONSE_SERVICE_TIERS
            else echo["service_tier"],
            "store": echo["store"], "temperature": echo["temperature"], "text": echo["text"],
            "tool_choice": echo["tool_choice"], "tools": echo["tools"], "top_logprobs": echo["top_logprobs"],
            "top_p": echo["top_p"], "truncation": echo["truncation"],
        }
        usage = responses_usage(self._usage) if finished else None
        if usage is not None:
            response["usage"] = usage
        for key in _OMITTED_WHEN_NULL:
            if echo.get(key) is not None:
                response[key] = echo[key]
        response["metadata"] = echo["metadata"]
        return response


def responses_usage(usage: Any) -> dict[str, Any] | None:
    """Chat usage in the Responses shape (DeepSeek reports cached input as ``prompt_cache_hit_tokens``)."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = as_int(usage.get("prompt_tokens")), as_int(usage.get("completion_tokens"))
    prompt_details = as_dict(usage.get("prompt_tokens_details"))
    completion_details = as_dict(usage.get("completion_tokens_details"))
    cached = prompt_details.get("cached_tokens")
    if cached is None:
        cached = usage.get("prompt_cache_hit_tokens")
    total = usage.get("total_tokens")
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": as_int(cached),
                                 "cache_write_tokens": as_int(prompt_details.get("cache_write_tokens"))},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": as_int(completion_details.get("reasoning_tokens"))},
        "total_tokens": as_int(total) if total is not None else prompt + completion,
    }


def _whole_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _failure(error: Any) -> tuple[str, str]:
    """The message and code of an error an upstream reported inside its stream."""
    if isinstance(error, dict):
        message, code = error.get("message"), error.get("code")
        return (message if isinstance(message, str) and message else "The upstream failed mid-answer.",
                code if isinstance(code, str) else "server_error")
    return (error if isinstance(error, str) and error else "The upstream failed mid-answer."), "server_error"

