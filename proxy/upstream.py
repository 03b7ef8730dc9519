"""The upstream client: one pooled aiohttp session, URL building, headers, transport errors.

Every call returns an *open* answer (:class:`UpstreamResponse`), so callers
decide whether to relay bytes as they come or read a (small) body; nothing
here buffers. aiohttp lives in this module alone: the rest of the proxy sees
:class:`UpstreamResponse`, and the typed errors of :mod:`proxy.errors`
(:class:`UpstreamUnreachable`, the timeouts, and :class:`UpstreamBroken` for failures while reading a body).
(aiohttp rather than httpx: on the same work it costs a fifth of the CPU per
request and per streamed event, see ``bench/README.md``.)
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import ssl
import time
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from functools import cache, lru_cache
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import aiohttp
import certifi
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from . import logs, metrics
from .config import UpstreamConfig
from .errors import (RETRYABLE_STATUSES, ConnectTimeout, FirstByteTimeout, IdleTimeout, InvalidRequest,
                     InvalidUpstreamAnswer, UpstreamBroken, UpstreamError, UpstreamNotFound, UpstreamStatusError,
                     UpstreamUnreachable)
from .forms import form_boundary, form_value, with_form_value
from .keys import REST_STATUSES, KeyRing, retry_after
from .library_internals import left_behind

log = logging.getLogger("proxy.upstream")

# Hop-by-hop headers (RFC 9110 section 7.6.1) and headers the HTTP client must set itself.
HOP_BY_HOP = frozenset((
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "host", "content-length",
))
# Client headers that never reach the upstream: credentials are the proxy's to set,
# and the client's accepted encodings are not the proxy's when it decodes the body.
_CLIENT_ONLY = frozenset(("authorization", "x-api-key", "api-key", "cookie", "accept-encoding", "expect"))
# As raw ASGI header names: the client's headers are read as the server gave them.
_DROPPED = frozenset(name.encode("latin-1") for name in HOP_BY_HOP | _CLIENT_ONLY)
_DROPPED_KEEPING_ENCODING = _DROPPED - {b"accept-encoding"}
_CREDENTIALS = frozenset((b"authorization", b"x-api-key", b"api-key"))
ERROR_BODY_LIMIT = 1024 * 1024
_BILLING = frozenset(("openai-organization", "openai-project"))
KEEPALIVE_SECONDS = 15.0  # an idle pooled connection is closed after this long


@cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every upstream: building one costs tens of milliseconds and about 1 MiB."""
    return ssl.create_default_context(cafile=certifi.where())


@lru_cache(maxsize=64)
def _timeouts(connect: float, first_byte: float) -> aiohttp.ClientTimeout:
    """The client's timeout settings for a request (immutable, so one object serves every request alike)."""
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect, sock_read=first_byte)


class _IdleWatch:
    """Fails a read of a body that has waited ``seconds`` for data, with :class:`aiohttp.ServerTimeoutError`.

    aiohttp's own read timeout cancels and makes a timer on every network read; this one timer is re-armed at
    most once per ``seconds``, and counts only the time spent waiting: not while the reader is busy elsewhere
    (writing to a slow client, say).
    """

    __slots__ = ("_seconds", "_content", "_loop", "_since", "_timer")

    def __init__(self, seconds: float, content: aiohttp.StreamReader) -> None:
        self._seconds = seconds
        self._content = content
        self._loop = asyncio.get_running_loop()
        self._since: float | None = None  # when the read now waiting began; None while none waits
        self._timer: asyncio.TimerHandle | None = None

    def waiting(self) -> None:
        self._since = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(self._since + self._seconds, self._due)

    def received(self) -> None:
        self._since = None

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _due(self) -> None:
        self._timer = None
        if self._since is None:
            return  # the next wait arms the timer again
        deadline = self._since + self._seconds
        if self._loop.time() >= deadline:
            self._content.set_exception(aiohttp.ServerTimeoutError(f"no data for {self._seconds:g} s"))
        else:
            self._timer = self._loop.call_at(deadline, self._due)


