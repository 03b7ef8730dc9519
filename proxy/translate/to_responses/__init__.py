"""Chat Completions clients, Responses upstream: chat requests become Responses requests, Responses events
become chat chunks (a non-streamed answer is the stream folded), Responses errors name chat parameters."""

from .completion import CompletionBuilder, responses_to_chat
from .continuity import ENCRYPTED_REASONING, answer_phases, kept_reasoning, reasoning_keys, restore_reasoning
from .params import CHAT_PARAMS, chat_param, chat_to_responses, name_chat_params
from .request import (MAX_NESTING, MIN_OUTPUT_TOKENS, ChatAnswer, MappingOptions, Provenance, ResponsesRequest,
                      Translation, check_nesting)
from .refusals import refused_feature, says_responses_only, without_encrypted_reasoning, without_summary
from .response import REASONING_PART_SEPARATOR, new_completion_id, terminal_event
from .stream import TERMINAL_EVENTS, Presentation, StreamTranslator, summed_usage, usage_chunk

__all__ = [
    "CHAT_PARAMS", "ENCRYPTED_REASONING", "MAX_NESTING", "MIN_OUTPUT_TOKENS", "REASONING_PART_SEPARATOR",
    "TERMINAL_EVENTS", "ChatAnswer", "CompletionBuilder", "MappingOptions", "Presentation", "Provenance",
    "ResponsesRequest", "StreamTranslator", "Translation", "answer_phases", "chat_param", "chat_to_responses",
    "check_nesting", "kept_reasoning", "name_chat_params", "new_completion_id", "reasoning_keys",
    "refused_feature", "responses_to_chat", "restore_reasoning", "says_responses_only", "summed_usage",
    "terminal_event", "usage_chunk", "without_encrypted_reasoning", "without_summary",
]
