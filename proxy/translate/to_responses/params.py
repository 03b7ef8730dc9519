"""The chat parameter table, and what it drives: the mapping to a Responses request, the report of what was
left out, and the chat names of the Responses parameters an upstream's error names. Pure.

Every parameter of the chat API has a row (a test holds the table to the
OpenAPI spec's ``CreateChatCompletionRequest``); a parameter with no row is
dropped and reported, like one whose row says ``dropped``.
"""

from __future__ import annotations

from typing import Any

from ...errors import ProxyError
from ..paths import parse, reach, render, rename_param
from ..table import Param, ParamTable
from .error_params import format_param, function_call_param, messages_param, tool_choice_param, tools_param
from .request import (MappingOptions, Translation, copy_boolean, copy_cache_options, copy_choice, copy_metadata,
                      copy_moderation, copy_safety_identifier, copy_string, finished, map_choices, map_limits,
                      map_logprobs, map_messages, map_reasoning, map_stop, map_stream, map_stream_options, map_text,
                      map_tool_choice, map_tools, map_web_search, new_draft, reject_audio)

# In the order the handlers run, which is the order the request is checked in.
CHAT_PARAMS = ParamTable(
    Param("model", "copied"),
    Param("stream", "answer", map_stream),
    Param("stream_options", "answer", map_stream_options),
    Param("audio", "refused", reject_audio),
    Param("modalities", "refused", reject_audio),  # text only
    Param("messages", "mapped", map_messages, ("input", "instructions"), messages_param),
    Param("n", "answer", map_choices),
    Param("stop", "answer", map_stop),
    Param("tools", "mapped", map_tools, ("tools",), tools_param),
    Param("functions", "mapped", map_tools, ("tools",), tools_param),
    Param("web_search_options", "mapped", map_web_search, ("tools",), tools_param),
    Param("tool_choice", "mapped", map_tool_choice, ("tool_choice",), tool_choice_param),
    Param("function_call", "mapped", map_tool_choice, ("tool_choice",), function_call_param),
    Param("max_completion_tokens", "adjusted", map_limits, ("max_output_tokens",)),
    Param("max_tokens", "adjusted", map_limits, ("max_output_tokens",)),
    Param("reasoning", "copied", map_reasoning),  # not chat's: Responses' own, which some clients send
    Param("reasoning_effort", "mapped", map_reasoning, ("reasoning.effort",)),  # wins over reasoning.effort
    Param("response_format", "mapped", map_text, ("text.format",), format_param),
    Param("verbosity", "mapped", map_text, ("text.verbosity",)),
    Param("logprobs", "mapped", map_logprobs),  # asks for them in ``include``
    Param("top_logprobs", "copied", map_logprobs),
    *(Param(name, "copied", copy_string) for name in ("prompt_cache_key", "user")),
    Param("safety_identifier", "copied", copy_safety_identifier),
    Param("parallel_tool_calls", "copied", copy_boolean),
    *(Param(name, "copied", copy_choice) for name in ("service_tier", "prompt_cache_retention")),
    Param("metadata", "copied", copy_metadata),
    Param("prompt_cache_options", "copied", copy_cache_options),
    Param("moderation", "copied", copy_moderation),
    Param("store", "copied", copy_boolean),  # false when not given (see new_draft)
    # Sampling knobs that Responses-only (reasoning) models reject or that the Responses API does not have:
    # forwarding them would turn a usable request into a 400. A prediction (predicted output) has no
    # counterpart either; it only makes an answer faster.
    *(Param(name, "dropped") for name in (
        "temperature", "top_p", "presence_penalty", "frequency_penalty", "logit_bias", "seed", "prediction")),
)


def chat_to_responses(chat: Any, options: MappingOptions | None = None) -> Translation:
    """The Responses request for a parsed chat request, already checked by :func:`check_nesting`."""
    draft = new_draft(chat, options or MappingOptions())
    CHAT_PARAMS.map(draft, chat)
    return finished(draft, CHAT_PARAMS.dropped(chat))


def name_chat_params(error: ProxyError, translation: Translation) -> ProxyError:
    """``error`` (an upstream's answer to ``translation.upstream``) naming the chat request's parameters."""
    return rename_param(error, lambda param: chat_param(param, translation))


def chat_param(param: str, translation: Translation) -> tuple[str, bool] | None:
    """The chat path for a Responses request's parameter path, and whether all of it was mapped;
    None when it names nothing the client sent under another name."""
    path = parse(param)
    chat = translation.provenance.request
    mapped = CHAT_PARAMS.client_path(path, chat, translation) if path else None
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
