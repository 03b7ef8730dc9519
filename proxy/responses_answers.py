"""Writing a Responses answer served by a chat upstream: the Responses event stream, or one ``Response``.

The last stages of the Responses request for a chat-only model (route -> plan -> call -> translate -> **write**):
the chat call is started (:mod:`proxy.chat_calls`), its chunks go through the core's :class:`ResponseStream`,
and the events are written as the API writes them (``event:`` then ``data:``). An error before the answer
begins is the Responses error body with the upstream's status, its parameters named as the client sent them;
a failure mid-stream ends the stream with ``error`` and ``response.failed``, never ``response.completed``.
The final response is stored when the request asked for it (``store``, true by default). A background request
(``background: true``) is run by :mod:`proxy.chat_runs`, and answered with the Response as it starts, or with
the run's events as they come (the run goes on if the client leaves); :func:`serve_run` answers a ``GET`` of it.
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
from .chat_calls import ChatCall, answer_events, start_chat_call
from .chat_runs import ChatRun, ChatRuns
from .config import Config
from .errors import InvalidRequest, ProxyError, json_response
from .pacing import Heartbeat
from .plan import ToChatPlan
from .stored_responses import ResponseStore, with_ids
from .streaming import StreamedResponse, until_disconnect
from .translate import KEEPALIVE, ResponseStream, completion_to_response, encode_events, name_responses_params

log = logging.getLogger("proxy.answers")


async def serve_to_chat(plan: ToChatPlan, request: Request, config: Config, store: ResponseStore,
                        runs: ChatRuns, accepted: Callable[[], None] | None = None) -> Response:
    """Run ``plan``'s chat call and write the Responses answer (a background one: start its run); ``accepted`` is
    called once the upstream has accepted the call."""
    headers = plan.route.upstream.headers(request.headers.raw)

    async def start() -> ChatCall:
        try:
            return await start_chat_call(plan.route, headers, plan.call)
        except ProxyError as exc:  # the upstream names chat parameters; the client sent Responses ones
            raise name_responses_params(exc, plan.chat) from None

    if plan.background:
        runs.make_room()  # before the upstream is asked
    call = await until_disconnect(request.receive, start())
    if accepted is not None:
        accepted()
    extra = changes_reported(plan.chat.dropped, plan.chat.adjusted) | call.details
    if plan.background:
        plan = plan._replace(input_items=with_ids(plan.input_items))  # the same ids while it runs and once stored
        run = runs.start(ResponseStream(plan.chat.state), call, plan.input_items, plan.owner,
                         lambda response: _conclude(plan, response, store))
        if plan.chat.state.stream:
            return _followed(run, -1, config, extra)
        return json_response(run.response, headers=extra)
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
    await _conclude(plan, response, store)
    return json_response(response, headers=extra)


def serve_run(run: ChatRun, query: dict[str, str], config: Config) -> Response:
    """``GET /v1/responses/{id}`` of a background response: the Response as it stands, or with ``stream=true``
    its events after ``starting_after`` (all of them without it), then each as it comes."""
    stream = query.get("stream", "false")
    if stream not in ("true", "false"):
        raise InvalidRequest(f"Invalid value for 'stream': {stream!r:.40}. Expected 'true' or 'false'.", "stream",
                             "invalid_value")
    if stream == "false":
        return json_response(run.response)
    after = query.get("starting_after", "-1")
    try:
        number = int(after)
    except ValueError:
        raise InvalidRequest(f"Invalid value for 'starting_after': {after!r:.40}. Expected an integer.",
                             "starting_after", "invalid_value") from None
    run.check_start(number)
    return _followed(run, number, config, {"x-proxy-mode": "translated"})


def _followed(run: ChatRun, after: int, config: Config, headers: dict[str, str]) -> Response:
    return StreamedResponse(run.follow(after), media_type="text/event-stream", headers={**SSE_HEADERS, **headers},
                            heartbeat=Heartbeat(config.stream.heartbeat_interval, _keepalive))


async def _json_behind_whitespace(plan: ToChatPlan, call: ChatCall, store: ResponseStore) -> AsyncIterator[bytes]:
    """The Response, or an error body: the status is already 200 when the outcome is known."""
    try:
        response = await _whole(plan, call)
    except ProxyError as exc:
        yield orjson.dumps(exc.body())
        return
    finally:
        call.aclose()
    await _conclude(plan, response, store)
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
    async with aclosing(answer_events(call, stream)) as batches:
        async for _ in batches:
            pass
    response = stream.response
    assert response is not None
    if response["status"] == "failed":
        error = response["error"]
        raise ProxyError(502, error["message"], "server_error", code=error["code"])
    return response


async def _event_stream(plan: ToChatPlan, call: ChatCall, store: ResponseStore) -> AsyncIterator[bytes]:
    stream = ResponseStream(plan.chat.state)
    try:
        yield encode_events(stream.start())
        async with aclosing(answer_events(call, stream)) as batches:
            async for events in batches:
                if stream.done and events:  # the answer's last events: stored before the client can ask for it
                    if stream.response is not None and stream.response["status"] == "failed":
                        log.warning("stream for %s ended with an error: %s", plan.route.model,
                                    stream.response["error"]["message"])
                    await _conclude(plan, stream.response, store)
                if events:
                    yield encode_events(events)
    finally:
        call.aclose()


async def _conclude(plan: ToChatPlan, response: dict[str, Any] | None, store: ResponseStore) -> None:
    """Account for the answer in the request log, and store it when asked to."""
    if response is None:
        return
    record = logs.current()
    record.count_usage(response.get("usage"))
    if response["status"] == "failed":
        record.error = str(response["error"]["code"])
    if plan.store:
        await store.put(response, plan.input_items, plan.history, plan.owner)
