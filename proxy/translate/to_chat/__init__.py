"""The Responses API served by a Chat Completions upstream: the pure core, no I/O.

- :func:`responses_request_to_chat` maps a Responses request to a chat request, the report of what it dropped,
  and the :class:`RequestState` the answer is mapped back with;
- :class:`ResponseStream` turns the chat stream's chunks into the Responses event sequence;
- :func:`completion_to_response` turns a chat.completion into a ``Response`` (the same rules, folded).
"""

from .request import (
    BUILTIN_TOOLS,
    RESPONSES_PARAMS,
    ChatOptions,
    ChatRequest,
    RequestState,
    ToolName,
    responses_request_to_chat,
)
from .response import completion_to_response
from .stream import ResponseStream, new_response_id, responses_usage

__all__ = [
    "BUILTIN_TOOLS",
    "RESPONSES_PARAMS",
    "ChatOptions",
    "ChatRequest",
    "RequestState",
    "ResponseStream",
    "ToolName",
    "completion_to_response",
    "new_response_id",
    "responses_request_to_chat",
    "responses_usage",
]