class UpstreamResponse:
    """An upstream answer whose status and headers are in and whose body is still to be read.

    Reading the body, a wait for data longer than the idle timeout fails with :class:`IdleTimeout`.
    """

    __slots__ = ("_response", "status_code", "headers", "_decoded", "_idle", "cut", "called")

    def __init__(self, response: aiohttp.ClientResponse, decoded: bool, idle_timeout: float, called: str) -> None:
        self._response = response
        self.called = called  # method and URL, as they may be shown: "POST http://host/v1/responses"
        self.status_code: int = response.status
        self.headers: CIMultiDictProxy[str] = response.headers
        self._decoded = decoded
        self._idle = idle_timeout
        self.cut = False  # read() returned only the start of the body
        self._read_timeout(None)  # the first-byte timeout ends with the head; the body's reads have their own

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return self._response.raw_headers

    def _read_timeout(self, seconds: float | None) -> None:
        """aiohttp's read timeout from now on, counted from now (None: none).

        Not for a body that has already arrived whole: a timer would outlive it, on a pooled connection.
        """
        connection = self._response.connection
        if connection is not None and connection.protocol is not None and not self._response.content.is_eof():
            connection.protocol.read_timeout = seconds
            connection.protocol.start_timeout()

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body as it arrives: whatever is buffered at each step, in one piece."""
        content = self._response.content
        watch = _IdleWatch(self._idle, content)
        try:
            while True:
                watch.waiting()
                chunk = await content.readany()
                watch.received()
                if not chunk:
                    return
                yield chunk
        except (aiohttp.ClientError, OSError) as exc:
            failure = self._read_failure(exc)
            if not isinstance(failure, IdleTimeout):
                rest = left_behind(content)
                if rest:
                    yield rest
            raise failure from None
        finally:
            watch.stop()

    async def read(self, limit: int) -> bytes:
        """The body, decoded, up to ``limit`` bytes (:attr:`cut` says whether there was more); then the connection
        is released."""
        try:
            length = self._response.content_length
            # Declared and within the limit, and not to be inflated (a small compressed body can inflate to any size).
            if length is not None and length <= limit and "content-encoding" not in self.headers:
                body = await self._whole()
            else:
                chunks: list[bytes] = []
                size = 0
                async for chunk in self.chunks():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        break
                body = b"".join(chunks)
        finally:
            self.close()
        if not self._decoded:
            body = _decode(body, self.headers.get("content-encoding", ""), limit + 1)
        self.cut = len(body) > limit
        return body[:limit] if self.cut else body

    async def _whole(self) -> bytes:
        """A body of a known, acceptable length, in one read."""
        self._read_timeout(self._idle)  # the bytes of a body read whole come in few network reads
        try:
            return await self._response.content.read()
        except (aiohttp.ClientError, OSError) as exc:
            raise self._read_failure(exc) from None

    def _read_failure(self, exc: Exception) -> UpstreamBroken:
        """What an aiohttp failure while the body is read means to the proxy."""
        if isinstance(exc, aiohttp.ServerTimeoutError):
            return IdleTimeout(self._idle)
        return UpstreamBroken(_describe(exc))

    def close(self) -> None:
        """Give the connection back to the pool when the body was read to its end; otherwise close it."""
        self._response.release()


def _decode(body: bytes, encoding: str, limit: int) -> bytes:
    """A body that was fetched to be relayed as is (still compressed) but is read by the proxy after all: inflated
    up to ``limit`` bytes, since a small compressed body can inflate to any size."""
    encoding = encoding.strip().lower()
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(body, limit)
        if encoding == "deflate":
            try:
                return zlib.decompressobj().decompress(body, limit)
            except zlib.error:
                return zlib.decompressobj(-zlib.MAX_WBITS).decompress(body, limit)
    except zlib.error:
        pass
    return body


def _as_json(payload: Any, headers: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
    """A JSON request body, and the headers that announce it."""
    return orjson.dumps(payload), {**headers, "content-type": "application/json"}


def _as_received(value: bytes) -> str:
    """A header value as the UTF-8 text the client sent (aiohttp sends UTF-8).

    Bytes that are not UTF-8 cannot be sent as they came; they go as their Latin-1 reading.
    """
    try:
        return value.decode("utf-8")
    except UnicodeError:
        return value.decode("latin-1")


def without_credentials(url: str) -> str:
    """``http://user:secret@host/v1?key=abc`` -> ``http://host/v1``: a URL as it may be shown (in ``/``, logs,
    metrics and errors), without the user, password, query and fragment, any of which can carry a key."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


