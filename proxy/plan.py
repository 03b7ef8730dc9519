"""Planning a translated request: what goes upstream, how the answer is presented, what is remembered.

A chat request for a Responses-only model (:func:`plan_translated`), or a Responses request for a chat-only
model (:func:`plan_to_chat`).

The second stage of the request path (route -> **plan** -> call -> translate -> write): everything the
configuration, the model's settings, the client's headers and the reasoning kept from earlier turns say about
this one request is gathered here, once, into a frozen :class:`TranslatedPlan`; the later stages read it.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from starlette.requests import Request

from .config import Config
from .errors import InvalidRequest
from .memory import ReasoningMemory, ReasoningStore
from .models import ModelRoute
from .passthrough import first_headers, header
from .translate import (REASONING_OUTPUTS, ChatOptions, ChatRequest, MappingOptions, Presentation, ReasoningSeal,
                        Translation, chat_to_responses, responses_request_to_chat, restore_reasoning)

log = logging.getLogger("proxy.plan")

REASONING_OUTPUT_HEADER = "x-proxy-reasoning-output"


class CallPlan(NamedTuple):
    """One upstream Responses call, as first tried (a refused feature is left out of a new plan).

    The plan's values are named tuples: immutable, and cheaper to build than frozen dataclasses."""

    body: dict[str, Any]
    model: str
    stream: bool
    background: bool
    first_byte_timeout: float | None = None
    idle_timeout: float | None = None
    # The proxy asked for a reasoning summary the client did not: a refusal is worked around, not relayed.
    summary_added: bool = False
    # A refused value or optional parameter is worked around (the nearest value taken, the parameter left out).
    adapt: bool = False


class TranslatedPlan(NamedTuple):
    """A translated chat request, planned: the route, the translation, the upstream call (one per choice, ``n``),
    the answer's presentation, and where its reasoning is kept (None: nowhere)."""

    route: ModelRoute
    translation: Translation
    call: CallPlan
    presentation: Presentation
    memory: ReasoningMemory | None


async def plan_translated(route: ModelRoute, chat: dict[str, Any], request: Request, config: Config,
                          store: ReasoningStore | None) -> TranslatedPlan:
    """Plan ``chat`` (a parsed chat request for ``route.model``) as Responses calls."""
    settings, refusals, model = route.settings, route.refusals, chat["model"]
    if settings.reasoning_effort and chat.get("reasoning_effort") is None:
        chat = {**chat, "reasoning_effort": settings.reasoning_effort}
    summary = None if config.reasoning.summary == "off" or refusals.no_summary else config.reasoning.summary
    memory = None if store is None else \
        ReasoningMemory(store, first_headers(request), route.upstream.config.name, model)
    options = MappingOptions(
        reasoning_summary=summary,
        reasoning_effort=config.reasoning.effort,
        max_n=config.translate.max_n,
        require_search_tool=bool(settings.search_tool),
        keep_reasoning=memory is not None and model.lower() not in refusals.no_encrypted_reasoning,
    )
    translation = chat_to_responses(chat, options)
    if memory is not None and translation.provenance.answers:
        translation = restore_reasoning(translation, await memory.fetch(translation.provenance.memory_keys))
    presentation = Presentation(
        reasoning=reasoning_output(request, config.reasoning.output),
        stop=translation.answer.stop,
        sources_in_content=config.web_search.sources_in_content,
        progress=bool(settings.progress),
    )
    upstream_request, answer = translation.upstream, translation.answer
    call = CallPlan(
        body=upstream_request.body,
        model=upstream_request.model,
        # A non-streaming client is served from an upstream stream too when a stop sequence may end the
        # answer early (no tokens spent past it), or when configured: the headers then arrive at once, so
        # no first-byte timeout of a gateway in between can cut a long reasoning run. A background run is
        # always followed by its stream: the answer is relayed the moment it is done, where polling would
        # find it up to a poll's wait later (it is polled only where the upstream refuses to stream it).
        stream=answer.stream or bool(answer.stop) or config.stream.upstream_stream or bool(settings.background),
        background=bool(settings.background),
        first_byte_timeout=settings.first_byte_timeout,
        idle_timeout=settings.idle_timeout,
        summary_added=upstream_request.summary_added,
        adapt=config.translate.adapt,
    )
    return TranslatedPlan(route, translation, call, presentation, memory)


def reasoning_output(request: Request, default: str) -> str:
    """The reasoning display for this request: a header may choose another than the configured one."""
    wanted = header(first_headers(request), REASONING_OUTPUT_HEADER).strip().lower()
    if not wanted:
        return default
    if wanted not in REASONING_OUTPUTS:
        raise InvalidRequest(f"Header {REASONING_OUTPUT_HEADER} must be reasoning_content, think or none.",
                             REASONING_OUTPUT_HEADER)
    return wanted


class ChatCallPlan(NamedTuple):
    """One upstream chat call serving a Responses request (its body says whether it streams)."""

    body: dict[str, Any]
    first_byte_timeout: float | None = None
    idle_timeout: float | None = None


class ToChatPlan(NamedTuple):
    """A Responses request planned as a chat call: the route, the mapping (the chat body, what was dropped or
    adjusted, the state the answer is mapped back with), the call, and what is stored of the answer."""

    route: ModelRoute
    chat: ChatRequest
    call: ChatCallPlan
    store: bool  # keep the response (the API's default), for previous_response_id and GET /v1/responses/{id}
    background: bool  # the chat call runs in the proxy, not in the client's request
    input_items: list[dict[str, Any]]  # this request's input, as items
    history: list[dict[str, Any]]  # the items of the conversation before this request's input
    owner: str  # whose the response is (memory.caller_key): stored and run for that caller alone


def plan_to_chat(route: ModelRoute, body: dict[str, Any], config: Config, history: list[dict[str, Any]] | None,
                 seal: ReasoningSeal, owner: str) -> ToChatPlan:
    """Plan ``body`` (a parsed Responses request for ``route.model``) as a chat call; ``history`` is the stored
    conversation ``previous_response_id`` names (None: none is stored); ``seal`` holds the server key that
    reasoning items' ``encrypted_content`` is sealed with."""
    settings = route.settings
    reasoning = body.get("reasoning")
    if settings.reasoning_effort and (reasoning is None or isinstance(reasoning, dict) and
                                      reasoning.get("effort") is None):  # the model's default, as for chat clients
        body = {**body, "reasoning": {**(reasoning or {}), "effort": settings.reasoning_effort}}
    options = ChatOptions(
        reasoning_history=bool(settings.reasoning_history),
        max_tokens_param=settings.max_tokens_param or "max_completion_tokens",
        refuse_builtin_tools=config.to_chat.refuse_builtin_tools,
        reasoning_source=settings.reasoning_source or "fields",
        reasoning_seal=seal,
    )
    chat = responses_request_to_chat(body, options, history)
    if chat.unopened:  # not an error: the turn goes on with the items' own text
        log.debug("reasoning sealed under another key (another process, or a changed to_chat.reasoning_key) at %s; "
                  "the items' own text is used", ", ".join(chat.unopened))
    chat_body = chat.body
    background = body.get("background") is True
    # A whole answer from a stream: its headers at once; a background run's events are kept as they come.
    if (config.stream.upstream_stream or background) and not chat.state.stream:
        chat_body = {**chat_body, "stream": True, "stream_options": {"include_usage": True}}
    call = ChatCallPlan(chat_body, settings.first_byte_timeout, settings.idle_timeout)
    return ToChatPlan(route, chat, call, body.get("store") is not False, background, chat.input_items,
                      list(history or ()), owner)
