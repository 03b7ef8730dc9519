"""Upstream keys used in turn, with keys the upstream refused left out for a while.

One key's rate limit or a revoked key should not fail every request: keys
are handed out round-robin, and a key that got 401 or 429 rests (for the
upstream's ``Retry-After`` when it sends one) while the others carry on. The
state lives in the process: with several workers each keeps its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from email.utils import parsedate_to_datetime

# Statuses that say "this key, not this request": unauthorized and rate limited.
REST_STATUSES = frozenset((401, 429))


class KeyRing:
    """``pick()`` a key per attempt; ``rest(key)`` when the upstream refuses it."""

    def __init__(self, keys: Sequence[str], rest_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = list(dict.fromkeys(keys))
        self._rest_seconds = rest_seconds
        self._clock = clock
        self._next = 0
        self._resting_until: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def pick(self) -> str | None:
        """The next key that is not resting; if all rest, the one whose rest ends first; None without keys."""
        if not self._keys:
            return None
        now = self._clock()
        count = len(self._keys)
        for step in range(count):
            key = self._keys[(self._next + step) % count]
            if self._resting_until.get(key, 0.0) <= now:
                self._next = (self._next + step + 1) % count
                return key
        return min(self._keys, key=lambda key: self._resting_until[key])

    def rest(self, key: str, seconds: float | None = None) -> None:
        """Leave ``key`` out for ``seconds`` (default: the configured rest); unknown keys are ignored."""
        if key in self._keys:
            self._resting_until[key] = self._clock() + (self._rest_seconds if seconds is None else seconds)

    def resting(self) -> list[str]:
        now = self._clock()
        return [key for key in self._keys if self._resting_until.get(key, 0.0) > now]


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the upstream asked to wait (``retry-after-ms``, or ``Retry-After`` in seconds or as a date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000, 0.0)
        except ValueError:
            pass
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def bearer_key(authorization: str | None) -> str | None:
    """The key in an ``Authorization: Bearer <key>`` header."""
    if not authorization:
        return None
    scheme, _, key = authorization.strip().partition(" ")
    return key.strip() or None if scheme.lower() == "bearer" else None