_SECRET_QUERY = re.compile(r"key|token|secret|sig|auth|pass|code|credential", re.IGNORECASE)


def url_secrets(url: str) -> list[str]:
    """What :func:`without_credentials` leaves out of ``url`` and logs must never show: its password and the
    values of query parameters named as credentials (``key``, ``token``, ``sig``...; not ``api-version``)."""
    parts = urlsplit(url)
    query = [value for name, value in parse_qsl(parts.query) if _SECRET_QUERY.search(name)]
    return [value for value in (parts.password, *query) if value]


def with_authorization(headers: Mapping[str, str], value: str, name: str = "authorization") -> dict[str, str]:
    """``headers`` with ``value`` as their one ``name`` header (``Authorization``), whatever case the old one had."""
    return {**{old: kept for old, kept in headers.items() if old.lower() != name}, name: value}


# Azure's dated API calls these per deployment, under /deployments/{deployment}; everything else (responses,
# models, files...) is under the API root, as on v1.
_PER_DEPLOYMENT = frozenset(("/chat/completions", "/completions", "/embeddings"))
_PER_DEPLOYMENT_UNDER = ("/images/", "/audio/")
# How much of a multipart upload is read for its model field, at most: a form names it ahead of its file.
FORM_MODEL_LIMIT = 1024 * 1024


def _model_call(path: str) -> bool:
    """Whether ``path`` is a call of a model (a deployment, on Azure)."""
    return path in _PER_DEPLOYMENT or path.startswith(_PER_DEPLOYMENT_UNDER)


class AzureLayout:
    """Azure OpenAI's URLs: ``model`` is a deployment's name (``deployments`` maps the names clients use); the dated
    API (``api_version`` set) also names the deployment in the path of model calls, and the version in every query.
    """

    __slots__ = ("deployments", "version_query")

    def __init__(self, config: UpstreamConfig) -> None:
        self.deployments = config.deployments
        self.version_query = urlencode({"api-version": config.api_version}) if config.api_version else ""

    def deployment_path(self, path: str) -> bool:
        """Whether ``path`` is called under ``/deployments/{deployment}`` (dated API only)."""
        return bool(self.version_query) and _model_call(path)

    def reads_form(self, path: str) -> bool:
        """Whether an upload to ``path`` is read for its model: to find the deployment of the path (dated API), or
        to name the deployment in the form (``deployments``)."""
        return _model_call(path) and bool(self.version_query or self.deployments)

    def locate(self, path: str, model: str | None) -> str:
        """``path`` as this layout calls it for ``model`` (the deployment, already mapped)."""
        if not self.deployment_path(path):
            return path
        if not model:
            raise InvalidRequest(f"The upstream is Azure OpenAI's dated API, where {path} is called per deployment: "
                                 "the request must name its model, in a JSON body or in a multipart form's model "
                                 f"field ahead of its file (within its first {FORM_MODEL_LIMIT:,} bytes); or "
                                 "configure the v1 API (no api_version).", "model")
        return f"/deployments/{quote(model, safe='')}{path}"

    def mapped(self, payload: Any) -> Any:
        """A JSON body with its model named as the deployment."""
        if isinstance(payload, dict) and isinstance(payload.get("model"), str):
            deployment = self.deployments.get(payload["model"])
            if deployment is not None:
                return {**payload, "model": deployment}
        return payload


