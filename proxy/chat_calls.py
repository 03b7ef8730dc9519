"""Running a Responses request's chat call upstream: streamed, or in one piece.

A started :class:`ChatCall` gives the upstream's chat chunks, in lists of those that arrived together, or a
whole ``chat.completion`` (whichever the upstream answered with: some stream when not asked to). Errors before
the answer begins (the upstream's error answer, a connection that cannot be made) are raised as
:class:`~proxy.errors.UpstreamError` by :func:`start_chat_call`, after the retries
:meth:`~proxy.upstream.Upstream.send_retrying` makes before the first byte; a failure while the body is read (a
cut connection, the idle timeout) is raised from :meth:`ChatCall.chunks` or :meth:`ChatCall.completion`.
:func:`answer_events` reads either through the core's :class:`~proxy.translate.ResponseStream`, for every
writer of the answer (a stream, one Response, a background run).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

from .errors import ProxyError
from .models import ModelRoute
from .plan import ChatCallPlan
from .responses_calls import MAX_ANSWER_BYTES, parse_events
from .translate import ResponseStream, SSEDecoder, completion_chunk
from .upstream import UpstreamResponse, read_answer, read_json, upstream_details, upstream_error


class ChatCall:
    """A started upstream chat request; iterate :meth:`chunks` once."""

    def __init__(self, response: UpstreamResponse) -> None:
        self.details = upstream_details(response)  # the upstream's request id, for the client's answer
        self._http: UpstreamResponse | None = response

    @property
    def streamed(self) -> bool:
        return self._http is not None and self._http.headers.get("content-type", "").startswith("text/event-stream")

    async def completion(self) -> dict[str, Any]:
        """A whole answer (not :attr:`streamed`): the chat.completion."""
        assert self._http is not None
        payload, _ = await read_answer(self._http, MAX_ANSWER_BYTES, "a chat completion")
        return payload

    async def chunks(self) -> AsyncGenerator[list[Any], None]:
        """A streamed answer: its chunks, in lists of those that arrived together."""
        assert self._http is not None
        decoder = SSEDecoder(max_event=MAX_ANSWER_BYTES)
        async with aclosing(self._http.chunks()) as body:
            async for piece in body:
                chunks = parse_events(decoder, piece)
                if chunks:
                    yield chunks
        chunks = parse_events(decoder, None)  # a last chunk without its blank line
        if chunks:
            yield chunks

    def aclose(self) -> None:
        """Release the upstream connection. Safe to call twice."""
        http, self._http = self._http, None
        if http is not None:
            http.close()


async def start_chat_call(route: ModelRoute, headers: Mapping[str, str], plan: ChatCallPlan) -> ChatCall:
    """Send the chat request; the upstream's error answer is raised (its status and words, OpenAI-style)."""
    response, _ = await route.upstream.send_retrying("POST", "/chat/completions", headers, json=plan.body,
                                                     first_byte_timeout=plan.first_byte_timeout,
                                                     idle_timeout=plan.idle_timeout)
    if response.status_code >= 400:
        payload, raw = await read_json(response)
        raise upstream_error(response, payload, raw)
    return ChatCall(response)


async def answer_events(call: ChatCall, stream: ResponseStream) -> AsyncGenerator[list[dict[str, Any]], None]:
    """The Responses events of the call's answer (after those of ``stream.start()``), in batches as its chunks
    arrive. The batch that ends the answer comes last: completed or incomplete, or failed (an error chunk, a cut
    connection, the idle timeout, an answer too large)."""
    try:
        if not call.streamed:  # a server that answers in one piece when asked for a stream
            yield stream.feed(completion_chunk(await call.completion()))
        else:
            async with aclosing(call.chunks()) as chunks:
                async for batch in chunks:
                    # Most reads bring one chunk: its events as they come, without a copy.
                    events = (stream.feed(batch[0]) if len(batch) == 1
                              else [event for chunk in batch for event in stream.feed(chunk)])
                    if events:
                        yield events
                    if stream.done:
                        break
        events = stream.finish()
    except ProxyError as exc:
        events = stream.fail(exc.message)
    yield events
