"""Background runs kept for a client's retry: one paid upstream run, however often the client asks again.

Chat apps and SDKs give up on a long run long before it ends, then send the same request again. A background
run (``n == 1``, no stop sequence) is therefore read by a task of its own into a :class:`Run` that keeps its
events, and clients follow the run (:class:`Follower`, which stands in for the upstream call) from its first
event. When its last client leaves before the end, the run is kept for ``background.reattach_window`` seconds
before it is cancelled upstream; a request from the same caller whose upstream request is the same (``stream``
and ``stream_options`` aside) arriving meanwhile follows it instead of starting another. An answer delivered in
full is never given again (the same request afterwards is a regenerate: a new run), except to the same
``Idempotency-Key``, which gets the same run for the window, also while the first request is still connected.
A retry sent the moment its client closed the first connection may come before the proxy saw it close: it
waits a moment (:data:`ATTACH_GRACE`) for that client to be gone. At most ``background.max_kept_runs`` runs are
kept per process: the oldest nobody follows makes room.

With Redis (``reasoning.redis_url``) every worker and replica knows every run (:class:`SharedRuns`): a retry
that lands on another process follows the run from the upstream itself (``GET /responses/{id}?stream=true``
replays a background run's events from the first, then goes on live). Redis holds which run a request maps to,
which processes follow it and whether it was delivered, never its events; the process starting the run of an
``Idempotency-Key`` claims the key until the run's id is known. Without Redis, or while it is down, each process
has its own registry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing, suppress
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import orjson

from . import logs, metrics
from .memory import caller_identity, redis_client
from .passthrough import header
from .responses_calls import UpstreamCall
from .translate import TERMINAL_EVENTS, Adaptation

log = logging.getLogger("proxy.reattach")

IDEMPOTENCY_HEADER = "idempotency-key"
REATTACHED_HEADER = "x-proxy-reattached"
MAX_KEY_CHARS = 256
# How long a retry waits for the clients following the run it repeats to leave before it starts a run of its
# own. A client that times out closes its socket and retries at once; the proxy sees the close a moment later
# (milliseconds, more under load). Two clients really asking the same thing at the same time wait this long.
ATTACH_GRACE = 2.0
GRACE_POLL = 0.05  # seconds between looks at the run meanwhile
# How long a process that starts the run of an Idempotency-Key holds the key before the run's id is known (its
# first event, normally within a second), so that the same key at another process waits for that run.
START_CLAIM_SECONDS = 60.0
# A process's hold on a run one of its clients follows, renewed every third of it: a process that dies lets go
# of its runs after this long.
LEASE_SECONDS = 10.0
Batch = list[dict[str, Any]]
Stop = Literal["expired", "evicted", "unkept", "shutdown"]


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


@dataclass
class Shared:
    """A run as every process sees it in Redis."""

    response_id: str
    delivered: bool  # a client read it to its end
    followed: int  # processes with a client following it now
    adapted: list[Adaptation]  # what was changed for the model to take the request (reported to every client)


class SharedRuns:
    """The runs of every worker and replica, in Redis: the response a request's key maps to (for the window), and
    per response the processes following it (leases), when it was last left and whether it was delivered.

    Whoever lets go of a run cancels it only where :meth:`may_cancel` says so: once, by the process whose client
    left it last. A store that is down costs the sharing (each process decides alone), never a request.
    """

    PREFIX = "responses-proxy:run"

    def __init__(self, client: Any, window: float) -> None:
        self.client = client
        self.window = window
        self.ttl = int(window + LEASE_SECONDS) + 1
        self._down = False  # the last call failed: later failures are not warned of again until it answers

    @classmethod
    def from_url(cls, url: str, window: float) -> SharedRuns:
        return cls(redis_client(url, "reasoning.redis_url"), window)

    def _request(self, key: str) -> str:
        return f"{self.PREFIX}:{key}"

    def _state(self, response_id: str) -> str:
        return f"{self.PREFIX}-state:{response_id}"

    def _following(self, response_id: str) -> str:
        return f"{self.PREFIX}-following:{response_id}"

    def _cancelled(self, response_id: str) -> str:
        return f"{self.PREFIX}-cancelled:{response_id}"

    async def lookup(self, key: str) -> Shared | None:
        """The run a request's key maps to, unless it was cancelled (one being started: its id is empty); None also
        where Redis is down."""
        try:
            found = await self.client.get(self._request(key))
            if not found:
                return None if found is None else Shared("", False, 0, [])
            response_id = found.decode()
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hmget(self._state(response_id), ["delivered", "adapted"])
                pipe.zcount(self._following(response_id), time.time(), "+inf")
                pipe.exists(self._cancelled(response_id))
                (delivered, adapted), followed, cancelled = await pipe.execute()
            changes = [Adaptation(param, was, now, tuple(supported))
                       for param, was, now, supported in orjson.loads(adapted or b"[]")]
        except Exception as exc:  # a store that is down costs the sharing, never the answer
            self._failed("look up background runs", exc)
            return None
        self._answered()
        if cancelled:
            await self.release(key, found)  # the key is free for a new run
            return None
        return Shared(response_id, delivered == b"1", followed, changes)

    async def claim(self, key: str) -> bool:
        """Whether this process is to start the run of an Idempotency-Key no process has started (then the key
        maps to an empty id until the run's is published); yes also where Redis is down."""
        try:
            claimed = await self.client.set(self._request(key), "", nx=True, ex=int(START_CLAIM_SECONDS))
        except Exception as exc:
            self._failed("claim an Idempotency-Key", exc)
            return True
        self._answered()
        return bool(claimed)

    async def release(self, key: str, mapped: bytes = b"") -> None:
        """The key maps to nothing any more, where it still maps to ``mapped`` (a claim: a run that was not
        started, or will not be shared)."""
        try:
            if await self.client.get(self._request(key)) == mapped:
                await self.client.delete(self._request(key))
        except Exception as exc:
            self._failed("release an Idempotency-Key", exc)

    async def publish(self, key: str, response_id: str, adapted: list[Adaptation]) -> None:
        """A request's key maps to this run now (a new run for the same request replaces an older one)."""
        def write(pipe: Any) -> None:
            pipe.set(self._request(key), response_id, ex=self.ttl)
            pipe.hset(self._state(response_id), "adapted", orjson.dumps([list(change) for change in adapted]))
            pipe.expire(self._state(response_id), self.ttl)
        await self._write(f"share background response {response_id}", write)

    async def follow(self, key: str, response_id: str, member: str) -> None:
        """This process has a client following the run: a lease, renewed while it lasts."""
        def write(pipe: Any) -> None:
            pipe.zadd(self._following(response_id), {member: time.time() + LEASE_SECONDS})
            self._keep(pipe, key, response_id)
        await self._write(f"follow background response {response_id}", write)

    async def leave(self, key: str, response_id: str, member: str) -> None:
        """This process's last client left the run (the window starts now)."""
        def write(pipe: Any) -> None:
            pipe.zrem(self._following(response_id), member)
            pipe.hset(self._state(response_id), "left", repr(time.time()))
            self._keep(pipe, key, response_id)
        await self._write(f"leave background response {response_id}", write)

    async def deliver(self, key: str, response_id: str) -> None:
        """A client is being handed the run's end: never again to another request without the same key."""
        def write(pipe: Any) -> None:
            pipe.hset(self._state(response_id), "delivered", "1")
            self._keep(pipe, key, response_id)
        await self._write(f"mark background response {response_id} delivered", write)

    def _keep(self, pipe: Any, key: str, response_id: str) -> None:
        """Everything about a run lasts the window after the last change (and the key's mapping with it)."""
        for name in (self._request(key), self._state(response_id), self._following(response_id)):
            pipe.expire(name, self.ttl)

    async def _write(self, what: str, write: Callable[[Any], None]) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                write(pipe)
                await pipe.execute()
        except Exception as exc:
            self._failed(what, exc)
            return
        self._answered()

    def _failed(self, what: str, exc: Exception) -> None:
        """Warned of once while Redis is down (each followed run renews its lease every few seconds)."""
        log.log(logging.DEBUG if self._down else logging.WARNING,
                "could not %s in Redis (each process keeps its own background runs meanwhile): %s", what, exc)
        self._down = True

    def _answered(self) -> None:
        if self._down:
            self._down = False
            log.info("Redis answers again: background runs are shared again")

    async def may_cancel(self, response_id: str, window: float) -> bool:
        """Whether the process letting go of a run cancels it: no client follows it anywhere, none left it less
        than ``window`` seconds ago (the process that client used cancels it after its own window), and no other
        process cancels it. Where Redis is down, each process decides alone: yes."""
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hget(self._state(response_id), "left")
                pipe.zcount(self._following(response_id), time.time(), "+inf")
                left, followed = await pipe.execute()
            # Timers fire a little late or early: a leave this close to the window's end is this process's own.
            if followed or (left is not None and time.time() - float(left) < window - min(1.0, window / 10)):
                return False
            claimed = await self.client.set(self._cancelled(response_id), "1", nx=True, ex=self.ttl)
        except Exception as exc:
            self._failed(f"check whether background response {response_id} is followed elsewhere", exc)
            return True
        self._answered()
        return bool(claimed)

    async def aclose(self) -> None:
        await self.client.aclose()


class Run:
    """One background upstream run, read by a task of its own; its events are kept for every client.

    The process that started it owns it (``owner``); a retry that lands on another process follows it from the
    upstream in a run of that process's own. A run that is not ``kept`` (the registry is full) is found by no
    other request and stops when its last client leaves.
    """

    def __init__(self, registry: Runs, key: str, keyed: bool, call: UpstreamCall, owner: bool = True,
                 kept: bool = True) -> None:
        self.registry = registry
        self.key = key
        self.keyed = keyed
        self.call = call
        self.owner = owner
        self.kept = kept
        self.batches: list[Batch] = []
        self.error: BaseException | None = None
        self.done = False
        self.delivered = False  # a client read it to its end
        self.followers = 0
        self.stopped = False
        self.member = secrets.token_hex(8)  # this process's lease on it, in Redis
        self._changed = asyncio.Event()
        self._attached = asyncio.Event()
        self._writing = asyncio.Lock()  # the run's Redis writes, one after another
        self._expiry: asyncio.TimerHandle | None = None
        self._reader = asyncio.ensure_future(self._read())
        self._sharing = asyncio.ensure_future(self._share()) if registry.shared is not None else None

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

    async def _share(self) -> None:
        """Make the run known to every process once its id is known, and hold a lease while a client here
        follows it."""
        shared = self.registry.shared
        assert shared is not None
        await self.identified()
        response_id = self.call.response_id
        if response_id is None:
            return
        if self.owner and self.kept:
            await shared.publish(self.key, response_id, self.call.adapted)
        while True:
            self._attached.clear()
            async with self._writing:
                if self.followers > 0:
                    await shared.follow(self.key, response_id, self.member)
            with suppress(TimeoutError):
                async with asyncio.timeout(LEASE_SECONDS / 3):
                    await self._attached.wait()

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
        if self.followers == 1:
            self._attached.set()
        return Follower(self)

    def detach(self, delivered: bool) -> None:
        self.followers -= 1
        self.delivered = self.delivered or delivered
        if self.followers == 0:
            if self._sharing is not None and self.call.response_id is not None:
                self.registry.later(self._leave(self.call.response_id))
            self._left()

    async def _leave(self, response_id: str) -> None:
        assert self.registry.shared is not None
        async with self._writing:
            if self.followers == 0:
                await self.registry.shared.leave(self.key, response_id, self.member)

    async def delivering(self) -> None:
        """A client is handed the run's end: every process learns it was delivered, before the client can ask
        again."""
        if self.registry.shared is not None and self.call.response_id is not None and not self.delivered:
            async with self._writing:
                await self.registry.shared.deliver(self.key, self.call.response_id)

    def _left(self) -> None:
        """Nobody follows the run any more: forgotten now once delivered (unless keyed), else kept for the window;
        a run not kept stops now."""
        if self.stopped:
            return
        if not self.kept:
            self.registry.expire(self, "unkept")
        elif self.delivered and not self.keyed and self.done:
            if self._expiry is not None:
                self._expiry.cancel()
            if self._sharing is not None:
                self._sharing.cancel()
            self.registry.forget(self)
        elif self._expiry is None:
            self._expiry = asyncio.get_running_loop().call_later(self.registry.window, self.registry.expire, self)

    def reusable(self, keyed: bool) -> bool:
        """Whether a new request may follow this run: with the same idempotency key always; else only a run its
        clients left before its end (a delivered answer is a new run: a regenerate)."""
        return keyed or (self.followers == 0 and not self.delivered and self.error is None)

    async def stop(self, why: Stop = "expired") -> None:
        """Let go of the run (its window passed, it makes room for another, it was not kept, the proxy shuts
        down), cancelling it upstream if it is still running and no client anywhere else may still want it."""
        self.stopped = True
        if self._expiry is not None:
            self._expiry.cancel()
        running = not self.done
        self._reader.cancel()
        if self._sharing is not None:
            self._sharing.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(self._reader, *filter(None, [self._sharing]), return_exceptions=True)
            shared, response_id = self.registry.shared, self.call.response_id
            if running and shared is not None and response_id is not None:
                async with self._writing:  # after this process's own leave
                    running = await shared.may_cancel(response_id, self.registry.window if why == "expired" else 0)
                if not running:
                    log.info("background response %s not cancelled here: a client of another process follows it "
                             "or left it later (that process cancels it)", response_id)
            self.call.cancels = running
            await self.call.aclose()
        if running and why == "expired":
            metrics.count(metrics.RUNS_CANCELLED_AFTER_WINDOW)
            log.info("background response %s cancelled: no client came back within %g s", response_id,
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
                    await self.run.delivering()
                yield batch

    async def aclose(self) -> None:
        """Leave the run: delivered if its end was handed over, else the run waits for the client's return."""
        if not self._closed:
            self._closed = True
            self.run.detach(delivered=self.finished)


class Runs:
    """The background runs that clients may come back to, by :func:`run_key`: this process's, and with
    ``shared`` every process's."""

    def __init__(self, window: float, max_kept: int, shared: SharedRuns | None = None) -> None:
        self.window = window
        self.max_kept = max_kept
        self.shared = shared
        self._runs: dict[str, Run | asyncio.Future[Run]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def follow(self, key: str, keyed: bool, start: Callable[[], Awaitable[UpstreamCall]],
                     resume: Callable[[str], Awaitable[UpstreamCall | None]]) -> Follower | UpstreamCall:
        """A follower of the run under ``key`` where there is one it may follow (then the request log and
        :data:`REATTACHED_HEADER` name it), else of a run started now with ``start``; the call itself where the
        upstream refused background mode (a plain run ends with its connection). A run another process started
        is followed from the upstream with ``resume`` (its response id; None: the upstream no longer has it)."""
        found = self._runs.get(key)
        if isinstance(found, asyncio.Future):
            if keyed:  # the first request with this key is starting the run
                try:
                    return await self._reattached(await asyncio.shield(found))
                except asyncio.CancelledError:
                    if not found.cancelled():
                        raise  # this request itself is being cancelled
            found = None  # (its start failed: this request starts one)
        local = found if isinstance(found, Run) else None
        shared = await self.shared.lookup(key) if self.shared is not None else None
        if keyed and local is None and self.shared is not None:
            shared = await self._started_elsewhere(key, shared)
        if not keyed:
            local, shared = await self._after_grace(key, local, shared)
        if local is not None and self._runs.get(key) is not local:
            local = None  # let go of meanwhile (delivered, or its window passed)
        if local is not None and shared is not None and local.call.response_id not in (None, shared.response_id):
            self.forget(local)  # a newer run took the key in another process (a regenerate there)
            local = None
        if local is None and shared is None:
            return await self._start(key, keyed, start)
        if not keyed and (self._followed(local, shared) or (shared is not None and shared.delivered) or
                          (local is not None and not local.reusable(keyed))):
            if local is not None:
                self.forget(local)  # a regenerate, or another client asking the same: the new run takes the key
            return await self._start(key, keyed, start)
        if local is not None:
            return await self._reattached(local)
        assert shared is not None
        call = await resume(shared.response_id)
        if call is None:
            return await self._start(key, keyed, start)
        call.adapted = shared.adapted
        kept = self._room()
        run = Run(self, key, keyed, call, owner=False, kept=kept)
        if kept:
            self._runs[key] = run
        return await self._reattached(run)

    async def _started_elsewhere(self, key: str, shared: Shared | None) -> Shared | None:
        """For an Idempotency-Key: the run of the process that started it (waited for while it is starting), or
        None where this process is to start it (it claimed the key)."""
        assert self.shared is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_CLAIM_SECONDS
        while loop.time() < deadline:
            if shared is None and await self.shared.claim(key):
                return None
            if shared is not None and shared.response_id:
                return shared
            await asyncio.sleep(GRACE_POLL)
            shared = await self.shared.lookup(key)
        return None

    async def _after_grace(self, key: str, local: Run | None,
                           shared: Shared | None) -> tuple[Run | None, Shared | None]:
        """The run as it stands once its clients left, or after :data:`ATTACH_GRACE` if they are still there."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ATTACH_GRACE
        if self._followed(local, shared):
            log.debug("a request waits up to %g s for the clients of the run it repeats to leave", ATTACH_GRACE)
        while self._followed(local, shared) and loop.time() < deadline:
            await asyncio.sleep(GRACE_POLL)
            if self.shared is not None:
                shared = await self.shared.lookup(key)
        return local, shared

    @staticmethod
    def _followed(local: Run | None, shared: Shared | None) -> bool:
        return (local is not None and local.followers > 0) or (shared is not None and shared.followed > 0)

    async def _start(self, key: str, keyed: bool,
                     start: Callable[[], Awaitable[UpstreamCall]]) -> Follower | UpstreamCall:
        starting: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        self._runs[key] = starting
        try:
            call = await start()
        except BaseException:
            if self._runs.get(key) is starting:
                del self._runs[key]
            starting.cancel()  # a request waiting for it starts its own
            self._unclaim(key, keyed)
            raise
        if not call.plan.background:
            if self._runs.get(key) is starting:
                del self._runs[key]
            starting.cancel()
            self._unclaim(key, keyed)
            return call
        kept = self._room()
        if not kept:
            self._unclaim(key, keyed)
        run = Run(self, key, keyed, call, kept=kept)
        if self._runs.get(key) is starting:
            if kept:
                self._runs[key] = run
            else:
                del self._runs[key]
        starting.set_result(run)
        return run.attach()

    def _unclaim(self, key: str, keyed: bool) -> None:
        """The run of an Idempotency-Key this process claimed will not be shared: other processes start their own."""
        if keyed and self.shared is not None:
            self.later(self.shared.release(key))

    def _room(self) -> bool:
        """Whether one more run may be kept: at most ``max_kept``, the oldest run nobody follows makes room."""
        kept = [run for run in self._runs.values() if isinstance(run, Run)]
        if len(kept) < self.max_kept:
            return True
        oldest = next((run for run in kept if run.followers == 0), None)
        if oldest is None:
            log.warning("all %d kept background runs have a client; this run is not kept for a retry", len(kept))
            return False
        metrics.count(metrics.RUNS_EVICTED)
        log.info("background response %s let go early to make room (background.max_kept_runs = %d)",
                 oldest.call.response_id, self.max_kept)
        self.expire(oldest, "evicted")
        return True

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

    def expire(self, run: Run, why: Stop = "expired") -> None:
        """The run is let go of (see :meth:`Run.stop`) and forgotten."""
        self.forget(run)
        self.later(run.stop(why))

    def later(self, work: Awaitable[None]) -> None:
        """Run ``work`` in a task of its own, awaited at shutdown."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        runs = [run for run in self._runs.values() if isinstance(run, Run)]
        self._runs.clear()
        for run in runs:
            await run.stop("shutdown")
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.shared is not None:
            await self.shared.aclose()


def open_runs(window: float, max_kept: int, redis_url: str | None) -> Runs | None:
    """The registry of runs kept for a retry (none with a window of 0), shared through Redis where configured."""
    if window <= 0:
        return None
    return Runs(window, max_kept, SharedRuns.from_url(redis_url, window) if redis_url else None)
