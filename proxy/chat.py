"""Serving a translated chat request to the client: a chat stream, or one completion."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, TypeVar

import anyio
import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .calls import TERMINAL_TYPES, Capabilities, CallPlan, UpstreamCall, start_call
from .config import Config
from .errors import ProxyError
from .pacing import HEARTBEAT, IdleTimeout, Pacer
from .sse import DONE, KEEPALIVE, encode_data
from .translate.request import Translation
from .translate.response import new_completion_id, responses_to_chat, upstream_failure
from .translate.stream import StreamTranslator
from .upstream import Upstream

log = logging.getLogger("proxy.chat")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
T = TypeVar("T")


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json")


def translation_headers(translation: Translation) -> dict[str, str]:
    """Tell the client what the proxy changed, instead of changing it silently."""
    headers = {"x-proxy-mode": "translated"}
    if translation.dropped:
        headers["x-proxy-dropped-params"] = ", ".join(translation.dropped)
    if translation.adjusted:
        headers["x-proxy-adjusted-params"] = ", ".join(translation.adjusted)
    if translation.dropped or translation.adjusted:
        log.debug("request for %s: dropped %s, adjusted %s", translation.model, translation.dropped, translation.adjusted)
    return headers


async def serve_translated(config: Config, upstream: Upstream, capabilities: Capabilities, request: Request,
                           translation: Translation) -> Response:
    settings = config.model_settings(translation.model)
    plan = CallPlan(
        body=translation.body,
        model=translation.model,
        # Non-streaming clients are served from an upstream stream too: its headers arrive at once, so no
        # first-byte timeout of a gateway in between can cut a long reasoning run.
        stream=True,
        background=bool(settings.background),
        first_byte_timeout=settings.first_byte_timeout,
        idle_timeout=settings.idle_timeout or upstream.config.idle_timeout,
    )
    call = await start_call(upstream, upstream.headers(request.headers), plan, capabilities, config.background)
    headers = translation_headers(translation)
    if translation.stream:
        translator = StreamTranslator(translation.model, include_usage=translation.include_usage)
        return StreamingResponse(_relay_stream(call, translator, config), media_type="text/event-stream",
                                 headers={**SSE_HEADERS, **headers})
    if config.stream.non_stream_keepalive:
        return StreamingResponse(_padded_completion(call, config), media_type="application/json", headers=headers)
    return json_response(await _until_disconnect(request, _completion(call)), headers=headers)


async def _completion(call: UpstreamCall) -> dict[str, Any]:
    """Follow the call to its end and map the final response to one chat completion."""
    try:
        final = None
        async for event in call.events():
            if event.get("type") in TERMINAL_TYPES:
                final = event
                break
        if final is None:
            raise ProxyError(502, "The upstream stream ended before the response was complete.", "server_error",
                             code="upstream_stream_incomplete")
        if final["type"] == "error":
            raise upstream_failure(final)
        return responses_to_chat(final.get("response") or {}, new_completion_id())
    except httpx.HTTPError as exc:
        raise ProxyError(502, f"The upstream connection failed: {str(exc) or type(exc).__name__}",
                         "upstream_error", code="upstream_disconnected") from None
    finally:
        await call.aclose()


async def _until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run ``work``, abandoning it (and so cancelling the upstream job) if the client goes away."""
    task = asyncio.ensure_future(work)

    async def client_gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(client_gone())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
        watcher.cancel()
    if task.cancelled():
        log.info("client disconnected before its completion was ready")
        raise ProxyError(499, "The client closed the connection.", "client_disconnected")
    return task.result()


async def _padded_completion(call: UpstreamCall, config: Config) -> AsyncIterator[bytes]:
    """Whitespace while the answer is prepared, then the JSON: JSON parsers skip leading whitespace.

    The status is already 200 when the outcome is known, so a failure is sent as an error body.
    """
    task = asyncio.ensure_future(_completion(call))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=config.stream.heartbeat_interval)
            if done:
                break
            yield b" "
        try:
            yield orjson.dumps(task.result())
        except ProxyError as exc:
            yield orjson.dumps(exc.body())
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})


async def _relay_stream(call: UpstreamCall, translator: StreamTranslator, config: Config) -> AsyncIterator[bytes]:
    # A background stream resumes after silence by itself, so only plain streams have an idle watchdog.
    idle = float("inf") if call.plan.background else (call.plan.idle_timeout or config.upstream.idle_timeout)
    pacer: Pacer[dict[str, Any]] = Pacer(call.events(), config.stream.heartbeat_interval, idle)
    try:
        yield b"".join(encode_data(frame) for frame in translator.start())
        pacer.written()
        frames: list[dict[str, Any]] = []
        try:
            async for event in pacer:
                if event is HEARTBEAT:
                    yield KEEPALIVE
                    continue
                frames = translator.feed(event)
                if frames:
                    yield b"".join(encode_data(frame) for frame in frames)
                    pacer.written()
                    frames = []
                if translator.done:
                    break
            else:
                frames = translator.finish()
        except IdleTimeout as exc:
            frames = translator.fail(ProxyError(504, str(exc), "upstream_timeout", code="idle_timeout"))
        except ProxyError as exc:
            frames = translator.fail(exc)
        except httpx.HTTPError as exc:
            frames = translator.fail(ProxyError(
                502, f"The upstream connection failed mid-stream: {str(exc) or type(exc).__name__}",
                "upstream_error", code="upstream_disconnected"))
        if translator.error is not None:
            log.warning("stream for %s ended with an error: %s", translator.model, translator.error.message)
        yield b"".join(encode_data(frame) for frame in frames) + (DONE if translator.error is None else b"")
    finally:
        with anyio.CancelScope(shield=True):
            await pacer.aclose()
            await call.aclose()
