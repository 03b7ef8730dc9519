"""The Responses parameter table, and what it drives: the mapping to a chat request, the report of what was
left out, and the Responses names of the chat parameters an upstream's error names. Pure.

Every parameter of the Responses API has a row (a test holds the table to the OpenAPI spec's
``CreateResponse``); a parameter with no row is dropped and reported, like one whose row says ``dropped``:
clients send parameters newer than any spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import ProxyError
from ..paths import parse, render, rename_param
from ..table import Param, ParamTable
from .error_params import messages_source, reasoning_source, text_source, tool_choice_source, tools_source
from .request import (ChatOptions, ChatRequest, copy_metadata, copy_number, copy_parallel_tool_calls,
                      copy_safety_identifier, copy_string, echoed, finished, map_background, map_history, map_include, map_input,
                      map_instructions, map_max_output_tokens, map_reasoning, map_service_tier, map_stream,
                      map_text, map_tool_choice, map_tools, new_draft, refuse_stored)

# Responses parameter -> what it becomes in the chat request, in the order the rows run: instructions before
# input (they lead the conversation), the history before input, tools before tool_choice (which names them).
RESPONSES_PARAMS = ParamTable(
    Param("model", "copied"),
    Param("instructions", "mapped", map_instructions, ("messages",), messages_source),
    Param("previous_response_id", "mapped", map_history, ("messages",), messages_source),
    Param("input", "mapped", map_input, ("messages",), messages_source),
    Param("tools", "mapped", map_tools, ("tools",), tools_source),
    Param("tool_choice", "mapped", map_tool_choice, ("tool_choice",), tool_choice_source),
    Param("parallel_tool_calls", "copied", copy_parallel_tool_calls),
    Param("text", "mapped", map_text, ("response_format", "verbosity"), text_source),
    Param("reasoning", "mapped", map_reasoning, ("reasoning_effort",), reasoning_source),
    Param("max_output_tokens", "mapped", map_max_output_tokens, ("max_completion_tokens", "max_tokens")),
    Param("temperature", "copied", copy_number(0, 2)),
    Param("top_p", "copied", copy_number(0, 1)),
    Param("user", "copied", copy_string),
    Param("safety_identifier", "copied", copy_safety_identifier),
    Param("prompt_cache_key", "copied", copy_string),
    Param("metadata", "copied", copy_metadata),
    Param("service_tier", "copied", map_service_tier),  # a tier chat does not have is dropped (and reported)
    Param("stream", "answer", map_stream),
    Param("background", "answer", map_background),  # the chat call runs in the proxy, its answer kept
    Param("include", "answer", map_include),  # reasoning.encrypted_content is sealed by the proxy; others dropped
    # Settings the Response echoes that chat has no counterpart for: checked, echoed, reported dropped.
    Param("store", "dropped", echoed(bool)),
    Param("truncation", "dropped", echoed(str, ("auto", "disabled"))),
    Param("max_tool_calls", "dropped", echoed(int)),
    Param("top_logprobs", "dropped", echoed(int, range(21))),
    Param("prompt_cache_retention", "dropped", echoed(str, ("in_memory", "24h"))),
    Param("conversation", "refused", refuse_stored),  # a stored conversation
    Param("prompt", "refused", refuse_stored),  # a stored prompt template
    *(Param(name, "dropped") for name in ("stream_options", "context_management")),
    # Named alike in chat, but few chat-only upstreams know them: left out rather than refused upstream.
    *(Param(name, "dropped") for name in ("prompt_cache_options", "moderation")),
)


def responses_request_to_chat(request: Any, options: ChatOptions | None = None,
                              history: Sequence[Any] | None = None) -> ChatRequest:
    """The chat request for a parsed Responses request.

    ``history`` is the input and output of the response named by ``previous_response_id``, as the caller
    found it; without it such a request is answered as the API answers for an unknown id.
    """
    draft = new_draft(request, options or ChatOptions(), history)
    RESPONSES_PARAMS.map(draft, request)
    return finished(draft, RESPONSES_PARAMS.dropped(request))


def name_responses_params(error: ProxyError, request: ChatRequest) -> ProxyError:
    """``error`` (an upstream's answer to ``request.body``) naming the Responses request's parameters."""
    return rename_param(error, lambda param: responses_param(param, request))


def responses_param(param: str, request: ChatRequest) -> tuple[str, bool] | None:
    """The Responses path for a chat request's parameter path, and whether all of it was mapped; None when it
    names nothing the client sent under another name."""
    path = parse(param)
    mapped = RESPONSES_PARAMS.client_path(path, request.request, request) if path else None
    if mapped is None:
        return None
    rendered = render(mapped[0])
    return None if not mapped[0] or rendered == param else (rendered, mapped[1])


# Chat parameters an alias may fix (the config writes them in chat terms) whose Responses name differs: their
# path in a Responses request. Any other is set under its own name.
_FIXED_PATHS = {"reasoning_effort": ("reasoning", "effort"), "verbosity": ("text", "verbosity"),
                "max_completion_tokens": ("max_output_tokens",), "max_tokens": ("max_output_tokens",)}


def with_fixed_params(request: dict[str, Any], model: str, fixed: dict[str, Any]) -> dict[str, Any]:
    """A Responses request for ``model``, the real model behind an alias or an effort variant, with the chat
    parameters it fixes set in Responses terms (over the client's, as for a chat request)."""
    result = {**request, "model": model}
    for name, value in fixed.items():
        path = _FIXED_PATHS.get(name, (name,))
        if len(path) == 1:
            result[path[0]] = value
        else:
            outer = result.get(path[0])
            result[path[0]] = {**(outer if isinstance(outer, dict) else {}), path[1]: value}
    return result
