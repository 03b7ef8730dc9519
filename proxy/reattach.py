"""Background runs kept for a client's retry: one paid upstream run, however often the client asks again.

Chat apps and SDKs give up on a long run long before it ends, then send the same request again. A background
run (``n == 1``, no stop sequence) is therefore read by a task of its own into a :class:`Run` that keeps its
events, and clients follow the run (:class:`Follower`, which stands in for the upstream call) from its first
event. When its last client leaves before the end, the run is kept for ``background.reattach_window`` seconds
before it is cancelled upstream; a request from the same caller whose upstream request is the same (``stream``
and ``stream_options`` aside) arriving meanwhile follows it instead of starting another. An answer delivered in
full is never given again (the same request afterwards is a regenerate: a new run), except to the same
``Idempotency-Key``, which gets the same run for the window, also while the first request is still connected.

The registry is this process's (each worker and replica has its own).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import Any

import anyio
import orjson

from . import logs, metrics
from .memory import caller_identity
from .passthrough import header
from .responses_calls import UpstreamCall
from .translate import TERMINAL_EVENTS

log = logging.getLogger("proxy.reattach")

IDEMPOTENCY_HEADER = "idempotency-key"
REATTACHED_HEADER = "x-proxy-reattached"
MAX_KEY_CHARS = 256
Batch = list[dict[str, Any]]


def run_key(headers: Mapping[str, str], upstream: str, body: dict[str, Any]) -> tuple[str, bool]:
    """The registry's key for a request: the caller's credentials and upstream, then its ``Idempotency-Key`` or
    else its upstream request without ``stream`` and ``stream_options``; and whether it is an idempotency key."""
    caller = caller_identity(headers)
    idempotency = header(headers, IDEMPOTENCY_HEADER)[:MAX_KEY_CHARS]
    what = idempotency.encode() if idempotency else orjson.dumps(
        {key: value for key, value in body.items() if key not in ("stream", "stream_options")},
        option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(f"{caller}\n{upstream}\n{'key' if idempotency else 'body'}\n".encode() + what)
    return digest.hexdigest(), bool(idempotency)


class Run:
    """One background upstream run, read by a task of its own; its events are kept for every client."""

    def __init__(self, registry: Runs, key: str, keyed: bool, call: UpstreamCall) -> None:
        self.registry = registry
        self.key = key
        self.keyed = keyed
        self.call = call
        self.batches: list[Batch] = []
        self.error: BaseException | None = None
        self.done = False
        self.delivered = False  # a client read it to its end
        self.followers = 0
        self._changed = asyncio.Event()
        self._expiry: asyncio.TimerHandle | None = None
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async with aclosing(self.call.batches()) as batches:
                async for batch in batches:
                    self.batches.append(batch)
                    self._wake()
        except Exception as exc:  # each follower raises it when it gets there
            self.error = exc
        finally:
            self.done = True
            self._wake()
            if self.followers == 0:
                self._left()
        await self.call.aclose()  # read to its end (or failed): the connection goes back, the job is counted out

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self) -> AsyncGenerator[Batch, None]:
        index = 0
        while True:
            while index < len(self.batches):
                yield self.batches[index]
                index += 1
            if self.done:
                if self.error is not None:
                    raise self.error
                return
            await self._changed.wait()

    async def identified(self) -> None:
        """Until the run's response id is known (its first event), or it ended without one."""
        while self.call.response_id is None and not self.done:
            await self._changed.wait()

    def attach(self) -> Follower:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self.followers += 1
        return Follower(self)

    def detach(self, delivered: bool) -> None:
        self.followers -= 1
        self.delivered = self.delivered or delivered
        if self.followers == 0:
            self._left()

    def _left(self) -> None:
        """Nobody follows the run any more: forgotten now once delivered (unless keyed), else kept for the window."""
        if self.delivered and not self.keyed and self.done:
            if self._expiry is not None:
                self._expiry.cancel()
            self.registry.forget(self)
        elif self._expiry is None:
            self._expiry = asyncio.get_running_loop().call_later(self.registry.window, self.registry.expire, self)

    def reusable(self, keyed: bool) -> bool:
        """Whether a new request may follow this run: with the same idempotency key always; else only a run its
        clients left before its end (a delivered answer is a new run: a regenerate)."""
        return keyed or (self.followers == 0 and not self.delivered and self.error is None)

    async def stop(self, expired: bool = True) -> None:
        """Cancel the run upstream if it is still running (the window passed, or the proxy is shutting down)."""
        if self._expiry is not None:
            self._expiry.cancel()
        cancelled = not self.done
        self._reader.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(self._reader, return_exceptions=True)
            await self.call.aclose()
        if cancelled and expired:
            metrics.count(metrics.RUNS_CANCELLED_AFTER_WINDOW)
            log.info("background response %s cancelled: no client came back within %g s", self.call.response_id,
                     self.registry.window)


