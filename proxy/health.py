"""Readiness: can this process serve requests now?

``/readyz`` is probed every few seconds by orchestrators, so the upstream
check is cheap (a TCP connect, or ``GET {base}/models``), bounded by a short
timeout and cached for a few seconds; concurrent probes share one check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from .errors import ProxyError
from .upstream import Upstream

CACHE_SECONDS = 5.0
TIMEOUT_SECONDS = 3.0


class Readiness:
    def __init__(self, upstreams: Sequence[Upstream], check: str, timeout: float = TIMEOUT_SECONDS,
                 cache_seconds: float = CACHE_SECONDS) -> None:
        self.upstreams = list(upstreams)
        self.check = check
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._lock = asyncio.Lock()
        self._result: tuple[float, bool, dict[str, str]] | None = None

    async def status(self) -> tuple[bool, dict[str, str]]:
        """Whether every upstream passed, and each upstream's result ("ok" or what failed)."""
        if self.check == "none":
            return True, {}
        async with self._lock:
            now = time.monotonic()
            if self._result is None or now - self._result[0] >= self.cache_seconds:
                results = await asyncio.gather(*(self._probe(upstream) for upstream in self.upstreams))
                details = {upstream.config.name: result for upstream, result in zip(self.upstreams, results)}
                self._result = (time.monotonic(), all(result == "ok" for result in results), details)
            return self._result[1], self._result[2]

    async def _probe(self, upstream: Upstream) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                if self.check == "connect":
                    return await self._connect(upstream)
                return await self._models(upstream)
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"

    @staticmethod
    async def _connect(upstream: Upstream) -> str:
        url = urlsplit(upstream.config.base_url)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            _, writer = await asyncio.open_connection(url.hostname, port)
        except OSError as exc:
            return f"cannot connect to {url.hostname}:{port}: {exc.strerror or exc}"
        writer.close()
        return "ok"

    @staticmethod
    async def _models(upstream: Upstream) -> str:
        try:
            response = await upstream.send("GET", "/models", upstream.headers(()))
            response.close()
        except ProxyError as exc:
            return f"GET /models failed: {exc.message}"
        if response.status_code >= 500:
            return f"GET /models answered HTTP {response.status_code}"
        if response.status_code == 404:  # every OpenAI-style API lists its models: the base URL leads elsewhere
            return f"{response.called} answered HTTP 404: check the upstream's base URL"
        if response.status_code in (401, 403) and len(upstream.keys):
            return f"the upstream refused the proxy's key (HTTP {response.status_code})"
        return "ok"