class Upstream:
    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self.keys = KeyRing(config.keys, config.key_rest_seconds)
        self._session: aiohttp.ClientSession | None = None
        # User and password in the base URL are sent as Basic credentials, in place of any other;
        # its query goes with every request.
        base = URL(config.base_url, encoded=True)
        self._base = without_credentials(config.base_url)
        self.azure = AzureLayout(config) if config.kind == "azure" else None
        configured = urlencode(config.query) if config.query else ""
        version = self.azure.version_query if self.azure is not None else ""
        self._query = "&".join(part for part in (urlsplit(config.base_url).query, configured, version) if part)
        self._key_header = config.key_header
        self._basic = aiohttp.BasicAuth.from_url(base).encode() if base.user is not None else None

    def _client(self) -> aiohttp.ClientSession:
        """The pooled session, made on first use (it belongs to the running event loop)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, ssl=tls_context(), keepalive_timeout=KEEPALIVE_SECONDS)
            # No cookie jar: cookies one client's answer set must never ride along on another client's request.
            self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                                  trust_env=False, skip_auto_headers=("content-type",))
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, path: str) -> str:
        """The URL of ``path`` on this upstream, as it may be shown (see :func:`without_credentials`)."""
        return self._base + path

    def headers(self, client_headers: Iterable[tuple[bytes, bytes]], *, keep_encoding: bool = False) -> dict[str, str]:
        """The client's headers (raw ASGI pairs, names in lower case) minus hop-by-hop ones, with the upstream's
        credentials.

        With an upstream key configured it replaces whatever the client sent;
        without one, the client's own ``Authorization`` is forwarded.
        """
        dropped = _DROPPED_KEEPING_ENCODING if keep_encoding else _DROPPED
        # Headers named in Connection are hop-by-hop too (RFC 9110 section 7.6.1), and Proxy-* ones are for us.
        for name, value in client_headers:
            if name == b"connection":
                dropped = dropped | {part.strip().lower().encode("latin-1") for part in value.decode("latin-1").split(",")}
        headers = {name.decode("latin-1"): value.decode("latin-1") if value.isascii() else _as_received(value)
                   for name, value in client_headers if name not in dropped and not name.startswith(b"proxy-")}
        key = self.keys.pick()
        if key is not None:
            headers[self._key_header] = self.config.credential(key)
            # With the operator's key, the operator chooses what it bills: clients do not pick the org or project.
            for name in [name for name in headers if name in _BILLING]:
                del headers[name]
        else:
            headers.update((name.decode("latin-1"), _as_received(value)) for name, value in client_headers
                           if name in _CREDENTIALS)
        headers.update(self.config.headers)
        return headers

    def rekey(self, headers: Mapping[str, str]) -> dict[str, str]:
        """``headers`` with the next key of the ring, for another attempt (unchanged without upstream keys)."""
        key = self.keys.pick()
        return dict(headers) if key is None else \
            with_authorization(headers, self.config.credential(key), self._key_header)

    def sent_key(self, headers: Mapping[str, str]) -> str | None:
        """The key ``headers`` carry in this upstream's key header, if any."""
        value = headers.get(self._key_header)
        return None if value is None else value.rpartition(" ")[2]  # after the scheme, if any

    def _observe(self, status: int, answer_headers: Mapping[str, str], sent_headers: Mapping[str, str],
                 sent_at: float) -> None:
        """Every upstream answer: the request's log and metrics, and a rest for a key it refused."""
        name = self.config.name
        metrics.measure(metrics.UPSTREAM_LATENCY, name, value=time.monotonic() - sent_at)
        metrics.count(metrics.UPSTREAM_RESPONSES, name, str(status))
        record = logs.current()
        record.upstream, record.upstream_status = name, status
        if status in REST_STATUSES:
            key = self.sent_key(sent_headers)
            if key is not None and key in self.keys:
                self.keys.rest(key, retry_after(answer_headers) if status == 429 else None)
                metrics.count(metrics.UPSTREAM_KEY_RESTS, name, str(status))

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
        idle_timeout: float | None = None,
        decode: bool = True,
    ) -> UpstreamResponse:
        """Send a request and return once the upstream's status and headers are in.

        The timeouts default to the upstream's: the first byte of the answer, then each read of its body
        (reasoning streams pause for minutes between events). With ``decode=False`` the body is read as
        the upstream encoded it (to be relayed byte for byte). ``path`` is OpenAI's; on Azure it is mapped
        to Azure's layout, and the body's model to its deployment.
        """
        if self.azure is not None:
            form_model = None
            if content is not None and not isinstance(content, bytes) and self.azure.reads_form(path):
                form_model, content, headers = await self._azure_form(content, headers)
            path, json, content = self._on_azure(path, json, content, form_model)
        if json is not None:
            content, headers = _as_json(json, headers)
        if self._basic is not None:
            headers = with_authorization(headers, self._basic)
        upload_failures: list[BaseException] = []
        if content is not None and not isinstance(content, bytes):
            content = _watched(content, upload_failures)
        # The path is already percent-encoded exactly once (see proxy.passthrough): sent as it is.
        query = "&".join(part for part in (self._query, params) if part)
        url = URL(self.url(path) + (f"?{query}" if query else ""), encoded=True)
        wait = first_byte_timeout or self.config.first_byte_timeout
        timeout = _timeouts(self.config.connect_timeout, wait)
        sent_at = time.monotonic()
        try:
            response = await self._client().request(method, url, headers=headers, data=content, timeout=timeout,
                                                     allow_redirects=False, auto_decompress=decode)
        except aiohttp.ConnectionTimeoutError:
            raise ConnectTimeout(self.url(path), self.config.connect_timeout) from None
        except aiohttp.ServerTimeoutError:
            raise FirstByteTimeout(wait) from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            if upload_failures:
                raise upload_failures[0] from None
            reason = _unreachable(exc).replace(str(url), self.url(path))  # an invalid URL's error quotes it
            raise UpstreamUnreachable(self.url(path), reason) from None
        self._observe(response.status, response.headers, headers, sent_at)
        return UpstreamResponse(response, decode, idle_timeout or self.config.idle_timeout,
                                f"{method} {self.url(path)}")

    async def _azure_form(self, content: AsyncIterator[bytes], headers: Mapping[str, str]
                          ) -> tuple[str | None, AsyncIterator[bytes], Mapping[str, str]]:
        """A multipart upload's model, read from the start of its body, and the body and headers to send: the form
        names the model's deployment (``deployments``) where the client named the model, its length told anew."""
        assert self.azure is not None
        named = {name.lower(): name for name in headers}
        boundary = form_boundary(headers.get(named.get("content-type", ""), ""))
        if boundary is None:
            return None, content, headers
        model, start, rest = await _start_of_form(content, boundary, "model", FORM_MODEL_LIMIT)
        deployment = self.azure.deployments.get(model) if model is not None else None
        if deployment is not None and deployment != model:
            renamed = with_form_value(start, boundary, "model", deployment)
            length = named.get("content-length")
            if length is not None and headers[length].isdigit():
                headers = {**headers, length: str(int(headers[length]) + len(renamed) - len(start))}
            start = renamed
        return model, _after(start, rest), headers

    def _on_azure(self, path: str, json: Any, content: bytes | AsyncIterator[bytes] | None,
                  form_model: str | None = None) -> tuple[str, Any, Any]:
        """The path, JSON and body of a request as Azure's layout calls them. A JSON body given as bytes (by
        pass-through) is read for its model only when the deployment matters, and rewritten only when it changes;
        a multipart upload's model (``form_model``) names the deployment of its path, its body is sent unchanged."""
        assert self.azure is not None
        given = json
        if given is None and isinstance(content, bytes) and (self.azure.deployments or
                                                             self.azure.deployment_path(path)):
            try:
                given = orjson.loads(content)
            except orjson.JSONDecodeError:
                given = None
        mapped = self.azure.mapped(given)
        model = mapped.get("model") if isinstance(mapped, dict) else None
        if model is None and form_model:  # named in a multipart form
            model = self.azure.deployments.get(form_model, form_model)
        path = self.azure.locate(path, model if isinstance(model, str) else None)
        if json is not None:
            return path, mapped, content
        return path, None, content if mapped is given else orjson.dumps(mapped)

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
        idle_timeout: float | None = None,
        decode: bool = True,
    ) -> tuple[UpstreamResponse, int]:
        """:meth:`send`, retried on 429/5xx and connection failures; returns the answer and the retry count.

        Only whole, re-sendable bodies are retried, and only before anything
        reached the client. ``Retry-After``/``retry-after-ms`` are honoured;
        otherwise the wait grows exponentially, with jitter. The last answer
        is returned (or the last error raised) when the attempts or the time
        budget run out.
        """
        if json is not None and self.azure is None:
            content, headers = _as_json(json, headers)
            json = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.retry_budget
        for attempt in range(1, self.config.max_attempts + 1):
            last = attempt == self.config.max_attempts
            try:
                response = await self.send(method, path, headers, content=content, json=json, params=params,
                                           first_byte_timeout=first_byte_timeout, idle_timeout=idle_timeout,
                                           decode=decode)
            except UpstreamError as exc:
                if last or not exc.retryable:
                    raise
                delay = self._backoff(attempt)
                if loop.time() + delay > deadline:
                    raise
                log.warning("upstream %s %s failed (%s); retrying in %.2f s", method, self.url(path), exc.message,
                            delay)
                await asyncio.sleep(delay)
                logs.current().retries += 1
                continue
            if last or response.status_code not in RETRYABLE_STATUSES:
                return response, attempt - 1
            # The refused key now rests; another key that is not resting can be tried at once.
            rekeyed = self.rekey(headers)
            fresh_key = response.status_code == 429 and self.sent_key(rekeyed) != self.sent_key(headers) \
                and self.sent_key(rekeyed) not in self.keys.resting()
            delay = retry_after(response.headers)
            delay = 0.0 if fresh_key else self._backoff(attempt) if delay is None else delay
            if loop.time() + delay > deadline:
                return response, attempt - 1
            log.warning("upstream %s %s answered %d; retrying in %.2f s", method, self.url(path),
                        response.status_code, delay)
            response.close()
            await asyncio.sleep(delay)
            logs.current().retries += 1
            headers = rekeyed
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.config.backoff_max, self.config.backoff_initial * 2 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)