class Follower:
    """A client's view of a :class:`Run`, in the place of its :class:`UpstreamCall`."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.details = run.call.details
        self.adapted = run.call.adapted
        self.reattached = False
        self.finished = False  # the run's end was handed to the client
        self._closed = False

    @property
    def response_id(self) -> str | None:
        return self.run.call.response_id

    async def batches(self) -> AsyncGenerator[Batch, None]:
        async with aclosing(self.run.follow()) as batches:
            async for batch in batches:
                if any(event.get("type") in TERMINAL_EVENTS for event in batch):
                    self.finished = True
                yield batch

    async def aclose(self) -> None:
        """Leave the run: delivered if its end was handed over, else the run waits for the client's return."""
        if not self._closed:
            self._closed = True
            self.run.detach(delivered=self.finished)


class Runs:
    """This process's background runs that clients may come back to, by :func:`run_key`."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._runs: dict[str, Run | asyncio.Future[Run]] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    async def follow(self, key: str, keyed: bool,
                     start: Callable[[], Awaitable[UpstreamCall]]) -> Follower | UpstreamCall:
        """A follower of the run under ``key`` where there is one it may follow (then the request log and
        :data:`REATTACHED_HEADER` name it), else of a run started now with ``start``; the call itself where the
        upstream refused background mode (a plain run ends with its connection)."""
        found = self._runs.get(key)
        if isinstance(found, asyncio.Future):
            if keyed:  # the first request with this key is starting the run
                try:
                    return await self._reattached(await asyncio.shield(found))
                except asyncio.CancelledError:
                    if not found.cancelled():
                        raise  # this request itself is being cancelled
            found = None  # (its start failed: this request starts one)
        if isinstance(found, Run):
            if found.reusable(keyed):
                return await self._reattached(found)
            if not keyed:
                self.forget(found)  # a regenerate: the new run takes the key
        starting: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        self._runs[key] = starting
        try:
            call = await start()
        except BaseException:
            if self._runs.get(key) is starting:
                del self._runs[key]
            starting.cancel()  # a request waiting for it starts its own
            raise
        if not call.plan.background:
            if self._runs.get(key) is starting:
                del self._runs[key]
            starting.cancel()
            return call
        run = Run(self, key, keyed, call)
        if self._runs.get(key) is starting:
            self._runs[key] = run
        starting.set_result(run)
        return run.attach()

    async def _reattached(self, run: Run) -> Follower:
        follower = run.attach()  # attached first: the run is not left for expiry while its id is awaited
        try:
            await run.identified()
        except BaseException:  # this request is cancelled meanwhile
            await follower.aclose()
            raise
        follower.reattached = True
        metrics.count(metrics.RUNS_REATTACHED)
        logs.current().reattached = run.call.response_id or "?"
        log.info("request attached to background response %s", run.call.response_id)
        return follower

    def forget(self, run: Run) -> None:
        if self._runs.get(run.key) is run:
            del self._runs[run.key]

    def expire(self, run: Run) -> None:
        """The window passed with nobody back (or there is none): the run is cancelled and forgotten."""
        self.forget(run)
        task = asyncio.ensure_future(run.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def aclose(self) -> None:
        runs = [run for run in self._runs.values() if isinstance(run, Run)]
        self._runs.clear()
        for run in runs:
            await run.stop(expired=False)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
