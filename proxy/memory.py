"""Encrypted reasoning of recent answers, so a reasoning model keeps its thinking across turns.

Chat apps resend the whole history but cannot carry Responses reasoning
items. The proxy asks for ``reasoning.encrypted_content`` and keeps each
answer's reasoning items here, keyed by what the client will send back
unchanged: the answer's tool-call ids, or a hash of its text, within the
scope of the caller's credentials, the upstream and the model. When the
conversation returns, they are put back in front of the answer, and the
phases its messages had (for models that mark them) back on them.

Two stores: a bounded in-process LRU with a time limit (the default), and
Redis, so several replicas share what they keep. A miss, or a store that is
down, only means the model starts that turn without its earlier reasoning, as
with any chat proxy; it never fails a request.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from .config import ReasoningConfig
from .passthrough import header
from .translate import kept_reasoning

log = logging.getLogger("proxy.memory")

# The headers that say whose request it is, to the proxy (its keys) or to the upstream (the caller's own).
SCOPE_HEADERS = ("authorization", "x-api-key", "api-key", "openai-organization", "openai-project")


class ReasoningStore(Protocol):
    """Where kept reasoning lives: reasoning items (and message phases) under keys, nothing more."""

    suspends: bool  # whether its calls wait on I/O (then a request being cancelled must not cut them short)

    async def fetch(self, keys: list[str]) -> dict[str, list[dict[str, Any]]]: ...

    async def put(self, keys: list[str], reasoning: list[dict[str, Any]]) -> None: ...

    async def aclose(self) -> None: ...


def caller_identity(headers: Mapping[str, str]) -> str:
    """Whose request it is: the credentials it carries, to the proxy or to the upstream (:data:`SCOPE_HEADERS`)."""
    return "\n".join(header(headers, name) for name in SCOPE_HEADERS)


def caller_key(headers: Mapping[str, str]) -> str:
    """A digest of the caller's credentials (:func:`caller_identity`): what the proxy keeps for a caller is found
    by that caller alone, as the API finds an organisation's objects for its keys alone."""
    return hashlib.sha256(caller_identity(headers).encode()).hexdigest()[:32]


def memory_scope(headers: Mapping[str, str], upstream: str, model: str) -> str:
    """Who kept the reasoning, and for which model: the caller's credentials, the upstream and the model.

    An answer's text alone does not identify a conversation: two callers can get the same answer, and one
    caller's reasoning must never go upstream with another's request (nor under another organisation,
    whose key cannot read it).
    """
    return hashlib.sha256(f"{caller_identity(headers)}\n{upstream}\n{model.lower()}".encode()).hexdigest()[:32] + ":"


