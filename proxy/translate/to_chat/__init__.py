"""The Responses API served by a Chat Completions upstream: the pure core, no I/O.

- :func:`responses_request_to_chat` maps a Responses request to a chat request, the report of what it dropped,
  and the :class:`RequestState` the answer is mapped back with, driven by the parameter table
  :data:`RESPONSES_PARAMS`; :func:`name_responses_params` names the client's parameters in an upstream's error;
- :class:`ResponseStream` turns the chat stream's chunks into the Responses event sequence;
- :func:`completion_to_response` turns a chat.completion into a ``Response`` (the same rules, folded);
- :class:`ReasoningSeal` seals a reasoning item's ``encrypted_content`` and opens it when it comes back;
- :func:`says_chat_only` reads an upstream's error answer to ``/v1/responses`` as "serve this model through chat".
"""

from .detect import says_chat_only
from .params import RESPONSES_PARAMS, name_responses_params, responses_request_to_chat, with_fixed_params
from .request import BUILTIN_TOOLS, ChatOptions, ChatRequest, RequestState, ToolName
from .reasoning_seal import ReasoningSeal
from .response import completion_chunk, completion_to_response
from .stream import ResponseStream, new_response_id, responses_usage

__all__ = [
    "BUILTIN_TOOLS",
    "RESPONSES_PARAMS",
    "ChatOptions",
    "ChatRequest",
    "ReasoningSeal",
    "RequestState",
    "ResponseStream",
    "ToolName",
    "completion_chunk",
    "completion_to_response",
    "name_responses_params",
    "new_response_id",
    "responses_request_to_chat",
    "responses_usage",
    "says_chat_only",
    "with_fixed_params",
]
