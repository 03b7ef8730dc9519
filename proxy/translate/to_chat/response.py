"""chat.completion -> Responses ``Response``. Pure: no I/O, no framework.

A non-streamed answer is the completion fed as one chunk through the stream translator, so every mapping
rule lives in :mod:`proxy.translate.to_chat.stream` and both forms agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ...errors import ProxyError
from .request import RequestState
from .stream import ResponseStream

_MESSAGE_FIELDS = ("reasoning_content", "reasoning", "content", "refusal", "annotations", "function_call")


def completion_to_response(completion: Any, state: RequestState, *, response_id: str | None = None,
                     now: Callable[[], float] = time.time) -> dict[str, Any]:
    """The Response for a chat.completion; a :class:`ProxyError` for an answer that is an error or no answer."""
    stream = ResponseStream(state, response_id=response_id, now=now)
    stream.start()
    stream.feed(completion_chunk(completion))
    stream.finish()
    return stream.response


def completion_chunk(completion: Any) -> dict[str, Any]:
    """A chat.completion as the one stream chunk that says all of it (for :meth:`ResponseStream.feed`); a
    :class:`ProxyError` for an answer that is an error or no answer."""
    choice = _first_choice(completion)
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    delta = {key: message[key] for key in _MESSAGE_FIELDS if key in message}
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        delta["tool_calls"] = [{**call, "index": index} for index, call in enumerate(calls) if isinstance(call, dict)]
    chunk = {key: completion[key] for key in ("id", "created", "model", "service_tier", "usage") if key in completion}
    chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": choice.get("finish_reason") or "stop"}]
    return chunk


def _first_choice(completion: Any) -> dict[str, Any]:
    if isinstance(completion, dict) and completion.get("error") is not None:
        error = completion["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise ProxyError(502, message if isinstance(message, str) and message else "The upstream failed.",
                         "server_error", code="upstream_error")
    choices = completion.get("choices") if isinstance(completion, dict) else None
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    raise ProxyError(502, "The upstream's answer holds no choice.", "server_error", code="invalid_upstream_response")
