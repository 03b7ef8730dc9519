"""Responses this proxy made through a chat upstream and was asked to store (``store`` defaults to true).

Kept so that ``previous_response_id`` continues a conversation, and ``GET /v1/responses/{id}``, ``GET
/v1/responses/{id}/input_items`` and ``DELETE`` work on them, as the API promises. Where (``to_chat.store``): an
SQLite file (the default: chains survive a restart, and a redeploy that keeps the file on a volume), Redis (shared
by replicas), or this process's memory. Every store keeps a response for ``stored_ttl`` seconds, and at most
``stored_responses`` of them and ``stored_max_bytes`` of their JSON: when full, the oldest goes first. A store
that fails (a full disk, Redis down) never fails the answer: it is logged, and the response is just not kept (a
later ``previous_response_id`` to it is the API's 404). A response made with ``store: false`` is not kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import orjson

from .config import ToChatConfig
from .errors import ClientError, InvalidRequest
from .memory import redis_client

log = logging.getLogger("proxy.stored_responses")

T = TypeVar("T")


class StoredResponse(NamedTuple):
    response: dict[str, Any]  # the Response object, as the client got it
    input_items: list[dict[str, Any]]  # the request's input, as items with ids
    history: list[dict[str, Any]]  # the conversation's items before that input (previous responses)
    owner: str = ""  # whose it is (memory.caller_key): found by that caller alone

    def conversation(self) -> list[dict[str, Any]]:
        """The items a response continuing this one starts from: the history, this input, this output."""
        return [*self.history, *self.input_items, *self.response.get("output", ())]


class Bounds(NamedTuple):
    entries: int  # responses kept at most (0: none)
    max_bytes: int  # their JSON, in bytes, at most
    ttl: float  # seconds each is kept


class ResponseStore:
    """Where stored responses live. A backend writes, reads and deletes JSON under an id, within the bounds;
    this class makes the JSON, checks expiry, and turns a backend's failure into a warning."""

    where = "memory"  # for the log

    def __init__(self, bounds: Bounds, now: Callable[[], float] = time.time) -> None:
        self.bounds = bounds
        self.now = now

    async def put(self, response: dict[str, Any], input_items: list[dict[str, Any]],
                  history: list[dict[str, Any]], owner: str = "") -> None:
        if self.bounds.entries == 0:
            return
        data = orjson.dumps({"response": response, "input_items": with_ids(input_items), "history": history,
                             "owner": owner})
        if len(data) > self.bounds.max_bytes:
            log.warning("response %s not stored: its %d bytes exceed to_chat.stored_max_bytes", response["id"],
                        len(data))
            return
        try:
            await self._put(response["id"], data, self.now() + self.bounds.ttl)
        except Exception as exc:  # the answer is served all the same; only the response is not kept
            log.warning("could not store response %s in %s: %s", response["id"], self.where, exc)

    async def get(self, response_id: str, owner: str = "") -> StoredResponse | None:
        """The response with this id, if it is ``owner``'s (another caller's is as unknown to it as on the API)."""
        try:
            found = await self._get(response_id)
            if found is None or found[1] <= self.now():
                return None
            stored = orjson.loads(found[0])
            if stored.get("owner", "") != owner:
                return None
            return StoredResponse(stored["response"], stored["input_items"], stored["history"], owner)
        except Exception as exc:  # down, or a record that is not ours: as if it were not there
            log.warning("could not read stored response %.100s from %s: %s", response_id, self.where, exc)
            return None

    async def delete(self, response_id: str) -> bool:
        try:
            return await self._delete(response_id)
        except Exception as exc:
            log.warning("could not delete stored response %.100s from %s: %s", response_id, self.where, exc)
            return False

    async def open(self) -> None:
        """At startup: say where responses are stored, and warn now if they cannot be."""
        try:
            await self._open()
        except Exception as exc:
            log.warning("stored responses cannot be kept in %s (%s): answers are served all the same, but "
                        "responses are not stored while this lasts", self.where, exc)
        else:
            log.info("stored responses are kept in %s", self.where)

    def _full(self, entries: int, total: int, size: int) -> bool:
        """Whether ``entries`` responses of ``total`` bytes leave no room for one more of ``size`` bytes."""
        return entries + 1 > self.bounds.entries or total + size > self.bounds.max_bytes

    async def _open(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def _put(self, response_id: str, data: bytes, expires: float) -> None:
        raise NotImplementedError

    async def _get(self, response_id: str) -> tuple[bytes, float] | None:
        """The JSON and its expiry time, or None."""
        raise NotImplementedError

    async def _delete(self, response_id: str) -> bool:
        raise NotImplementedError


class MemoryResponses(ResponseStore):
    """In this process: nothing survives a restart, and replicas do not share them."""

    def __init__(self, bounds: Bounds, now: Callable[[], float] = time.time) -> None:
        super().__init__(bounds, now)
        self._kept: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    async def _put(self, response_id: str, data: bytes, expires: float) -> None:
        now = self.now()
        self._drop(response_id)
        while self._kept and (next(iter(self._kept.values()))[0] <= now
                              or self._full(len(self._kept), self._bytes, len(data))):
            self._drop(next(iter(self._kept)))
        self._kept[response_id] = (expires, data)
        self._bytes += len(data)

    def _drop(self, response_id: str) -> None:
        gone = self._kept.pop(response_id, None)
        if gone is not None:
            self._bytes -= len(gone[1])

    async def _get(self, response_id: str) -> tuple[bytes, float] | None:
        found = self._kept.get(response_id)
        return None if found is None else (found[1], found[0])

    async def _delete(self, response_id: str) -> bool:
        found = self._kept.get(response_id)
        if found is None or found[0] <= self.now():
            return False
        self._drop(response_id)
        return True


_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order they came in: the oldest goes first
    id TEXT NOT NULL UNIQUE,
    expires REAL NOT NULL,                  -- Unix time
    size INTEGER NOT NULL,
    data BLOB NOT NULL                      -- the JSON
);
CREATE INDEX IF NOT EXISTS responses_expiry ON responses (expires);
-- How many and how large, kept by the triggers: the bounds are checked without a scan.
CREATE TABLE IF NOT EXISTS totals (one INTEGER PRIMARY KEY CHECK (one = 1), entries INTEGER NOT NULL,
                                   bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO totals VALUES (1, 0, 0);
CREATE TRIGGER IF NOT EXISTS response_added AFTER INSERT ON responses
BEGIN UPDATE totals SET entries = entries + 1, bytes = bytes + new.size; END;
CREATE TRIGGER IF NOT EXISTS response_removed AFTER DELETE ON responses
BEGIN UPDATE totals SET entries = entries - 1, bytes = bytes - old.size; END;
PRAGMA user_version = 1;
"""


class SqliteResponses(ResponseStore):
    """In an SQLite file (write-ahead log), used from one thread of its own so the event loop never waits on
    the disk. Several worker processes may share the file."""

    def __init__(self, path: str, bounds: Bounds, now: Callable[[], float] = time.time) -> None:
        super().__init__(bounds, now)
        self.path = path
        self.where = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="stored-responses")
        self._db: sqlite3.Connection | None = None

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, *args)

    def _connection(self) -> sqlite3.Connection:
        """The connection, opened on first use (and again after it could not be: the disk may be back)."""
        if self._db is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
                db.executescript(_SCHEMA)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    def _purge(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM responses WHERE expires <= ?", (self.now(),))

    async def _open(self) -> None:
        await self._run(self._write, self._purge)

    async def _put(self, response_id: str, data: bytes, expires: float) -> None:
        def put(db: sqlite3.Connection) -> None:
            self._purge(db)
            db.execute("DELETE FROM responses WHERE id = ?", (response_id,))
            entries, total = db.execute("SELECT entries, bytes FROM totals").fetchone()
            last = None
            if self._full(entries, total, len(data)):
                oldest = db.execute("SELECT seq, size FROM responses ORDER BY seq")
                for last, size in oldest:
                    entries, total = entries - 1, total - size
                    if not self._full(entries, total, len(data)):
                        break
                oldest.close()
            if last is not None:
                db.execute("DELETE FROM responses WHERE seq <= ?", (last,))
            db.execute("INSERT INTO responses (id, expires, size, data) VALUES (?, ?, ?, ?)",
                       (response_id, expires, len(data), data))

        await self._run(self._write, put)

    async def _get(self, response_id: str) -> tuple[bytes, float] | None:
        def get() -> tuple[bytes, float] | None:
            return self._connection().execute("SELECT data, expires FROM responses WHERE id = ?",
                                              (response_id,)).fetchone()

        return await self._run(get)

    async def _delete(self, response_id: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM responses WHERE id = ? AND expires > ?",
                              (response_id, self.now())).rowcount > 0

        return await self._run(self._write, delete)

    async def aclose(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(close)
        self._thread.shutdown()


class RedisResponses(ResponseStore):
    """In Redis, shared by every replica: each response under a key that expires with it, their ids in a sorted
    set by expiry time (the oldest first) with their sizes beside, changed in transactions so that replicas
    writing at once keep the totals right."""

    PREFIX = "responses-proxy:response:"
    INDEX = "responses-proxy:responses"  # sorted set: id -> expiry time
    SIZES = "responses-proxy:response-sizes"  # hash: id -> bytes
    TOTAL = "responses-proxy:responses-bytes"  # their sum
    BATCH = 100

    def __init__(self, client: Any, bounds: Bounds, where: str = "Redis",
                 now: Callable[[], float] = time.time) -> None:
        super().__init__(bounds, now)
        self.client = client
        self.where = where

    @classmethod
    def from_url(cls, url: str, bounds: Bounds) -> RedisResponses:
        client = redis_client(url, "to_chat.store in Redis")
        return cls(client, bounds, "Redis at " + _without_password(url))

    async def _open(self) -> None:
        await self.client.ping()

    async def _put(self, response_id: str, data: bytes, expires: float) -> None:
        key = response_id.encode()

        async def put(pipe: Any) -> None:
            gone = set(await pipe.zrangebyscore(self.INDEX, "-inf", self.now()))
            if await pipe.zscore(self.INDEX, key) is not None:
                gone.add(key)
            entries = await pipe.zcard(self.INDEX) - len(gone)
            total = int(await pipe.get(self.TOTAL) or 0) - await self._sizes(pipe, list(gone))
            start = 0
            while entries and self._full(entries, total, len(data)):
                members = await pipe.zrange(self.INDEX, start, start + self.BATCH - 1)
                if not members:
                    break
                start += self.BATCH
                batch = [member for member in members if member not in gone]
                for member, size in zip(batch, await pipe.hmget(self.SIZES, batch) if batch else ()):
                    if not self._full(entries, total, len(data)):
                        break
                    gone.add(member)
                    entries, total = entries - 1, total - int(size or 0)
            pipe.multi()
            if gone:
                pipe.delete(*(self.PREFIX.encode() + member for member in gone))
                pipe.zrem(self.INDEX, *gone)
                pipe.hdel(self.SIZES, *gone)
            pipe.set(self.PREFIX.encode() + key, data, px=max(int((expires - self.now()) * 1000), 1))
            pipe.zadd(self.INDEX, {key: expires})
            pipe.hset(self.SIZES, key, len(data))
            pipe.set(self.TOTAL, max(total, 0) + len(data))

        await self.client.transaction(put, self.INDEX)

    async def _sizes(self, pipe: Any, members: list[bytes]) -> int:
        return sum(int(size or 0) for size in await pipe.hmget(self.SIZES, members)) if members else 0

    async def _get(self, response_id: str) -> tuple[bytes, float] | None:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(self.PREFIX + response_id)
            pipe.zscore(self.INDEX, response_id)
            data, expires = await pipe.execute()
        return None if data is None or expires is None else (data, expires)

    async def _delete(self, response_id: str) -> bool:
        key = response_id.encode()

        async def delete(pipe: Any) -> bool:
            expires = await pipe.zscore(self.INDEX, key)
            size = await self._sizes(pipe, [key])
            pipe.multi()
            pipe.delete(self.PREFIX.encode() + key)
            pipe.zrem(self.INDEX, key)
            pipe.hdel(self.SIZES, key)
            pipe.decrby(self.TOTAL, size)
            return expires is not None and expires > self.now()

        return await self.client.transaction(delete, self.INDEX, value_from_callable=True)

    async def aclose(self) -> None:
        await self.client.aclose()


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2]


def default_sqlite_path() -> str:
    """Where ``store: sqlite`` keeps its file: the user's state directory (``$XDG_STATE_HOME``, else
    ``~/.local/state``), under ``responses-proxy``."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "responses-proxy", "responses.db")


