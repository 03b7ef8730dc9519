"""Proxy keys: who may spend the operator's upstream keys.

With ``server.api_keys`` set, every request but the probes (GET or HEAD of an
open path) must carry one of them as ``Authorization: Bearer <key>`` or
``x-api-key: <key>``; anything else gets OpenAI's 401 and never reaches an
upstream. Keys are compared as SHA-256 digests with :func:`hmac.compare_digest`,
against every key, so the time taken says nothing about how close a guess was
or which key matched.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Sequence

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from . import logs
from .config import Config
from .errors import error_body
from .keys import bearer_key

OPEN_PATHS = frozenset(("/", "/healthz", "/readyz"))
PROBE_METHODS = ["GET", "HEAD"]  # uptime monitors often probe with HEAD


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class ProxyKeys:
    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(key) for key in keys]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def accepts(self, presented: str) -> bool:
        digest = _digest(presented)
        match = False
        for known in self._digests:  # no early exit
            match |= hmac.compare_digest(digest, known)
        return match


class ProxyKeyMiddleware:
    """Answers 401 to requests without a valid proxy key; probes of ``open_paths`` stay open."""

    def __init__(self, app: ASGIApp, keys: Sequence[str], open_paths: Iterable[str] = OPEN_PATHS) -> None:
        self.app = app
        self.keys = ProxyKeys(keys)
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or self._is_probe(scope):
            await self.app(scope, receive, send)
            return
        presented = []
        for name, value in scope["headers"]:
            name = name.lower()
            if name == b"authorization":
                presented.append(bearer_key(value.decode("latin-1")))
            elif name == b"x-api-key":
                presented.append(value.decode("latin-1").strip())
        presented = [key for key in presented if key]
        if not presented:
            await _unauthorized(send, "You didn't provide an API key. Send one of this proxy's keys in an "
                                      "Authorization header using Bearer auth (Authorization: Bearer YOUR_KEY) "
                                      "or in an x-api-key header.", "missing_api_key")
            return
        if not any([self.keys.accepts(key) for key in presented]):
            await _unauthorized(send, "Incorrect API key provided. Use one of the keys this proxy was given "
                                      "(server.api_keys), not an upstream key.", "invalid_api_key")
            return
        await self.app(scope, receive, send)

    def _is_probe(self, scope: Scope) -> bool:
        """A GET or HEAD of an open path: any other method there is passed through upstream, so it needs a key."""
        return scope["method"] in PROBE_METHODS and scope["path"] in self.open_paths


async def _unauthorized(send: Send, message: str, code: str) -> None:
    logs.current().error = code
    body = orjson.dumps(error_body(message, "invalid_request_error", code=code))
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="responses-proxy"')]})
    await send({"type": "http.response.body", "body": body})


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warnings(config: Config) -> list[str]:
    """Why this setup may spend the operator's money on anyone's behalf."""
    if config.server.api_keys or is_loopback(config.server.host):
        return []
    keyed = [upstream.name for upstream in config.upstreams if upstream.keys]
    if not keyed:
        return []
    return [f"listening on {config.server.host} without proxy keys while upstream {', '.join(keyed)} has a key: "
            "anyone who can reach this port spends it. Set server.api_keys (or PROXY_API_KEYS), or listen on "
            "127.0.0.1."]
