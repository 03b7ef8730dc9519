"""The upstream client: one pooled httpx client, URL building, headers, transport errors.

Every call returns an *open* streamed response, so callers decide whether to
relay bytes as they come or read a (small) body; nothing here buffers.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson

from . import logs, metrics
from .config import UpstreamConfig
from .errors import ProxyError, normalize_error
from .keys import REST_STATUSES, KeyRing, bearer_key, retry_after_seconds

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
        self.keys = KeyRing(config.keys, config.key_rest_seconds)
        self.client.event_hooks["request"].append(self._on_request)
        self.client.event_hooks["response"].append(self._on_response)

    async def aclose(self) -> None:
        await self.client.aclose()

    def url(self, path: str) -> str:
        return self.config.base_url + path

    def headers(self, client_headers: Mapping[str, str], *, keep_encoding: bool = False) -> dict[str, str]:
        """Client headers minus hop-by-hop ones, with the upstream's credentials.

        With an upstream key configured it replaces whatever the client sent;
        without one, the client's own ``Authorization`` is forwarded.
        """
        headers = {
            name: value for name, value in client_headers.items()
            if name.lower() not in HOP_BY_HOP and (name.lower() not in _CLIENT_ONLY or
                                                   (keep_encoding and name.lower() == "accept-encoding"))
        }
        key = self.keys.pick()
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
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
                self.keys.rest(key, retry_after_seconds(response.headers.get("retry-after")) if status == 429 else None)
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
    ) -> httpx.Response:
        """Send a request and return once the upstream's status and headers are in."""
        if json is not None:
            content = orjson.dumps(json)
            headers = {**headers, "content-type": "application/json"}
        url = self.url(path) + (f"?{params}" if params else "")
        request = self.client.build_request(method, url, headers=headers, content=content)
        try:
            return await self.client.send(request, stream=True)
        except httpx.ConnectTimeout:
            raise ProxyError(504, f"Timed out connecting to the upstream after {self.config.connect_timeout:g} s.",
                             "upstream_timeout", code="connect_timeout") from None
        except httpx.TimeoutException:
            raise ProxyError(504, "The upstream sent no response within the first-byte timeout "
                                  f"({self.config.first_byte_timeout:g} s).",
                             "upstream_timeout", code="first_byte_timeout") from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError,
                httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise ProxyError(502, f"Could not reach the upstream: {_describe(exc)}", "upstream_error",
                             code="upstream_unreachable") from None


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