def open_response_store(config: ToChatConfig) -> ResponseStore:
    """The store ``to_chat.store`` names: ``memory``, ``sqlite`` (the default file), ``sqlite://PATH``, or a
    Redis URL (``redis://``, ``rediss://``, ``unix://``)."""
    bounds = Bounds(config.stored_responses, config.stored_max_bytes, config.stored_ttl)
    where = config.store
    if where == "memory":
        return MemoryResponses(bounds)
    if where == "sqlite":
        return SqliteResponses(default_sqlite_path(), bounds)
    if where.startswith("sqlite://"):
        return SqliteResponses(os.path.expanduser(where[len("sqlite://"):]), bounds)
    return RedisResponses.from_url(where, bounds)


def with_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items as the API lists them: each with an id (a message the client sent without one gets one)."""
    return [item if isinstance(item.get("id"), str) else {"id": "msg_" + secrets.token_hex(24), **item}
            for item in items]


def deleted(response_id: str) -> dict[str, Any]:
    return {"id": response_id, "object": "response", "deleted": True}


def input_item_page(stored: StoredResponse, query: dict[str, str]) -> dict[str, Any]:
    """``GET /v1/responses/{id}/input_items``: a list page (``order``, ``limit``, ``after``), as the API pages."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest(f"Invalid value for 'order': {order!r:.40}. Expected 'asc' or 'desc'.", "order")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise InvalidRequest("Invalid value for 'limit': expected an integer from 1 to 100.", "limit")
    items = stored.input_items if order == "asc" else stored.input_items[::-1]
    after = query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise ClientError(404, f"Item with id '{after:.100}' not found.", "after", "not_found")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit}
