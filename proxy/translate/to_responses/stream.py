"""Responses stream events -> chat.completion.chunk payloads. A sans-I/O state machine.

Feed it each parsed Responses event; it returns the payloads to send as SSE
``data:`` frames (chunks, or one ``{"error": ...}`` body) as soon as they can
be known. The caller writes ``[DONE]`` after :attr:`StreamTranslator.done`
when :attr:`StreamTranslator.error` is ``None``, and calls
:meth:`StreamTranslator.finish` when the upstream stream ends, so a stream cut
short is reported as an error instead of looking like a finished answer.

Non-streamed answers are the same chunks folded into one completion
(:mod:`proxy.translate.to_responses.completion`), so both forms always agree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ...errors import ProxyError
from ..fields import as_dict, as_list, as_str
from .params import name_chat_params
from .request import Translation
from .response import (
    REASONING_PART_SEPARATOR,
    chat_annotation,
    chat_logprobs,
    chat_moderation,
    chat_tool_call,
    chat_usage,
    completion_filter_results,
    failure,
    finish_reason,
    new_completion_id,
    prompt_filter_results,
    reasoning_texts,
    upstream_failure,
)

TERMINAL_EVENTS = frozenset(("response.completed", "response.incomplete", "response.failed", "error"))
# How reasoning is shown: as ``reasoning_content`` deltas, in ``<think>`` tags in the content, or not at all.
REASONING_OUTPUTS = ("reasoning_content", "think", "none")
THINK_OPEN = "<think>\n"
THINK_CLOSE = "\n</think>\n\n"


@dataclass(slots=True)
class Presentation:
    """How an answer is shown to the client: operator settings plus request options."""

    reasoning: str = "reasoning_content"  # one of REASONING_OUTPUTS
    stop: tuple[str, ...] = ()  # emulated stop sequences
    sources_in_content: bool = False  # append a Markdown list of cited sources to the content
    progress: bool = False  # progress notes (web searches) in the reasoning stream


class StopScanner:
    """Finds the first stop sequence in streamed text, holding back only what a match could still need."""

    __slots__ = ("_stops", "_keep", "_pending")

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._keep = max((len(stop) for stop in self._stops), default=1) - 1
        self._pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Text that is safe to emit, and whether a stop sequence was reached."""
        buffer = self._pending + text
        hits = [index for index in (buffer.find(stop) for stop in self._stops) if index >= 0]
        if hits:
            self._pending = ""
            return buffer[:min(hits)], True
        cut = len(buffer) - self._keep
        if cut <= 0:
            self._pending = buffer
            return "", False
        self._pending = buffer[cut:]
        return buffer[:cut], False

    def flush(self) -> str:
        pending, self._pending = self._pending, ""
        return pending


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
        choice_index: int = 0,
        presentation: Presentation | None = None,
        completion_id: str | None = None,
        created: int | None = None,
        translation: Translation | None = None,
    ) -> None:
        self.id = completion_id or new_completion_id()
        self.created = created or int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.choice_index = choice_index
        self.presentation = presentation or Presentation()
        self.done = False
        self.stopped = False  # ended by an emulated stop sequence, before the upstream finished
        self.error: ProxyError | None = None
        self.response: dict[str, Any] | None = None  # the final Response object, once known
        self._stop = StopScanner(self.presentation.stop) if self.presentation.stop else None
        self._think_open = False
        self._calls: dict[str, _Call] = {}  # by item id
        self._call_ids_by_output: dict[int, str] = {}
        self._text_sent: dict[str, int] = {}  # characters of output_text sent, by item id
        self._part_offsets: dict[tuple[str, int], int] = {}  # where each text part starts in content
        self._content_length = 0
        self._reasoning_parts: set[tuple[str, Any]] = set()
        self._reasoning_items: set[str] = set()
        self._sources: dict[str, str] = {}  # cited url -> title
        self._pending_logprobs: list[dict[str, Any]] = []
        self._answered = False  # anything but reasoning has been sent
        self._prompt_filtered = False  # Azure's prompt filter results have been sent
        # The request answered: an upstream's failure names its parameters, the client's are named instead.
        self._translation = translation

    # --- public API ---------------------------------------------------------

    def start(self) -> list[dict[str, Any]]:
        """The first chunks, sent as soon as the upstream accepts the request."""
        frames = [self._chunk({"role": "assistant"})]
        if self.presentation.reasoning == "think":
            # Sent at once, so clients that only read content show "thinking" during long silence.
            self._think_open = True
            frames.append(self._raw_content(THINK_OPEN))
        return frames

    def feed(self, event: Any) -> list[dict[str, Any]]:
        kind = event.get("type") if isinstance(event, dict) else None
        handler = _HANDLERS.get(kind) if isinstance(kind, str) and not self.done else None
        return handler(self, event) if handler is not None else []

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

    def note(self, text: str) -> list[dict[str, Any]]:
        """A progress note in the reasoning stream ("Still thinking (2 min)"), while nothing else is shown."""
        if self.done or self._answered or not self.presentation.progress:
            return []
        return self._reasoning(("note", len(self._reasoning_parts)), text)

    # --- event handlers -----------------------------------------------------

    def _text_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        delta = event.get("delta")
        if not isinstance(delta, str) or not delta:
            return []
        item_id = _key(event.get("item_id"), event.get("output_index"))
        if self._think_open:  # closed before the part's offset is taken: the closing tag is content too
            return self._close_think() + self._text_delta(event)
        self._part_offsets.setdefault((item_id, _position(event.get("content_index"))), self._content_length)
        self._text_sent[item_id] = self._text_sent.get(item_id, 0) + len(delta)
        logprobs = event.get("logprobs")
        if logprobs:
            self._pending_logprobs.extend(chat_logprobs(logprobs))
        return self._content(delta)

    def _refusal_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        delta = event.get("delta")
        if not isinstance(delta, str) or not delta:
            return []
        self._text_sent.setdefault(_key(event.get("item_id"), event.get("output_index")), 0)
        return self._answer({"refusal": delta})

    def _annotation(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        offset = self._part_offsets.get((_key(event.get("item_id"), event.get("output_index")),
                                         _position(event.get("content_index"))), 0)
        annotation = chat_annotation(event.get("annotation"), offset)
        if not annotation:
            return []
        citation = annotation["url_citation"]
        self._sources.setdefault(citation["url"], citation["title"])
        return self._answer({"annotations": [annotation]})

    def _reasoning_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        delta = event.get("delta")
        if not isinstance(delta, str) or not delta:
            return []
        item_id = _key(event.get("item_id"), event.get("output_index"))
        self._reasoning_items.add(item_id)
        part = event.get("summary_index", event.get("content_index"))
        return self._reasoning((item_id, _position(part)), delta)

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
        return self._tool_delta(call.index, {"function": {"arguments": delta}})

    def _arguments_done(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        call = self._call_for(event)
        return self._rest_of_arguments(call, event.get("arguments")) if call else []

    def _item_done(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        item = event.get("item")
        return self._reconcile(item, event.get("output_index")) if isinstance(item, dict) else []

    def _begun(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        response = event.get("response")
        if not isinstance(response, dict):
            return []
        self._resolved(response)
        return self._prompt_filters(response)

    def _prompt_filters(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        """Azure's filter results for the prompt, once, as soon as a Response carries them: in a chunk without
        choices, as Azure's chat endpoint sends them; with n > 1, the first choice's (as non-streamed)."""
        results = prompt_filter_results(response) if not self._prompt_filtered and self.choice_index == 0 else None
        if results is None:
            return []
        self._prompt_filtered = True
        return [choiceless_chunk(self.id, self.created, self.model, prompt_filter_results=results)]

    def _resolved(self, response: dict[str, Any]) -> None:
        """The model as the upstream names it (the snapshot an alias resolved to), as the non-streamed answer does."""
        model = response.get("model")
        if isinstance(model, str) and model:
            self.model = model

    def _terminal(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        response = event.get("response")
        if not isinstance(response, dict):
            response = {"status": "completed" if event.get("type") == "response.completed" else "incomplete"}
        self.response = response
        self._resolved(response)
        if event.get("type") == "response.failed" or response.get("status") in ("failed", "cancelled"):
            return self.fail(self._named(failure(response)))
        frames = self._prompt_filters(response)
        for index, item in enumerate(as_list(response.get("output"))):
            if isinstance(item, dict):
                frames.extend(self._reconcile(item, index))
        if self.done:  # a stop sequence turned up in text only the final response carried
            return frames
        if self.presentation.sources_in_content and self._sources:
            frames.extend(self._content("\n\nSources:\n" + "\n".join(
                f"{number}. [{title or url}]({url})" for number, (url, title) in enumerate(self._sources.items(), 1))))
        if self.done:
            return frames
        end = self._end(finish_reason(response, bool(self._calls)))
        filtered = completion_filter_results(response)
        if filtered is not None:  # on the last chunk of the choice, as Azure's chat endpoint ends a filtered one
            end[-1]["choices"][0]["content_filter_results"] = filtered
        frames.extend(end)
        if self.include_usage:
            frames.append(usage_chunk(self.id, self.created, self.model, [response]))
        moderation = chat_moderation(response.get("moderation")) if self.choice_index == 0 else None
        if moderation is not None:  # last, as chat sends it; with n > 1, the first choice's (as non-streamed)
            frames.append(choiceless_chunk(self.id, self.created, self.model, moderation=moderation))
        return frames

    def _error_event(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        return self.fail(self._named(upstream_failure(event)))

    def _named(self, error: ProxyError) -> ProxyError:
        return error if self._translation is None else name_chat_params(error, self._translation)

    # --- output -------------------------------------------------------------

    def _content(self, text: str) -> list[dict[str, Any]]:
        """Answer text, through the stop-sequence scanner when there is one."""
        self._content_length += len(text)
        if self._stop is None:
            return self._answer({"content": text})
        safe, stopped = self._stop.feed(text)
        frames = self._answer({"content": safe}) if safe else []
        if stopped:
            self.stopped = True
            frames.extend(self._end("stop"))
        return frames

    def _answer(self, delta: dict[str, Any]) -> list[dict[str, Any]]:
        """A chunk of the answer proper: closes an open think block, and releases held-back text first."""
        self._answered = True
        frames = self._close_think() if self._think_open else []
        if "content" not in delta:
            frames.extend(self._release())
        chunk = self._chunk(delta)
        if "content" in delta and self._pending_logprobs:
            chunk["choices"][0]["logprobs"] = {"content": self._pending_logprobs, "refusal": None}
            self._pending_logprobs = []
        frames.append(chunk)
        return frames

    def _release(self) -> list[dict[str, Any]]:
        """Text held back for a possible stop sequence, once no stop can follow it."""
        held = self._stop.flush() if self._stop is not None else ""
        return [self._chunk({"content": held})] if held else []

    def _reasoning(self, part: tuple[str, Any], text: str) -> list[dict[str, Any]]:
        mode = self.presentation.reasoning
        if mode == "none" or (mode == "think" and not self._think_open):
            return []
        if part not in self._reasoning_parts:
            if self._reasoning_parts:
                text = REASONING_PART_SEPARATOR + text
            self._reasoning_parts.add(part)
        if mode == "think":
            return [self._raw_content(text)]
        return [self._chunk({"reasoning_content": text})]

    def _raw_content(self, text: str) -> dict[str, Any]:
        """Content outside the answer proper (think tags and reasoning), never scanned for stops."""
        self._content_length += len(text)
        return self._chunk({"content": text})

    def _close_think(self) -> list[dict[str, Any]]:
        if not self._think_open:
            return []
        self._think_open = False
        return [self._raw_content(THINK_CLOSE)]

    def _end(self, reason: str) -> list[dict[str, Any]]:
        frames = self._close_think() + self._release()
        frames.append(self._chunk({}, reason))
        self.done = True
        return frames

    # --- helpers ------------------------------------------------------------

    def _announce(self, item: dict[str, Any], output_index: Any) -> list[dict[str, Any]]:
        item_id = _key(item.get("id"), output_index)
        if item_id in self._calls:
            return []
        arguments = as_str(item.get("arguments"))
        call = _Call(len(self._calls), len(arguments))
        self._calls[item_id] = call
        if isinstance(output_index, int):
            self._call_ids_by_output[output_index] = item_id
        return self._tool_delta(call.index, {
            "id": as_str(item.get("call_id")) or item_id, "type": "function",
            "function": {"name": as_str(item.get("name")), "arguments": arguments},
        })

    def _call_for(self, event: dict[str, Any]) -> _Call | None:
        item_id = event.get("item_id")
        output_index = event.get("output_index")
        if item_id is None and isinstance(output_index, int):
            item_id = self._call_ids_by_output.get(output_index)
        return self._calls.get(_key(item_id, output_index)) if item_id is not None else None

    def _rest_of_arguments(self, call: _Call, arguments: Any) -> list[dict[str, Any]]:
        """Arguments that arrived only in a ``done`` event must still reach the client."""
        if not isinstance(arguments, str) or len(arguments) <= call.sent:
            return []
        rest = arguments[call.sent:]
        call.sent = len(arguments)
        return self._tool_delta(call.index, {"function": {"arguments": rest}})

    def _reconcile(self, item: dict[str, Any], output_index: Any) -> list[dict[str, Any]]:
        """Send whatever a finished item holds that its delta events did not carry."""
        if self.done:
            return []
        kind = item.get("type")
        item_id = _key(item.get("id"), output_index)
        if kind == "function_call":
            frames = self._announce(item, output_index)
            call = self._calls[item_id]
            return frames + self._rest_of_arguments(call, item.get("arguments"))
        if kind == "message":
            if item_id not in self._text_sent:
                return self._whole_message(item, item_id)
            text = "".join(as_str(part.get("text")) for part in as_list(item.get("content"))
                           if isinstance(part, dict) and part.get("type") == "output_text")
            if len(text) > self._text_sent[item_id]:
                return self._text_delta({"item_id": item_id, "delta": text[self._text_sent[item_id]:]})
            return []
        if kind == "reasoning" and item_id not in self._reasoning_items:
            self._reasoning_items.add(item_id)
            return [frame for index, text in enumerate(reasoning_texts(item))
                    for frame in self._reasoning((item_id, index), text)]
        if kind == "custom_tool_call" and item_id not in self._calls:
            call = _Call(len(self._calls), 0)
            self._calls[item_id] = call
            return self._tool_delta(call.index, chat_tool_call(item) or {})
        if kind == "web_search_call" and self.presentation.progress and item_id not in self._reasoning_items:
            self._reasoning_items.add(item_id)
            query = as_dict(item.get("action")).get("query")
            return self.note(f"Searching the web: {query}") if query else []
        return []

    def _whole_message(self, item: dict[str, Any], item_id: str) -> list[dict[str, Any]]:
        frames: list[dict[str, Any]] = []
        for index, part in enumerate(as_list(item.get("content"))):
            if not isinstance(part, dict):
                continue
            if part.get("type") == "output_text":
                frames.extend(self._text_delta({"item_id": item_id, "content_index": index, "delta": part.get("text"),
                                                "logprobs": part.get("logprobs")}))
                for annotation in as_list(part.get("annotations")):
                    frames.extend(self._annotation({"item_id": item_id, "content_index": index,
                                                    "annotation": annotation}))
            elif part.get("type") == "refusal":
                frames.extend(self._refusal_delta({"item_id": item_id, "delta": part.get("refusal")}))
            if self.done:
                break
        self._text_sent.setdefault(item_id, 0)
        return frames

    def _tool_delta(self, index: int, fields: dict[str, Any]) -> list[dict[str, Any]]:
        return self._answer({"tool_calls": [{"index": index, **fields}]})

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": self.choice_index, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }


def _key(item_id: Any, output_index: Any) -> str:
    """Identifies an output item; by position when an upstream sends no item ids."""
    if type(item_id) is str and item_id:  # as every upstream sends it; ``str()`` only for anything else
        return item_id
    return str(item_id) if item_id else f"#{output_index}"


def _position(value: Any) -> int:
    """An index from an event (``content_index``, ...); 0 when it is missing or not an integer (a JSON number
    is exactly ``int``; ``bool`` is not one)."""
    return value if type(value) is int else 0


def usage_chunk(completion_id: str, created: int, model: str, responses: list[dict[str, Any] | None]) -> dict[str, Any]:
    """The final ``include_usage`` chunk; with ``n > 1`` the usage of every choice's response, summed."""
    return choiceless_chunk(completion_id, created, model, usage=summed_usage(responses))


def choiceless_chunk(completion_id: str, created: int, model: str, **fields: Any) -> dict[str, Any]:
    """A chunk about the whole completion (its usage, its moderation), with no choice in it."""
    return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], **fields}


def summed_usage(responses: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    usages = [chat_usage(response.get("usage")) for response in responses if response]
    usages = [usage for usage in usages if usage]
    if not usages:
        return None
    total = usages[0]
    for usage in usages[1:]:
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            total[key] += usage[key]
        for key in ("prompt_tokens_details", "completion_tokens_details"):
            for name, count in usage[key].items():
                total[key][name] = total[key].get(name, 0) + count
    return total


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
    "response.created": StreamTranslator._begun,
    "response.in_progress": StreamTranslator._begun,
}
