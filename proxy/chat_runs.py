"""Background responses served through chat (``background: true``): this process's runs, their kept events.

A background request's chat call is read by a task of its own (:class:`ChatRun`), not by the client's request:
the client may leave, poll ``GET /v1/responses/{id}`` for the Response as it stands, follow the event stream
from any sequence number (``?stream=true&starting_after=N``: the kept events, then the new ones as they come),
and cancel it (``POST /v1/responses/{id}/cancel``: the upstream connection is closed). The final Response is
stored as a foreground one is (by the ``conclude`` callback), so ``previous_response_id`` continues it.

Bounded: at most ``runs`` runs are kept, running ones and ended ones for ``ttl`` seconds after their end (when
full, the oldest ended run is forgotten first; with every one still running a new one is refused with a 429).
Of each run, the most recent events up to ``event_bytes`` are kept: a stream asked from before them is refused,
and a client that falls that far behind is cut off (it may ask again from where it was, or poll). The registry
is this process's: each worker and replica has its own, and a restart ends the runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, Literal

from . import metrics
from .chat_calls import ChatCall, answer_events
from .errors import ClientError, ProxyError
from .streaming import AnswerCut
from .translate import ResponseStream, event_frames

log = logging.getLogger("proxy.chat_runs")

SHUTDOWN_MESSAGE = "The proxy shut down before the response was complete."
Conclude = Callable[[dict[str, Any]], Awaitable[None]]  # given the final Response: account for it, store it


class ChatRun:
    """One background response: its chat call, read into a :class:`ResponseStream` by a task of its own, and the
    most recent of its events, encoded, for those who follow it."""

    def __init__(self, runs: ChatRuns, stream: ResponseStream, call: ChatCall, input_items: list[dict[str, Any]],
                 owner: str, conclude: Conclude) -> None:
        self.id = stream.id
        self.input_items = input_items  # the request's input, as items with ids (GET .../input_items)
        self.owner = owner  # whose it is (memory.caller_key): found by that caller alone
        self._runs = runs
        self._stream = stream
        self._call = call
        self._conclude = conclude
        self._frames: list[bytes] = []  # the events kept, encoded
        self._first = 0  # the sequence number of the first one kept
        self._size = 0
        self._snapshot: dict[str, Any] = {}  # the Response as the events last showed it
        self._stopping: Literal["cancel", "shutdown"] | None = None
        self._changed = asyncio.Event()
        self._expiry: asyncio.TimerHandle | None = None
        self.ended = False
        self._ending = False
        metrics.count(metrics.BACKGROUND_JOBS)
        self._keep(stream.start())
        self._task = asyncio.ensure_future(self._run())

    @property
    def response(self) -> dict[str, Any]:
        """The Response as it stands: in progress, or as it ended (completed, incomplete, failed, cancelled)."""
        return self._stream.response or self._snapshot

    async def _run(self) -> None:
        try:
            async with aclosing(answer_events(self._call, self._stream)) as batches:
                async for events in batches:
                    if self._stream.done:
                        await self._end(events)
                    else:
                        self._keep(events)
        except asyncio.CancelledError:  # cancelled by the client, or the proxy is shutting down
            await self._end(self._stream.cancel() if self._stopping == "cancel" else self._stream.fail(SHUTDOWN_MESSAGE))
        except Exception:  # a bug of ours: the run ends as failed rather than never
            log.exception("background response %s failed", self.id)
            await self._end(self._stream.fail("The proxy failed while reading the upstream's answer."))

    def _keep(self, events: list[dict[str, Any]]) -> None:
        frames = event_frames(events)
        self._frames += frames
        self._size += sum(map(len, frames))
        for event in events:
            if "response" in event:
                self._snapshot = event["response"]
        limit, dropped = self._runs.event_bytes, 0
        while self._size > limit and dropped < len(self._frames) - 1:
            self._size -= len(self._frames[dropped])
            dropped += 1
        if dropped:
            del self._frames[:dropped]
            self._first += dropped
        self._changed.set()
        self._changed = asyncio.Event()

    async def _end(self, events: list[dict[str, Any]]) -> None:
        """The run is over: the upstream let go, the Response stored before its last events are shown (a client
        that saw them may continue it at once), and the run kept for ``ttl`` seconds more."""
        if self._ending:
            return
        self._ending = True
        self._call.aclose()
        metrics.count(metrics.BACKGROUND_JOBS, amount=-1)
        response = self.response
        log.info("background response %s ended: %s", self.id, response.get("status"))
        try:
            await asyncio.shield(self._conclude(response))  # a cancel meanwhile does not lose it
        finally:
            self.ended = True  # before the last events are kept: a follower that sees them ends with them
            self._keep(events)
            self._expiry = asyncio.get_running_loop().call_later(self._runs.ttl, self._runs.forget, self)

    def check_start(self, after: int) -> None:
        """A 400 for a stream asked from before the events still kept."""
        if after + 1 < self._first:
            raise ClientError(400, f"The events of response {self.id} before sequence number {self._first} are no "
                              "longer kept; ask for a later starting_after, or retrieve the response.",
                              "starting_after", "invalid_value")

    async def follow(self, after: int) -> AsyncGenerator[bytes, None]:
        """The encoded events after sequence number ``after``: those kept, then each as it comes, to the end."""
        at = after + 1
        while True:
            if at < self._first:  # the client fell behind the events kept
                log.warning("a client following background response %s fell more than %d bytes behind; cut off",
                            self.id, self._runs.event_bytes)
                raise AnswerCut()
            end = self._first + len(self._frames)
            if at < end:
                frames = b"".join(self._frames[at - self._first:])
                at = end
                yield frames
            elif self.ended:
                return
            else:
                await self._changed.wait()

    async def stop(self, why: Literal["cancel", "shutdown"]) -> None:
        """End the run if it is still running (``cancelled``, or failed by the shutdown), the upstream let go."""
        if not self._task.done():
            self._stopping = self._stopping or why
            self._task.cancel()
        await asyncio.wait([self._task])
        if not self.ended:  # cancelled before its task began
            await self._end(self._stream.cancel() if why == "cancel" else self._stream.fail(SHUTDOWN_MESSAGE))

    def forgotten(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()


class ChatRuns:
    """This process's background responses served through chat, by response id."""

    def __init__(self, runs: int, ttl: float, event_bytes: int) -> None:
        self.limit = runs
        self.ttl = ttl
        self.event_bytes = event_bytes
        self._runs: dict[str, ChatRun] = {}

    def get(self, response_id: str, owner: str) -> ChatRun | None:
        """The run with this id, if it is ``owner``'s (another caller's is as unknown to it as on the API)."""
        run = self._runs.get(response_id)
        return run if run is not None and run.owner == owner else None

    def make_room(self) -> None:
        """Room for one more run: the oldest ended ones are forgotten; with every run still running, a 429."""
        for run in list(self._runs.values()):
            if len(self._runs) < self.limit:
                return
            if run.ended:
                self.forget(run)
        if len(self._runs) >= self.limit:
            raise ProxyError(429, f"This proxy is running {self.limit} background responses, as many as it keeps; "
                             "try again when one has ended.", "requests", code="rate_limit_exceeded")

    def start(self, stream: ResponseStream, call: ChatCall, input_items: list[dict[str, Any]], owner: str,
              conclude: Conclude) -> ChatRun:
        """Run ``call`` in the background (the upstream is let go if there is no room after all)."""
        try:
            self.make_room()
        except ProxyError:
            call.aclose()
            raise
        run = self._runs[stream.id] = ChatRun(self, stream, call, input_items, owner, conclude)
        return run

    def forget(self, run: ChatRun) -> None:
        if self._runs.get(run.id) is run:
            del self._runs[run.id]
        run.forgotten()

    async def aclose(self) -> None:
        """On shutdown: every run still running fails (the upstream let go), and the runs are forgotten."""
        runs = list(self._runs.values())
        for run in runs:
            await run.stop("shutdown")
            self.forget(run)