async def _watched(chunks: AsyncIterator[bytes], failures: list[BaseException]) -> AsyncIterator[bytes]:
    """An upload body whose own failure (say, the client's body growing past the limit) is kept to be reported.

    The HTTP client sends the body in a task of its own and reports any failure there as a cut connection.
    """
    try:
        async for chunk in chunks:
            yield chunk
    except Exception as exc:
        failures.append(exc)
        raise


async def _start_of_form(chunks: AsyncIterator[bytes], boundary: str, name: str,
                         limit: int) -> tuple[str | None, bytes, AsyncIterator[bytes]]:
    """The text field ``name`` of a multipart body being streamed, if its start holds it: the start is read up to
    the field (or the body's end, or about ``limit`` bytes); and that start, and the rest of the body as it comes."""
    rest = aiter(chunks)
    start = bytearray()
    while True:
        value, whole = form_value(bytes(start), boundary, name)
        if value is not None or whole or len(start) > limit:
            return value, bytes(start), rest
        try:
            start += await anext(rest)
        except StopAsyncIteration:
            return None, bytes(start), rest


async def _after(start: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``start``, then what ``rest`` still yields."""
    if start:
        yield start
    async for chunk in rest:
        yield chunk


async def read_json(response: UpstreamResponse, limit: int = ERROR_BODY_LIMIT,
                    whole: bool = False) -> tuple[Any, bytes]:
    """Read a small body (error or non-streamed answer) and parse it if it is JSON. With ``whole``, a body past
    ``limit`` is a 502 (:meth:`InvalidUpstreamAnswer.too_large`) instead of its start; else
    :attr:`UpstreamResponse.cut` says so."""
    body = await response.read(limit)
    if whole and response.cut:
        raise InvalidUpstreamAnswer.too_large(limit)
    try:
        return orjson.loads(body), body
    except orjson.JSONDecodeError:
        return None, body


async def read_answer(response: UpstreamResponse, limit: int, what: str) -> tuple[dict[str, Any], bytes]:
    """A whole non-streamed answer, which must be a JSON object (``what`` it should have been names it in the
    502 when it is not), and its bytes."""
    payload, raw = await read_json(response, limit, whole=True)
    if not isinstance(payload, dict):
        snippet = raw[:200].decode("utf-8", "replace")
        raise InvalidUpstreamAnswer(f"The upstream answered with a body that is not {what}: {snippet!r}")
    return payload, raw


def upstream_error(response: UpstreamResponse, payload: Any, raw: bytes,
                   status: int | None = None) -> UpstreamStatusError:
    """An upstream error answer, relayed with its status (or ``status``), OpenAI-style body, retry hints and details."""
    if response.status_code == 404 and no_such_path(payload):
        return wrong_path(response, raw)
    headers = {name: response.headers[name] for name in _RETRY_HINTS if name in response.headers}
    return UpstreamStatusError.of_answer(status or response.status_code, payload, raw,
                                         headers | upstream_details(response))


def no_such_path(payload: Any) -> bool:
    """Whether an upstream's 404 says that its URL leads nowhere (rather than that a model or object is not
    there): a body that is no JSON error, or OpenAI's ``Invalid URL (POST /v1/...)``."""
    inner = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(inner, dict):
        return True
    message = inner.get("message")
    return isinstance(message, str) and message.startswith("Invalid URL")


