"""Running a translated request upstream: streamed, in one piece, or in background mode.

Whatever the mode, a started :class:`UpstreamCall` yields Responses events up to
and including a terminal one, so the client side (stream relay or completion
assembly) does not care how the answer was obtained:

- streamed: the upstream's SSE events as they arrive;
- in one piece: a single terminal event carrying the whole response;
- background (long reasoning runs): the create call returns at once; the
  response is followed by a background stream that is resumed after a cut
  (``GET /responses/{id}?stream=true&starting_after=N``), or by polling
  ``GET /responses/{id}`` with growing waits. :meth:`UpstreamCall.cancel`
  stops a background job nobody waits for any more.

A 400 refusing a feature the proxy added (background mode, streaming, a
reasoning summary, encrypted reasoning) by naming its parameter gets the request
sent again without it; the refusal is learned in the model table (:class:`proxy.models.Refusals`)
once the request without it is accepted. So does a value the model refuses while naming the values it takes
(the nearest one is sent) and an optional parameter it refuses outright (left out), unless ``translate.adapt``
is off: the call reports those changes (:attr:`UpstreamCall.adapted`), and later requests are adapted at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

import anyio
import orjson

from . import metrics
from .config import BackgroundConfig
from .errors import InvalidUpstreamAnswer, UpstreamBroken, UpstreamError
from .models import ModelRoute
from .plan import CallPlan
from .translate import (TERMINAL_EVENTS, Adaptation, EventTooLarge, SSEDecoder, adapt, adaptation, refused_feature,
                        terminal_event, without_encrypted_reasoning, without_summary)
from .upstream import Upstream, UpstreamResponse, read_answer, read_json, upstream_details, upstream_error

log = logging.getLogger("proxy.calls")

MAX_ANSWER_BYTES = 256 * 1024 * 1024
MAX_ADAPTATIONS = 8  # values and parameters changed for one request, at most
DRAIN_SECONDS = 1.0  # how long the end of a finished stream may take to arrive


def parse_events(decoder: SSEDecoder, chunk: bytes | None) -> list[dict[str, Any]]:
    """Parsed Responses events in ``chunk`` (``None`` flushes the decoder at end of stream)."""
    try:
        decoded = decoder.feed(chunk) if chunk is not None else decoder.close()
    except EventTooLarge:
        raise InvalidUpstreamAnswer.too_large(MAX_ANSWER_BYTES) from None
    events = []
    for name, data in decoded:
        if not data or data == b"[DONE]":
            continue
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("skipping an upstream event that is not JSON: %.200r", data)
            continue
        if isinstance(event, dict):
            if name and "type" not in event:
                event["type"] = name
            events.append(event)
    return events


async def json_answer(response: UpstreamResponse) -> dict[str, Any]:
    """A whole Response object from a non-streamed answer; anything else is a 502."""
    payload, raw = await read_answer(response, MAX_ANSWER_BYTES, "a JSON response")
    if "error" in payload and "output" not in payload:
        raise upstream_error(response, payload, raw, 502)
    return payload


class UpstreamCall:
    """A started upstream Responses request; iterate :meth:`batches` once."""

    def __init__(self, upstream: Upstream, headers: Mapping[str, str], plan: CallPlan,
                 background: BackgroundConfig, retries: int, details: dict[str, str]) -> None:
        self.upstream = upstream
        self.headers = headers
        self.plan = plan
        self.background = background
        self.retries = retries
        self.details = details  # of the answer that started the response (see upstream_details)
        self.adapted: list[Adaptation] = []  # what was changed for the model to take the request
        self.response_id: str | None = None
        self.finished = False
        self.cancels = True  # whether closing it unfinished cancels the background job (see aclose)
        self._http: UpstreamResponse | None = None
        self._body: AsyncGenerator[bytes, None] | None = None
        self._answer: dict[str, Any] | None = None
        self._last_sequence: int | None = None
        self._counted = plan.background
        if self._counted:
            metrics.count(metrics.BACKGROUND_JOBS)

    def batches(self) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The answer's events, in lists of those that arrived together (one per upstream read)."""
        return self._stream() if self._answer is None else self._settled(self._answer)

    async def _settled(self, answer: dict[str, Any]) -> AsyncGenerator[list[dict[str, Any]], None]:
        """A whole answer: its end, or for a background job still running, what polling it brings."""
        first = terminal_event(answer)
        if first is not None or not self.plan.background:
            self.finished = True
            yield [first or {"type": "response.completed", "response": answer}]
            return
        async with aclosing(self._poll(answer)) as events:
            async for event in events:
                yield [event]

    async def _stream(self) -> AsyncGenerator[list[dict[str, Any]], None]:
        """A streamed answer. A connection silent for the idle timeout (see :class:`UpstreamResponse`) is dead:
        a background stream is resumed, a plain one is reported as such."""
        resumes = 0
        while True:
            decoder = SSEDecoder(max_event=MAX_ANSWER_BYTES)  # an event is at most a whole answer
            try:
                assert self._http is not None
                self._body = body = self._http.chunks()
                async with aclosing(body):  # left early (a stop sequence, a client gone): the body's reader ends too
                    async for chunk in body:
                        batch = self._read(decoder, chunk)
                        if self.finished:
                            await self._drain()
                            yield batch
                            return
                        if batch:
                            yield batch
                batch = self._read(decoder, None)  # a last event without its blank line
                if batch:
                    yield batch
                if self.finished or not self.plan.background:
                    return  # unfinished: the consumer reports the stream as cut short
            except UpstreamBroken as exc:
                if not self.plan.background or self.response_id is None:
                    raise
                log.info("background stream %s broke (%s); resuming", self.response_id, type(exc).__name__)
            self._close_http()
            if self.response_id is None:
                return
            resumes += 1
            if resumes > self.background.max_resumes or not await self._resume():
                async with aclosing(self._poll(None)) as events:
                    async for event in events:
                        yield [event]
                return

    def _read(self, decoder: SSEDecoder, chunk: bytes | None) -> list[dict[str, Any]]:
        """The events in ``chunk`` (``None`` flushes the decoder), up to a terminal one, which ends the call:
        known finished before the consumer sees the end, so closing it then cancels nothing."""
        events = parse_events(decoder, chunk)
        for position, event in enumerate(events):
            if event.get("type") in TERMINAL_EVENTS:
                self.finished = True
                events = events[:position + 1]
                break
        self._track(events)
        return events

    async def _drain(self) -> None:
        """Read what follows the last event (the body's end), so the connection goes back to the pool.

        Closed half-read, a connection cannot be reused: every answer would cost a new connection.
        """
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                async for _ in self._body:
                    pass
        except (TimeoutError, UpstreamBroken):
            pass

    def _track(self, events: list[dict[str, Any]]) -> None:
        """From the events of one read: the last sequence number (a resumed stream starts after it), and the
        response id until it is known."""
        for event in reversed(events):
            sequence = event.get("sequence_number")
            if isinstance(sequence, int):
                self._last_sequence = sequence
                break
        if self.response_id is None:
            for event in events:
                response = event.get("response")
                if isinstance(response, dict) and isinstance(response.get("id"), str):
                    self.response_id = response["id"]
                    break

    async def _resume(self) -> bool:
        params = "stream=true" + (f"&starting_after={self._last_sequence}" if self._last_sequence is not None else "")
        try:
            response, _ = await self.upstream.send_retrying("GET", f"/responses/{self.response_id}", self.headers,
                                                            params=params, idle_timeout=self.plan.idle_timeout)
        except UpstreamError as exc:
            log.warning("could not resume background stream %s: %s", self.response_id, exc.message)
            return False
        if response.status_code >= 400 or not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.close()
            return False
        self._http = response
        return True

    async def _poll(self, snapshot: dict[str, Any] | None) -> AsyncGenerator[dict[str, Any], None]:
        """Follow a background response by polling until it reaches a final status."""
        wait = self.background.poll_initial
        while True:
            if snapshot is not None:
                final = terminal_event(snapshot)
                if final is not None:
                    self.finished = True
                    yield final
                    return
                # A sign of life for the consumer; it carries no output.
                yield {"type": "response.in_progress", "response": snapshot}
                await asyncio.sleep(wait)
                wait = min(wait * 1.5, self.background.poll_max)
            response, _ = await self.upstream.send_retrying("GET", f"/responses/{self.response_id}", self.headers)
            if response.status_code >= 400:
                payload, raw = await read_json(response)
                raise upstream_error(response, payload, raw)
            snapshot = await json_answer(response)

    async def cancel(self) -> None:
        """Stop a background job whose answer nobody will read (client gone, or the proxy gave up)."""
        if not self.plan.background or self.finished or self.response_id is None:
            return
        try:
            async with asyncio.timeout(10):
                response = await self.upstream.send("POST", f"/responses/{self.response_id}/cancel", self.headers)
                response.close()
            log.info("cancelled background response %s", self.response_id)
        except (UpstreamError, TimeoutError) as exc:
            log.warning("could not cancel background response %s: %s", self.response_id, exc)

    async def aclose(self) -> None:
        """Release the upstream connection and cancel an unfinished background job (unless :attr:`cancels` was
        turned off: a run another process or client still follows). Safe to call twice."""
        self._close_http()
        if self.cancels and self.plan.background and not self.finished and self.response_id is not None:
            with anyio.CancelScope(shield=True):  # the job must be stopped even when the request is being cancelled
                await self.cancel()
        self.finished = True
        if self._counted:
            self._counted = False
            metrics.count(metrics.BACKGROUND_JOBS, amount=-1)

    def _close_http(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            http.close()


async def start_calls(route: ModelRoute, headers: Mapping[str, str], plan: CallPlan, n: int,
                      background: BackgroundConfig) -> list[UpstreamCall]:
    """Create ``n`` upstream responses (one per choice) at once; if one cannot start, none is left running."""
    if n == 1:
        return [await start_call(route, headers, plan, background)]
    tasks = [asyncio.ensure_future(start_call(route, headers, plan, background)) for _ in range(n)]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled() and task.exception() is None:
                await task.result().aclose()
        raise


async def start_call(route: ModelRoute, headers: Mapping[str, str], plan: CallPlan,
                     background: BackgroundConfig) -> UpstreamCall:
    """Create the upstream response; errors before any event arrives are raised as :class:`UpstreamError`.

    A refused feature is left out and the request sent again, maybe more than once (the next answer may refuse
    another). What was refused is learned (``route.refusals``) only once a request is accepted: when the request
    fails anyway, the refusal was not what stood in its way, and the client gets that last error.
    """
    upstream, refusals, model = route.upstream, route.refusals, plan.model.lower()
    if (plan.background and model in refusals.no_background) or (plan.stream and model in refusals.no_stream):
        plan = plan._replace(background=plan.background and model not in refusals.no_background,
                             stream=plan.stream and model not in refusals.no_stream)
    refused: list[str] = []
    adapted: list[Adaptation] = []
    learned: list[Adaptation] = []
    if plan.adapt:
        body, adapted = await refusals.adapt(model, plan.body)
        plan = plan._replace(body=body)
    while True:
        body = dict(plan.body)
        body.pop("stream", None)
        if plan.background:
            body["background"] = True
            body["store"] = True  # the Responses API keeps background responses only when stored
        if plan.stream:
            body["stream"] = True
        response, retries = await upstream.send_retrying("POST", "/responses", headers, json=body,
                                                         first_byte_timeout=plan.first_byte_timeout,
                                                         idle_timeout=plan.idle_timeout)
        if response.status_code < 400:
            break
        payload, raw = await read_json(response)
        error = upstream_error(response, payload, raw)
        feature = refused_feature(error, plan.body, plan.model, background=plan.background, stream=plan.stream,
                                  summary_added=plan.summary_added)
        if feature is not None:
            plan = _without(plan, feature)
            refused.append(feature)
            continue
        change = adaptation(error, plan.body) if plan.adapt and len(adapted) < MAX_ADAPTATIONS else None
        if change is None:
            raise error
        plan = plan._replace(body=adapt(plan.body, change))
        adapted.append(change)
        learned.append(change)
    for feature in refused:
        refusals.learn(feature, plan.model)
    for change in learned:
        await refusals.learn_adaptation(plan.model, change)
    call = UpstreamCall(upstream, headers, plan, background, retries, upstream_details(response))
    call.adapted = adapted
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        call._http = response
    else:
        call._answer = await json_answer(response)
        call.response_id = call._answer.get("id") if isinstance(call._answer.get("id"), str) else None
    return call


async def resume_call(route: ModelRoute, headers: Mapping[str, str], plan: CallPlan, response_id: str,
                      background: BackgroundConfig) -> UpstreamCall | None:
    """Follow a background response started elsewhere (another worker or replica) from its first event:
    ``GET /responses/{id}?stream=true`` replays a background run's events, then goes on live; a JSON answer is
    polled. None where the upstream no longer has the response (or will not give it)."""
    try:
        response, retries = await route.upstream.send_retrying(
            "GET", f"/responses/{response_id}", headers, params="stream=true",
            first_byte_timeout=plan.first_byte_timeout, idle_timeout=plan.idle_timeout)
    except UpstreamError as exc:
        log.warning("could not follow background response %s: %s", response_id, exc.message)
        return None
    if response.status_code >= 400:
        response.close()
        return None
    call = UpstreamCall(route.upstream, headers, plan._replace(background=True), background, retries,
                        upstream_details(response))
    call.response_id = response_id
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        call._http = response
        return call
    try:
        call._answer = await json_answer(response)
    except UpstreamError as exc:
        log.warning("could not follow background response %s: %s", response_id, exc.message)
        call.cancels = False  # not this request's to cancel: it was never followed
        await call.aclose()
        return None
    return call


def _without(plan: CallPlan, feature: str) -> CallPlan:
    """``plan`` without a feature the upstream refused (a name :func:`~proxy.translate.refused_feature` gives)."""
    if feature == "background":
        return plan._replace(background=False)
    if feature == "stream":
        return plan._replace(stream=False)
    if feature == "reasoning.summary":
        return plan._replace(body=without_summary(plan.body))
    return plan._replace(body=without_encrypted_reasoning(plan.body))