class ReasoningMemory:
    """One caller's view of a store (see :func:`memory_scope`).

    The scope is worked out on first use: most answers keep no reasoning and most requests bring none back.
    """

    __slots__ = ("store", "suspends", "_whose", "_scope")

    def __init__(self, store: ReasoningStore, headers: Mapping[str, str], upstream: str, model: str) -> None:
        self.store = store
        self.suspends = store.suspends
        self._whose = (headers, upstream, model)
        self._scope: str | None = None

    @property
    def scope(self) -> str:
        if self._scope is None:
            self._scope = memory_scope(*self._whose)
        return self._scope

    async def fetch(self, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
        found = await self.store.fetch([self.scope + key for key in keys])
        return {key[len(self.scope):]: reasoning for key, reasoning in found.items()}

    async def remember(self, response: dict[str, Any] | None) -> None:
        keys, reasoning = kept_reasoning(response)
        if keys:
            await self.store.put([self.scope + key for key in keys], reasoning)


class LocalStore:
    """In this process: bounded, least recently used first out, each entry for ``ttl`` seconds."""

    suspends = False

    def __init__(self, max_entries: int = 2000, ttl: float = 3600.0) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, list[dict[str, Any]]]] = OrderedDict()

    async def fetch(self, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
        found = {}
        now = time.monotonic()
        for key in keys:
            entry = self._entries.get(key)
            if entry is None:
                continue
            if now - entry[0] > self.ttl:
                del self._entries[key]
                continue
            self._entries.move_to_end(key)
            found[key] = entry[1]
        return found

    async def put(self, keys: list[str], reasoning: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for key in keys:
            self._entries[key] = (now, reasoning)
            self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def aclose(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def redis_client(url: str, setting: str) -> Any:
    """A Redis client for ``url`` (named by ``setting`` when the package is missing): short timeouts, since a
    store that is slow or down must cost a request little, never fail it."""
    try:
        import redis.asyncio
    except ImportError:  # pragma: no cover - depends on the installation
        raise RuntimeError(f"{setting} needs the redis package: pip install 'responses-proxy[redis]'") from None
    return redis.asyncio.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


class RedisStore:
    """In Redis, shared by every replica; entries expire after ``ttl`` seconds."""

    PREFIX = "responses-proxy:reasoning:"
    suspends = True

    def __init__(self, client: Any, ttl: float = 3600.0) -> None:
        self.client = client
        self.ttl = ttl

    @classmethod
    def from_url(cls, url: str, ttl: float) -> RedisStore:
        return cls(redis_client(url, "reasoning.redis_url"), ttl)

    async def fetch(self, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
        if not keys:
            return {}
        try:
            values = await self.client.mget([self.PREFIX + key for key in keys])
        except Exception as exc:  # a store that is down costs continuity, never the answer
            log.warning("could not read kept reasoning from Redis: %s", exc)
            return {}
        return {key: orjson.loads(value) for key, value in zip(keys, values) if value}

    async def put(self, keys: list[str], reasoning: list[dict[str, Any]]) -> None:
        value = orjson.dumps(reasoning)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(self.PREFIX + key, value, ex=max(int(self.ttl), 1))
                await pipe.execute()
        except Exception as exc:
            log.warning("could not keep reasoning in Redis: %s", exc)

    async def aclose(self) -> None:
        await self.client.aclose()


def open_store(config: ReasoningConfig) -> ReasoningStore | None:
    if not config.keep_encrypted:
        return None
    if config.redis_url:
        return RedisStore.from_url(config.redis_url, config.memory_ttl)
    return LocalStore(config.memory_entries, config.memory_ttl) if config.memory_entries > 0 else None


class LearnedStore:
    """What the upstreams' models refused (values and optional parameters), in Redis: a model learned about by
    one process or replica is adapted by all. Entries expire after ``ttl`` seconds (a model may come to take
    what it refused); a store that is down costs a refusal learned again, never a request."""

    PREFIX = "responses-proxy:learned:"

    def __init__(self, client: Any, ttl: float = 7 * 24 * 3600.0) -> None:
        self.client = client
        self.ttl = ttl

    @classmethod
    def from_url(cls, url: str) -> LearnedStore:
        return cls(redis_client(url, "reasoning.redis_url"))

    def _key(self, upstream: str, model: str) -> str:
        return f"{self.PREFIX}{upstream}:{model}"

    async def fetch(self, upstream: str, model: str) -> dict[str, tuple[str, ...] | None]:
        """Responses path -> the values the model takes, or None for a parameter it refuses outright."""
        try:
            fields = await self.client.hgetall(self._key(upstream, model))
        except Exception as exc:
            log.warning("could not read what was learned about %s from Redis: %s", model, exc)
            return {}
        learned: dict[str, tuple[str, ...] | None] = {}
        for param, value in fields.items():
            supported = orjson.loads(value)
            learned[param.decode() if isinstance(param, bytes) else param] = \
                tuple(supported) if isinstance(supported, list) else None
        return learned

    async def put(self, upstream: str, model: str, param: str, supported: tuple[str, ...] | None) -> None:
        key = self._key(upstream, model)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hset(key, param, orjson.dumps(list(supported) if supported is not None else None))
                pipe.expire(key, max(int(self.ttl), 1))
                await pipe.execute()
        except Exception as exc:
            log.warning("could not share what was learned about %s through Redis: %s", model, exc)

    async def aclose(self) -> None:
        await self.client.aclose()


def open_learned_store(config: ReasoningConfig) -> LearnedStore | None:
    """Redis for what was learned, where reasoning is kept in Redis; else it stays in each process."""
    return LearnedStore.from_url(config.redis_url) if config.redis_url else None
