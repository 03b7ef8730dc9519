"""The upstream client: one pooled httpx client, URL building, headers, transport errors.

Every call returns an *open* streamed response, so callers decide whether to
relay bytes as they come or read a (small) body; nothing here buffers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson

from . import logs, metrics
from .config import UpstreamConfig
from .errors import ProxyError, normalize_error
from .keys import REST_STATUSES, KeyRing, bearer_key, retry_after

log = logging.getLogger("proxy.upstream")

# Hop-by-hop headers (RFC 9110 section 7.6.1) and headers httpx must set itself.
HOP_BY_HOP = frozenset((
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "host", "content-length",
))
# Client headers that never reach the upstream: credentials are the proxy's to set,
# and the client's accepted encodings are not the proxy's when it decodes the body.
_CLIENT_ONLY = frozenset(("authorization", "x-api-key", "cookie", "accept-encoding", "expect"))
ERROR_BODY_LIMIT = 1024 * 1024
_BILLING = frozenset(("openai-organization", "openai-project"))
# httpcore's pool scans every pooled connection (with a poll() on each idle one),
# and compares each idle one with all others, whenever a request starts or ends:
# O(connections²) per request. Many small pools keep that cost flat under load;
# they share one TLS context, which is costly to build (~1 MiB, tens of ms each).
POOL_SHARDS = 32
MAX_KEEPALIVE = 256


class Upstream:
    def __init__(self, config: UpstreamConfig, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        if client is None:
            tls = httpx.create_ssl_context(trust_env=False)
            self.clients = [self._new_client(MAX_KEEPALIVE // POOL_SHARDS, tls) for _ in range(POOL_SHARDS)]
        else:
            self.clients = [client]
        self._turn = 0
        self.keys = KeyRing(config.keys, config.key_rest_seconds)
        for pool in self.clients:
            pool.event_hooks["request"].append(self._on_request)
            pool.event_hooks["response"].append(self._on_response)

    def _new_client(self, keepalive: int, tls: ssl.SSLContext) -> httpx.AsyncClient:
        config = self.config
        return httpx.AsyncClient(
            verify=tls,
            timeout=httpx.Timeout(connect=config.connect_timeout, read=config.first_byte_timeout, write=60.0,
                                  pool=config.connect_timeout),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=keepalive),
            follow_redirects=False,
            trust_env=False,
        )

    def _pick(self) -> httpx.AsyncClient:
        """The next pool, in turn."""
        self._turn = (self._turn + 1) % len(self.clients)
        return self.clients[self._turn]

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    def url(self, path: str) -> str:
        return self.config.base_url + path

    def headers(self, client_headers: Mapping[str, str], *, keep_encoding: bool = False) -> dict[str, str]:
        """Client headers minus hop-by-hop ones, with the upstream's credentials.

        With an upstream key configured it replaces whatever the client sent;
        without one, the client's own ``Authorization`` is forwarded.
        """
        # Headers named in Connection are hop-by-hop too (RFC 9110 section 7.6.1), and Proxy-* ones are for us.
        hop = HOP_BY_HOP | {name.strip().lower() for name in client_headers.get("connection", "").split(",")}
        headers = {
            name: value for name, value in client_headers.items()
            if name.lower() not in hop and not name.lower().startswith("proxy-")
            and (name.lower() not in _CLIENT_ONLY or (keep_encoding and name.lower() == "accept-encoding"))
        }
        key = self.keys.pick()
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
            # With the operator's key, the operator chooses what it bills: clients do not pick the org or project.
            for name in [name for name in headers if name.lower() in _BILLING]:
                del headers[name]
        else:
            for name in ("authorization", "x-api-key"):
                value = client_headers.get(name)
                if value is not None:
                    headers[name] = value
        headers.update(self.config.headers)
        return headers

    def rekey(self, headers: Mapping[str, str]) -> dict[str, str]:
        """``headers`` with the next key of the ring, for another attempt (unchanged without upstream keys)."""
        key = self.keys.pick()
        if key is None:
            return dict(headers)
        return {**{name: value for name, value in headers.items() if name.lower() != "authorization"},
                "authorization": f"Bearer {key}"}

    async def _on_request(self, request: httpx.Request) -> None:
        request.extensions["proxy_sent_at"] = time.monotonic()

    async def _on_response(self, response: httpx.Response) -> None:
        """Every upstream answer: the request's log and metrics, and a rest for a key it refused."""
        name = self.config.name
        status = response.status_code
        sent_at = response.request.extensions.get("proxy_sent_at")
        if sent_at is not None:
            metrics.UPSTREAM_LATENCY.labels(name).observe(time.monotonic() - sent_at)
        metrics.UPSTREAM_RESPONSES.labels(name, str(status)).inc()
        record = logs.current()
        record.upstream, record.upstream_status = name, status
        if status in REST_STATUSES:
            key = bearer_key(response.request.headers.get("authorization"))
            if key is not None and key in self.keys:
                self.keys.rest(key, retry_after(response.headers) if status == 429 else None)
                metrics.UPSTREAM_KEY_RESTS.labels(name, str(status)).inc()

    async def send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        *,
        content: bytes | AsyncIterator[bytes] | None = None,
        json: Any = None,
        params: str | None = None,
        first_byte_timeout: float | None = None,
    ) -> httpx.Response:
        """Send a request and return once the upstream's status and headers are in."""
        if json is not None:
            content = orjson.dumps(json)
            headers = {**headers, "content-type": "application/json"}
        url = self.url(path) + (f"?{params}" if params else "")
        wait = first_byte_timeout or self.config.first_byte_timeout
        timeout = httpx.Timeout(connect=self.config.connect_timeout, read=wait, write=60.0, pool=self.config.connect_timeout)
        client = self._pick()
        request = client.build_request(method, url, headers=headers, content=content, timeout=timeout)
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectTimeout:
            raise ProxyError(504, f"Timed out connecting to the upstream after {self.config.connect_timeout:g} s "
                                  "(connect timeout).", "upstream_timeout", code="connect_timeout") from None
        except httpx.TimeoutException:
            raise ProxyError(504, f"The upstream sent no response within {wait:g} s (first-byte timeout).",
                             "upstream_timeout", code="first_byte_timeout") from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError,
                httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise ProxyError(502, f"Could not reach the upstream: {_describe(exc)}", "upstream_error",
                             code="upstream_unreachable") from None

    async def send_retrying(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        *,
        json: Any = None,
        content: bytes | None = None,
        params: str | None = None,
        first_byte_timeout: float | None = None,
    ) -> tuple[httpx.Response, int]:
        """:meth:`send`, retried on 429/5xx and connection failures; returns the answer and the retry count.

        Only whole, re-sendable bodies are retried, and only before anything
        reached the client. ``Retry-After``/``retry-after-ms`` are honoured;
        otherwise the wait grows exponentially, with jitter. The last answer
        is returned (or the last error raised) when the attempts or the time
        budget run out.
        """
        if json is not None:
            content = orjson.dumps(json)
            headers = {**headers, "content-type": "application/json"}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.retry_budget
        for attempt in range(1, self.config.max_attempts + 1):
            last = attempt == self.config.max_attempts
            try:
                response = await self.send(method, path, headers, content=content, params=params,
                                           first_byte_timeout=first_byte_timeout)
            except ProxyError as exc:
                if last or exc.code not in _RETRYABLE_FAILURES:
                    raise
                delay = self._backoff(attempt)
                if loop.time() + delay > deadline:
                    raise
                log.info("upstream %s %s failed (%s); retrying in %.2f s", method, path, exc.code, delay)
                await asyncio.sleep(delay)
                logs.current().retries += 1
                continue
            if last or response.status_code not in RETRYABLE_STATUSES:
                return response, attempt - 1
            # The refused key now rests; another key that is not resting can be tried at once.
            rekeyed = self.rekey(headers)
            fresh_key = response.status_code == 429 and rekeyed.get("authorization") != headers.get("authorization") \
                and bearer_key(rekeyed.get("authorization")) not in self.keys.resting()
            delay = retry_after(response.headers)
            delay = 0.0 if fresh_key else self._backoff(attempt) if delay is None else delay
            if loop.time() + delay > deadline:
                return response, attempt - 1
            log.info("upstream %s %s answered %d; retrying in %.2f s", method, path, response.status_code, delay)
            await response.aclose()
            await asyncio.sleep(delay)
            logs.current().retries += 1
            headers = rekeyed
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.config.backoff_max, self.config.backoff_initial * 2 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)


