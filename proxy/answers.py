"""Writing a translated chat answer: a chat stream, or one completion (JSON, maybe behind keep-alive whitespace).

The last stages of the request path (route -> plan -> call -> translate -> **write**): the planned calls are
started (:mod:`proxy.responses_calls`), their Responses events go through the core's translators, and the chat
chunks are written as they come. With ``n > 1`` the request runs ``n`` times upstream at once; the choices are
interleaved by index in a stream, or collected into one completion.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response

from . import logs, metrics
from .config import Config
from .errors import ProxyError, json_response
from .memory import ReasoningMemory
from .pacing import Heartbeat
from .passthrough import first_headers
from .plan import TranslatedPlan
from .reattach import REATTACHED_HEADER, Follower, Runs, run_key
from .responses_calls import UpstreamCall, resume_call, start_call, start_calls
from .streaming import StreamedResponse, until_disconnect
from .translate import (DONE, KEEPALIVE, Adaptation, CompletionBuilder, StreamTranslator, Translation,
                        chat_param, encode_frames, name_chat_params, new_completion_id, usage_chunk)

log = logging.getLogger("proxy.answers")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
PROGRESS_EVERY = 60.0  # seconds between "Still thinking" notes, when progress notes are on


def translation_headers(translation: Translation) -> dict[str, str]:
    """Tell the client what the proxy changed, instead of changing it silently."""
    if translation.dropped or translation.adjusted:
        log.debug("request for %s: dropped %s, adjusted %s", translation.upstream.model, translation.dropped,
                  translation.adjusted)
    return changes_reported(translation.dropped, translation.adjusted)


def changes_reported(dropped: Sequence[str], adjusted: Sequence[str]) -> dict[str, str]:
    """The headers of a translated answer: its mode, the parameters left out (names the client chose, encoded) and
    those changed (in the proxy's words), in either direction."""
    headers = {"x-proxy-mode": "translated"}
    if dropped:
        headers["x-proxy-dropped-params"] = client_names(dropped)
    if adjusted:
        headers["x-proxy-adjusted-params"] = ", ".join(adjusted)
    return headers


def adaptation_headers(headers: dict[str, str], adapted: list[Adaptation], translation: Translation) -> dict[str, str]:
    """The dropped and adjusted reports of ``headers`` with what was changed for the model to take the request
    (:class:`~proxy.translate.Adaptation`), in the client's names; only the reports that changed."""
    changed: dict[str, str] = {}
    for report, entries in (
            ("x-proxy-adjusted-params", [f"{_client_name(c.param, translation)}={c.was}->{c.now}"
                                         for c in adapted if c.now is not None]),
            ("x-proxy-dropped-params", [quote(_client_name(c.param, translation), safe="")
                                        for c in adapted if c.now is None])):
        if entries:
            changed[report] = ", ".join(filter(None, [headers.get(report), *entries]))
    return changed


def _client_name(param: str, translation: Translation) -> str:
    """The chat name of a Responses parameter, or its own name where the client sent it under no other."""
    mapped = chat_param(param, translation)
    return mapped[0] if mapped else param


def call_headers(call: UpstreamCall | Follower, headers: dict[str, str], translation: Translation) -> dict[str, str]:
    """What the call that serves the request adds to the answer's ``headers``: the upstream's request id and rate
    limits, what was changed for the model to take it, the background run a retry follows."""
    added = call.details | adaptation_headers(headers, call.adapted, translation)
    if isinstance(call, Follower) and call.reattached:
        added[REATTACHED_HEADER] = call.response_id or ""
    return added


MAX_NAMES_HEADER = 1024


def client_names(names: Sequence[str]) -> str:
    """Names the client chose, as a header value: percent-encoded so no character can break or add a header,
    and cut to a bounded length."""
    value = ", ".join(quote(name, safe="") for name in names)
    return value if len(value) <= MAX_NAMES_HEADER else value[:MAX_NAMES_HEADER - 3] + "..."


@dataclass
class Exchange:
    """The calls and translators of one chat request: one of each per choice."""

    calls: list[UpstreamCall]
    translators: list[StreamTranslator]
    memory: ReasoningMemory | None

    async def aclose(self) -> None:
        for call in self.calls:
            await call.aclose()
        if self.memory is None or not self.memory.suspends:
            await self.conclude()  # waits for nothing, so no cancellation can cut it short
            return
        with anyio.CancelScope(shield=True):  # kept reasoning is stored even when the request is being cancelled
            await self.conclude()

    async def conclude(self) -> None:
        """Account for the request: usage and errors in the request log, reasoning kept for later turns."""
        record = logs.current()
        for translator in self.translators:
            record.count_usage((translator.response or {}).get("usage"))
            if translator.error is not None:
                record.error = str(translator.error.code or translator.error.type)
            elif self.memory is not None and not translator.stopped:
                await self.memory.remember(translator.response)


async def serve_translated(plan: TranslatedPlan, request: Request, config: Config,
                           runs: Runs | None = None) -> Response:
    """Run ``plan``'s calls and write the answer: a chat stream, a completion behind keep-alive whitespace, or a
    completion in one piece. A background run a client may come back to is followed through ``runs``."""
    translation, presentation = plan.translation, plan.presentation
    upstream_request, answer = translation.upstream, translation.answer
    headers = plan.route.upstream.headers(request.headers.raw)
    completion_id = new_completion_id()

    async def start() -> Exchange:
        try:
            if runs is not None and plan.call.background and answer.n == 1 and not answer.stop:
                key, keyed = run_key(first_headers(request), plan.route.upstream.config.name, plan.call.body)
                calls: list[Any] = [await runs.follow(
                    key, keyed, lambda: start_call(plan.route, headers, plan.call, config.background),
                    lambda response_id: resume_call(plan.route, headers, plan.call, response_id, config.background))]
            else:
                calls = await start_calls(plan.route, headers, plan.call, answer.n, config.background)
        except ProxyError as exc:  # the upstream's refusal names Responses parameters; the client sent chat ones
            raise name_chat_params(exc, translation) from None
        return Exchange(calls, [
            StreamTranslator(upstream_request.model, choice_index=index, presentation=presentation,
                             completion_id=completion_id, include_usage=answer.include_usage and answer.n == 1,
                             translation=translation)
            for index in range(answer.n)
        ], plan.memory)

    # Waiting for the upstream's headers (or the whole answer) can take long: a client that leaves
    # meanwhile must not keep the upstream request open. The answer carries the upstream's request id and
    # rate limits (with n > 1, the first choice's).
    extra = translation_headers(translation)
    if answer.stream or config.stream.non_stream_keepalive:
        exchange = await until_disconnect(request.receive, start())
        extra |= call_headers(exchange.calls[0], extra, translation)
        if answer.stream:
            return StreamedResponse(_relay_stream(exchange, answer.include_usage and answer.n > 1),
                                    media_type="text/event-stream", headers={**SSE_HEADERS, **extra},
                                    heartbeat=_stream_heartbeat(exchange.translators, config.stream.heartbeat_interval))
        # Whitespace while the answer is prepared, then the JSON: JSON parsers skip leading whitespace.
        return StreamedResponse(_completion_json(exchange), media_type="application/json", headers=extra,
                                heartbeat=Heartbeat(config.stream.heartbeat_interval, lambda: b" "))
    details: dict[str, str] = {}

    async def whole() -> dict[str, Any]:
        exchange = await start()
        details.update(call_headers(exchange.calls[0], extra, translation))
        return await _completion(exchange)

    try:
        completion = await until_disconnect(request.receive, whole())
    except ProxyError as exc:  # an error from a later upstream answer (a poll) names that one
        raise exc.replace(headers=details | exc.headers) from None
    return json_response(completion, headers=extra | details)


Batch = list[dict[str, Any]]


async def _events(exchange: Exchange) -> AsyncGenerator[tuple[int, Batch | BaseException], None]:
    """Every choice's upstream events, in batches tagged with the choice index, as they arrive."""
    if len(exchange.calls) == 1:
        async with aclosing(exchange.calls[0].batches()) as batches:
            async for batch in batches:
                yield 0, batch
        return
    queue: asyncio.Queue[tuple[int, Batch | BaseException | None]] = asyncio.Queue(64)

    async def read(index: int, call: UpstreamCall) -> None:
        try:
            async with aclosing(call.batches()) as batches:
                async for batch in batches:
                    await queue.put((index, batch))
            await queue.put((index, None))
        except Exception as exc:  # handed to the consumer, which knows whether the choice still matters
            await queue.put((index, exc))

    readers = [asyncio.ensure_future(read(index, call)) for index, call in enumerate(exchange.calls)]
    try:
        running = len(readers)
        while running:
            index, item = await queue.get()
            if item is None:
                running -= 1
            else:
                yield index, item
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.wait(readers)


def _feed(translator: StreamTranslator, item: Batch | BaseException) -> list[dict[str, Any]]:
    """The chat chunks for a batch of events, up to the choice's end."""
    if isinstance(item, BaseException):
        if translator.done:
            return []  # a choice that already ended (at a stop sequence) was closed on purpose
        raise item
    frames: list[dict[str, Any]] = []
    for event in item:
        if translator.done:
            break
        frames.extend(translator.feed(event))
    return frames


async def _completion(exchange: Exchange) -> dict[str, Any]:
    """Follow every call to its end and fold the chunks into one chat completion."""
    builder = CompletionBuilder()
    for translator in exchange.translators:
        builder.add(translator.start())
    try:
        async with aclosing(_events(exchange)) as events:
            async for index, item in events:
                translator = exchange.translators[index]
                builder.add(_feed(translator, item))
                if translator.done:
                    if translator.error is not None:
                        raise translator.error
                    await exchange.calls[index].aclose()
                    if all(t.done for t in exchange.translators):
                        break
        for translator in exchange.translators:
            builder.add(translator.finish())
            if translator.error is not None:
                raise translator.error
        return builder.build(exchange.translators)
    finally:
        await exchange.aclose()


async def _completion_json(exchange: Exchange) -> AsyncIterator[bytes]:
    """The completion, or an error body: the status is already 200 when the outcome is known."""
    try:
        completion = await _completion(exchange)
    except ProxyError as exc:
        yield orjson.dumps(exc.body())
        return
    yield orjson.dumps(completion)


def _stream_heartbeat(translators: list[StreamTranslator], interval: float) -> Heartbeat:
    """A keep-alive comment; once a minute of thinking has passed, a progress note instead (when they are on)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    notes = 0

    def frame() -> bytes:
        nonlocal notes
        metrics.count(metrics.HEARTBEATS)
        minutes = int((loop.time() - started) // PROGRESS_EVERY)
        if minutes > notes:
            notes = minutes
            note = f"Still thinking ({minutes} min)"
            chunks = [chunk for translator in translators for chunk in translator.note(note)]
            if chunks:
                return encode_frames(chunks)
        return KEEPALIVE

    return Heartbeat(interval, frame)


async def _relay_stream(exchange: Exchange, summed_usage: bool) -> AsyncIterator[bytes]:
    translators = exchange.translators
    try:
        yield encode_frames(frame for translator in translators for frame in translator.start())
        frames: list[dict[str, Any]] = []
        try:
            async with aclosing(_events(exchange)) as events:
                async for index, batch in events:
                    translator = translators[index]
                    frames = _feed(translator, batch)
                    if translator.done and not exchange.calls[index].finished:
                        await exchange.calls[index].aclose()  # a stop sequence: no more tokens for nothing
                    if frames:
                        yield encode_frames(frames)
                        frames = []
                    if translator.error is not None or (translator.done and all(t.done for t in translators)):
                        break
                else:
                    frames = [frame for translator in translators for frame in translator.finish()]
        except ProxyError as exc:
            frames = _fail_all(translators, exc)
        failed = next((t.error for t in translators if t.error is not None), None)
        if failed is not None:
            log.warning("stream for %s ended with an error: %s", translators[0].model, failed.message)
            if frames:
                yield encode_frames(frames)
            return
        if summed_usage:
            first = translators[0]
            frames.append(usage_chunk(first.id, first.created, first.model, [t.response for t in translators]))
        yield encode_frames(frames) + DONE
    finally:
        await exchange.aclose()


def _fail_all(translators: list[StreamTranslator], error: ProxyError) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    for translator in translators:
        frames.extend(translator.fail(error))
    return frames[:1]
