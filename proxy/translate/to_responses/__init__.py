"""Chat Completions clients, Responses upstream: chat requests become Responses requests, Responses events
become chat chunks (a non-streamed answer is the stream folded), Responses errors name chat parameters."""

from .completion import CompletionBuilder, responses_to_chat
from .continuity import ENCRYPTED_REASONING, answer_phases, kept_reasoning, reasoning_keys, restore_reasoning
from .params import CHAT_PARAMS, chat_param, chat_to_responses, name_chat_params
from .request import (MAX_NESTING, MIN_OUTPUT_TOKENS, ChatAnswer, MappingOptions, Provenance, ResponsesRequest,
                      Translation, check_nesting)
from .refusals import (Adaptation, adapt, adaptation, adapted, nearest_value, refused_feature, refused_param,
                       refused_value, says_responses_only, without_encrypted_reasoning, without_summary)
from .response import REASONING_PART_SEPARATOR, new_completion_id, terminal_event
from .stream import REASONING_OUTPUTS, TERMINAL_EVENTS, Presentation, StreamTranslator, summed_usage, usage_chunk

__all__ = [
    # the request: chat -> Responses, driven by the parameter table
    "CHAT_PARAMS", "MAX_NESTING", "MIN_OUTPUT_TOKENS", "ChatAnswer", "MappingOptions", "Provenance",
    "ResponsesRequest", "Translation", "chat_to_responses", "check_nesting",
    # the answer: Responses events -> chat chunks, or one completion
    "REASONING_OUTPUTS", "REASONING_PART_SEPARATOR", "TERMINAL_EVENTS", "CompletionBuilder", "Presentation",
    "StreamTranslator", "new_completion_id", "responses_to_chat", "summed_usage", "terminal_event", "usage_chunk",
    # errors: the chat names of Responses parameters, and refusals of what the proxy added
    "chat_param", "name_chat_params", "refused_feature", "says_responses_only", "without_encrypted_reasoning",
    "without_summary",
    # refusals of the client's values and optional parameters: the nearest value taken, the parameter left out
    "Adaptation", "adapt", "adaptation", "adapted", "nearest_value", "refused_param", "refused_value",
    # reasoning kept across turns
    "ENCRYPTED_REASONING", "answer_phases", "kept_reasoning", "reasoning_keys", "restore_reasoning",
]