RETRYABLE_STATUSES = frozenset((429, 500, 502, 503, 504))
# A first-byte timeout is not retried: the upstream may still be working, and paid, on the first try.
_RETRYABLE_FAILURES = frozenset(("upstream_unreachable", "connect_timeout"))


async def read_json(response: httpx.Response, limit: int = ERROR_BODY_LIMIT) -> tuple[Any, bytes]:
    """Read a small body (error or non-streamed answer) and parse it if it is JSON."""
    try:
        body = await _read_limited(response, limit)
    finally:
        await response.aclose()
    try:
        return orjson.loads(body), body
    except orjson.JSONDecodeError:
        return None, body


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)


def upstream_error(status: int, payload: Any, raw: bytes, headers: Mapping[str, str] | None = None) -> ProxyError:
    """An upstream error answer, relayed with its status, OpenAI-style body and retry hints."""
    snippet = raw[:300].decode("utf-8", "replace").strip()
    fallback = f"The upstream answered HTTP {status}" + (f": {snippet}" if snippet else ".")
    body = normalize_error(payload, fallback)["error"]
    hints = {name: headers[name] for name in _RETRY_HINTS if headers and name in headers}
    return ProxyError(status, body["message"], body["type"], body["param"], body["code"], hints)


_RETRY_HINTS = ("retry-after", "retry-after-ms")


def relayed_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers that may reach the client (raw pairs keep repeated ones apart)."""
    return [(name, value) for name, value in response.headers.raw
            if name.lower().decode("latin-1") not in RESPONSE_HOP_BY_HOP]


RESPONSE_HOP_BY_HOP = HOP_BY_HOP - {"content-length"}


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
