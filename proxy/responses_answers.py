"""Writing a Responses answer served by a chat upstream: the Responses event stream, or one ``Response``.

The last stages of the Responses request for a chat-only model (route -> plan -> call -> translate -> **write**):
the chat call is started (:mod:`proxy.chat_calls`), its chunks go through the core's :class:`ResponseStream`,
and the events are written as the API writes them (``event:`` then ``data:``). An error before the answer
begins is the Responses error body with the upstream's status, its parameters named as the client sent them;
a failure mid-stream ends the stream with ``error`` and ``response.failed``, never ``response.completed``.
The final response is stored when the request asked for it (``store``, true by default).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from . import logs, metrics
from .answers import SSE_HEADERS, changes_reported
from .chat_calls import ChatCall, start_chat_call
from .config import Config
from .errors import ProxyError, json_response
from .pacing import Heartbeat
from .plan import ToChatPlan
from .stored_responses import ResponseStore
from .streaming import StreamedResponse, until_disconnect
from .translate import (KEEPALIVE, ResponseStream, completion_chunk, completion_to_response, encode_event,
                        name_responses_params)

log = logging.getLogger("proxy.answers")


async def serve_to_chat(plan: ToChatPlan, request: Request, config: Config, store: ResponseStore,
                        accepted: Callable[[], None] | None = None) -> Response:
    """Run ``plan``'s chat call and write the Responses answer; ``accepted`` is called once the upstream has
    accepted the call."""
    headers = plan.route.upstream.headers(request.headers)

    async def start() -> ChatCall:
        try:
            return await start_chat_call(plan.route, headers, plan.call)
        except ProxyError as exc:  # the upstream names chat parameters; the client sent Responses ones
            raise name_responses_params(exc, plan.chat) from None

    call = await until_disconnect(request.receive, start())
    if accepted is not None:
        accepted()
    extra = changes_reported(plan.chat.dropped, plan.chat.adjusted) | call.details
    if plan.chat.state.stream:
        return StreamedResponse(_event_stream(plan, call, store), media_type="text/event-stream",
                                headers={**SSE_HEADERS, **extra},
                                heartbeat=Heartbeat(config.stream.heartbeat_interval, _keepalive))
    if config.stream.non_stream_keepalive:  # whitespace while the answer is prepared: JSON parsers skip it
        return StreamedResponse(_json_behind_whitespace(plan, call, store), media_type="application/json",
                                headers=extra, heartbeat=Heartbeat(config.stream.heartbeat_interval, lambda: b" "))
    try:
        response = await until_disconnect(request.receive, _whole(plan, call))
    finally:
        call.aclose()
    _conclude(plan, response, store)
    return json_response(response, headers=extra)


async def _json_behind_whitespace(plan: ToChatPlan, call: ChatCall, store: ResponseStore) -> AsyncIterator[bytes]:
    """The Response, or an error body: the status is already 200 when the outcome is known."""
    try:
        response = await _whole(plan, call)
    except ProxyError as exc:
        yield orjson.dumps(exc.body())
        return
    finally:
        call.aclose()
    _conclude(plan, response, store)
    yield orjson.dumps(response)


def _keepalive() -> bytes:
    metrics.count(metrics.HEARTBEATS)
    return KEEPALIVE


async def _whole(plan: ToChatPlan, call: ChatCall) -> dict[str, Any]:
    """The Response for a whole answer (a completion, or a stream folded); a failed answer is an error."""
    if not call.streamed:
        return completion_to_response(await call.completion(), plan.chat.state)
    stream = ResponseStream(plan.chat.state)
    stream.start()
    try:
        async with aclosing(call.chunks()) as chunks:
            async for batch in chunks:
                for chunk in batch:
                    stream.feed(chunk)
    except ProxyError as exc:
        stream.fail(exc.message)
    stream.finish()
    response = stream.response
    assert response is not None
    if response["status"] == "failed":
        error = response["error"]
        raise ProxyError(502, error["message"], "server_error", code=error["code"])
    return response


async def _event_stream(plan: ToChatPlan, call: ChatCall, store: ResponseStore) -> AsyncIterator[bytes]:
    stream = ResponseStream(plan.chat.state)
    try:
        yield _frames(stream.start())
        try:
            if not call.streamed:  # a server that answers in one piece when asked for a stream
                yield _frames(stream.feed(completion_chunk(await call.completion())))
            else:
                async with aclosing(call.chunks()) as chunks:
                    async for batch in chunks:
                        events = [event for chunk in batch for event in stream.feed(chunk)]
                        if events:
                            yield _frames(events)
                        if stream.done:
                            break
            events = stream.finish()
        except ProxyError as exc:  # the connection cut, the idle timeout, an answer too large
            events = stream.fail(exc.message)
        if stream.response is not None and stream.response["status"] == "failed":
            log.warning("stream for %s ended with an error: %s", plan.route.model, stream.response["error"]["message"])
        yield _frames(events)
        _conclude(plan, stream.response, store)
    finally:
        call.aclose()


def _frames(events: list[dict[str, Any]]) -> bytes:
    return b"".join(encode_event(event["type"], event) for event in events)


def _conclude(plan: ToChatPlan, response: dict[str, Any] | None, store: ResponseStore) -> None:
    """Account for the answer in the request log, and store it when asked to."""
    if response is None:
        return
    record = logs.current()
    record.count_usage(response.get("usage"))
    if response["status"] == "failed":
        record.error = str(response["error"]["code"])
    if plan.store:
        store.put(response, plan.input_items, plan.history)
