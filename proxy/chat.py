"""Serving a translated chat request: the I/O around the pure translation core."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import httpx
import orjson
from starlette.responses import Response, StreamingResponse

from . import logs, metrics
from .config import Config
from .errors import ProxyError
from .pacing import HEARTBEAT, IdleTimeout, Pacer
from .sse import DONE, KEEPALIVE, SSEDecoder, encode_data
from .translate.request import Translation
from .translate.response import new_completion_id, responses_to_chat
from .translate.stream import StreamTranslator
from .upstream import Upstream, read_json, upstream_error

log = logging.getLogger("proxy.chat")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
MAX_ANSWER_BYTES = 256 * 1024 * 1024


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


async def serve_translated(
    config: Config, upstream: Upstream, client_headers: Mapping[str, str], translation: Translation
) -> Response:
    headers = upstream.headers(client_headers)
    extra = translation_headers(translation)
    response = await upstream.send("POST", "/responses", headers, json=translation.body)
    if response.status_code >= 400:
        payload, raw = await read_json(response)
        raise upstream_error(response.status_code, payload, raw)
    translator = StreamTranslator(translation.model, include_usage=translation.include_usage)
    if translation.stream and _is_event_stream(response):
        return StreamingResponse(
            _relay_stream(response, translator, config), media_type="text/event-stream",
            headers={**SSE_HEADERS, **extra},
        )
    answer = await _final_response(response)
    logs.current().count_usage(answer.get("usage"))
    if not translation.stream:
        return json_response(responses_to_chat(answer, new_completion_id()), headers=extra)
    # The upstream ignored `stream: true` and answered in one piece: replay it as a stream.
    frames = translator.start() + translator.feed({"type": "response.completed", "response": answer})
    body = b"".join(encode_data(frame) for frame in frames) + (DONE if translator.error is None else b"")
    return Response(body, media_type="text/event-stream", headers={**SSE_HEADERS, **extra})


def _is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


async def _final_response(response: httpx.Response) -> dict[str, Any]:
    payload, raw = await read_json(response, MAX_ANSWER_BYTES)
    if not isinstance(payload, dict):
        snippet = raw[:200].decode("utf-8", "replace")
        raise ProxyError(502, f"The upstream answered with a body that is not a JSON response: {snippet!r}",
                         "upstream_error", code="invalid_upstream_response")
    if "error" in payload and "output" not in payload:
        raise upstream_error(502, payload, raw)
    return payload


def parse_events(decoder: SSEDecoder, chunk: bytes | None) -> list[dict[str, Any]]:
    """Parsed Responses events in ``chunk`` (``None`` flushes the decoder at end of stream)."""
    events = []
    for sse in decoder.feed(chunk) if chunk is not None else decoder.close():
        if not sse.data or sse.data == "[DONE]":
            continue
        try:
            event = orjson.loads(sse.data)
        except orjson.JSONDecodeError:
            log.warning("skipping an upstream event that is not JSON: %.200r", sse.data)
            continue
        if isinstance(event, dict):
            if "type" not in event and sse.event:
                event["type"] = sse.event
            events.append(event)
    return events


async def _relay_stream(response: httpx.Response, translator: StreamTranslator, config: Config) -> AsyncIterator[bytes]:
    decoder = SSEDecoder()
    pacer: Pacer[bytes] = Pacer(response.aiter_bytes(), config.stream.heartbeat_interval, config.upstream.idle_timeout)
    try:
        yield b"".join(encode_data(frame) for frame in translator.start())
        pacer.written()
        frames: list[dict[str, Any]] = []
        try:
            async for chunk in pacer:
                if chunk is HEARTBEAT:
                    metrics.HEARTBEATS.inc()
                    yield KEEPALIVE
                    continue
                for event in parse_events(decoder, chunk):
                    frames.extend(translator.feed(event))
                if frames:
                    yield b"".join(encode_data(frame) for frame in frames)
                    pacer.written()
                    frames = []
                if translator.done:
                    break
            else:
                for event in parse_events(decoder, None):
                    frames.extend(translator.feed(event))
                frames.extend(translator.finish())
        except IdleTimeout as exc:
            frames.extend(translator.fail(ProxyError(504, str(exc), "upstream_timeout", code="idle_timeout")))
        except httpx.HTTPError as exc:
            frames.extend(translator.fail(ProxyError(
                502, f"The upstream connection failed mid-stream: {str(exc) or type(exc).__name__}",
                "upstream_error", code="upstream_disconnected")))
        logs.current().count_usage((translator.response or {}).get("usage"))
        if translator.error is not None:
            logs.current().error = str(translator.error.code)
            log.warning("stream for %s ended with an error: %s", translator.model, translator.error.message)
        yield b"".join(encode_data(frame) for frame in frames) + (DONE if translator.error is None else b"")
    finally:
        with anyio.CancelScope(shield=True):
            await pacer.aclose()
            await response.aclose()
