"""The upstream client: one pooled httpx client, URL building, headers, transport errors.

Every call returns an *open* streamed response, so callers decide whether to
relay bytes as they come or read a (small) body; nothing here buffers.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson

from .config import UpstreamConfig
from .errors import ProxyError, normalize_error

# Hop-by-hop headers (RFC 9110 section 7.6.1) and headers httpx must set itself.
HOP_BY_HOP = frozenset((
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "host", "content-length",
))
# Client headers that never reach the upstream: credentials are the proxy's to set,
# and the client's accepted encodings are not the proxy's when it decodes the body.
_CLIENT_ONLY = frozenset(("authorization", "x-api-key", "cookie", "accept-encoding", "expect"))
ERROR_BODY_LIMIT = 1024 * 1024
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
        headers = {
            name: value for name, value in client_headers.items()
            if name.lower() not in HOP_BY_HOP and (name.lower() not in _CLIENT_ONLY or
                                                   (keep_encoding and name.lower() == "accept-encoding"))
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
    ) -> httpx.Response:
        """Send a request and return once the upstream's status and headers are in."""
        if json is not None:
            content = orjson.dumps(json)
            headers = {**headers, "content-type": "application/json"}
        url = self.url(path) + (f"?{params}" if params else "")
        client = self._pick()
        request = client.build_request(method, url, headers=headers, content=content)
        try:
            return await client.send(request, stream=True)
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
