"""The pure translation core: plain functions, frozen values and state machines, no I/O.

The rest of the proxy (the shell: HTTP, upstream calls, memory stores) uses the
core through this module only, as h11 is used through its events and
connection. One subpackage per direction (``to_responses``: chat clients, a
Responses upstream); what both directions share (SSE framing, reading JSON
fields, parameter paths, the parameter table's shape) sits beside them.
"""

from . import to_chat, to_responses
from .sse import (DONE, KEEPALIVE, EventHolder, EventTooLarge, ServerSentEvent, SSEDecoder, closing_frame,
                  encode_data, encode_event, encode_events, encode_frames, event_frames)
from .reasoning import REASONING_EFFORTS, REASONING_SUMMARIES
from .table import Fate, Param, ParamTable
from .to_chat import *  # noqa: F403 (Responses clients, chat upstream: the names in its __all__)
from .to_responses import *  # noqa: F403 (chat clients, Responses upstream: the names in its __all__)

__all__ = [
    # SSE, for both directions
    "DONE", "KEEPALIVE", "EventHolder", "EventTooLarge", "ServerSentEvent", "SSEDecoder", "closing_frame",
    "encode_data", "encode_event", "encode_events", "encode_frames", "event_frames",
    # both directions, and the configuration
    "REASONING_EFFORTS", "REASONING_SUMMARIES",
    # the shape of a direction's parameter table
    "Fate", "Param", "ParamTable",
    *to_chat.__all__,
    *to_responses.__all__,
]
