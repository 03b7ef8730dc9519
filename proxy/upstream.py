"""The upstream client: one pooled httpx client, URL building, headers, transport errors.

Every call returns an *open* streamed response, so callers decide whether to
relay bytes as they come or read a (small) body; nothing here buffers.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import logging
import random
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson

from .config import UpstreamConfig
from .errors import ProxyError, normalize_error

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


class Upstream:
    def __init__(self, config: UpstreamConfig, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(connect=config.connect_timeout, read=config.first_byte_timeout, write=60.0,
                                  pool=config.connect_timeout),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
            follow_redirects=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

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
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key}"
        else:
            for name in ("authorization", "x-api-key"):
                value = client_headers.get(name)
                if value is not None:
                    headers[name] = value
        headers.update(self.config.headers)
        return headers

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
        request = self.client.build_request(method, url, headers=headers, content=content, timeout=timeout)
        try:
            return await self.client.send(request, stream=True)
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
                continue
            if last or response.status_code not in RETRYABLE_STATUSES:
                return response, attempt - 1
            delay = retry_after(response.headers)
            delay = self._backoff(attempt) if delay is None else delay
            if loop.time() + delay > deadline:
                return response, attempt - 1
            log.info("upstream %s %s answered %d; retrying in %.2f s", method, path, response.status_code, delay)
            await response.aclose()
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.config.backoff_max, self.config.backoff_initial * 2 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)


RETRYABLE_STATUSES = frozenset((429, 500, 502, 503, 504))
# A first-byte timeout is not retried: the upstream may still be working, and paid, on the first try.
_RETRYABLE_FAILURES = frozenset(("upstream_unreachable", "connect_timeout"))


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the upstream asked us to wait (``retry-after-ms``, ``Retry-After`` seconds or date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max((when - datetime.datetime.now(datetime.timezone.utc)).total_seconds(), 0.0)


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


def upstream_error(status: int, payload: Any, raw: bytes) -> ProxyError:
    """An upstream error answer, relayed with its status and OpenAI-style body."""
    snippet = raw[:300].decode("utf-8", "replace").strip()
    fallback = f"The upstream answered HTTP {status}" + (f": {snippet}" if snippet else ".")
    body = normalize_error(payload, fallback)["error"]
    return ProxyError(status, body["message"], body["type"], body["param"], body["code"])


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