def is_web_page_404(response: UpstreamResponse) -> bool:
    """A 404 that is no JSON: a web server's page (the base URL leads elsewhere), not an API's error."""
    return response.status_code == 404 and "json" not in response.headers.get("content-type", "")


def wrong_path(response: UpstreamResponse, raw: bytes) -> UpstreamNotFound:
    """A 404 for a URL that leads nowhere, with what the upstream said."""
    return UpstreamNotFound(response.called, " ".join(raw[:200].decode("utf-8", "replace").split()),
                            upstream_details(response))


def upstream_details(response: UpstreamResponse) -> dict[str, str]:
    """What the upstream's answer says about the request and the caller's standing, as headers of the client's
    answer: its request id, rate limits and processing time, their bytes unchanged (read as Latin-1).

    The request id is named as the upstream names it: the outermost layer (:mod:`proxy.middleware`) returns it
    as ``x-upstream-request-id`` and logs it, for relayed and translated answers alike.
    """
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in response.raw_headers
            if name.lower() in _DETAILS or name[:12].lower() == b"x-ratelimit-"}


_DETAILS = frozenset((b"x-request-id", b"openai-processing-ms"))


_RETRY_HINTS = ("retry-after", "retry-after-ms")


def relayed_headers(response: UpstreamResponse) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers that may reach the client (raw pairs keep repeated ones apart)."""
    return [(name, value) for name, value in response.raw_headers if name.lower() not in _NOT_RELAYED]


RESPONSE_HOP_BY_HOP = HOP_BY_HOP - {"content-length"}
# The HTTP server (uvicorn) writes its own on every answer: the upstream's would make a second of each.
_SERVERS_OWN = frozenset(("date", "server"))
_NOT_RELAYED = frozenset(name.encode("latin-1") for name in RESPONSE_HOP_BY_HOP | _SERVERS_OWN)  # raw names


def _unreachable(exc: Exception) -> str:
    """Why a connection to the upstream failed, in the proxy's words: refused, timed out, or no such host name."""
    cause = getattr(exc, "os_error", None) or exc  # aiohttp's connection errors wrap the system's
    if isinstance(exc, aiohttp.ClientConnectorDNSError) or isinstance(cause, socket.gaierror):
        return "its host name was not found (DNS)"
    if isinstance(cause, ConnectionRefusedError):
        return "the connection was refused (is it running, on that port?)"
    if isinstance(cause, TimeoutError):
        return "connecting timed out"
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientConnectorCertificateError):
        return f"the TLS handshake failed ({_describe(cause)})"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror[:1].lower() + cause.strerror[1:]
    return _describe(exc)


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
