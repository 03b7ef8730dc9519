"""Forwarding of everything that is not translated: bytes in, bytes out, streamed.

Paths are normalised here, once: whatever prefix a client put in front of the
endpoint (``/v1/v1/...``, ``//...``), the upstream gets ``{base_url}/<endpoint>``
and no request can choose another host or climb out of the base path.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope

from . import logs, origins
from .config import ModelSettings
from .errors import ClientError, ClientGone, InvalidRequest, UpstreamBroken
from .translate import EventHolder, closing_frame
from .streaming import AnswerCut, StreamedResponse
from .upstream import Upstream, UpstreamResponse, relayed_headers

log = logging.getLogger("proxy.passthrough")


def raw_path(scope: Scope) -> str:
    """The request's path as the client sent it, still percent-encoded (ASGI's ``raw_path``, which uvicorn gives).

    The server's decoded ``path`` would turn an encoded ``/`` into a separator: ``file-abc%2Fcontent`` must stay
    one segment, for :func:`upstream_path` to refuse. (uvicorn refuses a request target that is not ASCII.)
    """
    return scope["raw_path"].decode("latin-1")


def upstream_path(client_path: str) -> str:
    """``/v1/v1//embeddings`` -> ``/embeddings``, each segment percent-encoded exactly once.

    ``client_path`` is the path as sent, still encoded (:func:`raw_path`).
    Segments are decoded until nothing changes, so an upstream that decodes once more than the proxy (or
    treats ``\\`` as a separator) still cannot see a ``.``/``..`` segment: those, and encoded slashes or
    backslashes, are refused.
    """
    segments = [_decoded(segment) for segment in client_path.split("/") if segment]
    if any(segment in (".", "..") or "/" in segment or "\\" in segment for segment in segments):
        raise InvalidRequest("The request path may not contain '.' or '..' segments or encoded slashes.",
                             code="invalid_path")
    while segments and segments[0] == "v1":
        segments.pop(0)
    return "/" + "/".join(quote(segment, safe=_PATH_SAFE) for segment in segments)


_PATH_SAFE = "!$&'()*+,;=:@"  # RFC 3986 sub-delims, ':' and '@'; unreserved characters are always kept


def _decoded(segment: str) -> str:
    for _ in range(_MAX_DECODINGS):
        segment, before = unquote(segment), segment
        if segment == before:
            return segment
    raise InvalidRequest("The request path is percent-encoded too many times.", code="invalid_path")


_MAX_DECODINGS = 8


async def limited_body(receive: Receive, limit: int) -> AsyncIterator[bytes]:
    """The request body as it arrives, refused once it grows past ``limit``; :class:`ClientGone` if the client leaves."""
    size = 0
    more = True
    while more:
        chunk, more = _body_part(await receive(), size, limit)
        size += len(chunk)
        if chunk:
            yield chunk


def _body_part(message: Message, size: int, limit: int) -> tuple[bytes, bool]:
    """The next piece of the request body after ``size`` bytes, and whether more follow."""
    if message["type"] == "http.disconnect":
        raise ClientGone()
    chunk = message.get("body", b"")
    if size + len(chunk) > limit:
        raise body_too_large(limit)
    return chunk, message.get("more_body", False)


def header(headers: Mapping[str, str], name: str, default: str = "") -> str:
    """A request header's value, or ``default``; asked with ``in`` first, since Starlette's ``get()`` raises and
    catches a KeyError for every header that is missing."""
    return headers[name] if name in headers else default


def first_headers(request: Request) -> dict[str, str]:
    """Each request header's first value, by its lowercase name (as ``request.headers[name]``), made once per
    request from the ASGI scope: Starlette's ``Headers`` looks each name up by a loop in Python. Forwarding
    uses ``request.headers``, which keeps repeated headers."""
    scope = request.scope
    found = scope.get(_FIRST_HEADERS)
    if found is None:
        found = scope[_FIRST_HEADERS] = {name.decode("latin-1"): value.decode("latin-1")
                                         for name, value in reversed(scope["headers"])}
    return found


_FIRST_HEADERS = "proxy.first_headers"  # an ASGI scope extension key


def declared_length(request: Request, limit: int) -> str:
    """The client's Content-Length ("" if none), refused at once when it already says the body is too large."""
    declared = header(first_headers(request), "content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise body_too_large(limit)
    return declared


def has_body(request: Request) -> bool:
    """Whether the client sends a body: one declared by its length, or a chunked one (RFC 9112 section 6.3)."""
    headers = first_headers(request)
    return header(headers, "content-length", "0") != "0" or "transfer-encoding" in headers


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, refused past ``limit``: read in a plain loop, since an async generator costs
    every request more (the event loop keeps track of each one)."""
    declared_length(request, limit)
    parts = []
    size = 0
    more = True
    while more:
        chunk, more = _body_part(await request.receive(), size, limit)
        size += len(chunk)
        parts.append(chunk)
    return b"".join(parts)


def body_too_large(limit: int) -> ClientError:
    return ClientError(413, f"Request body too large: the limit is {limit} bytes.", code="request_too_large")


async def open_forward(upstream: Upstream, request: Request, path: str, body: bytes | None, limit: int, *,
                       settings: ModelSettings | None = None) -> UpstreamResponse:
    """Send the client's request on to the upstream, unchanged but for credentials and hop-by-hop headers.

    The timeouts are the model's ``settings`` (when the proxy knows the model), else the upstream's.
    """
    first_byte_timeout = settings.first_byte_timeout if settings is not None else None
    idle_timeout = settings.idle_timeout if settings is not None else None
    headers = upstream.headers(request.headers.raw, keep_encoding=True)
    # The answer is relayed still encoded: without this, the HTTP client's own default would be sent.
    headers.setdefault("accept-encoding", "identity")
    if body is None and has_body(request):  # whatever the method: a GET may carry a body too
        declared = declared_length(request, limit)
        if declared:
            headers["content-length"] = declared  # keeps uploads un-chunked, as sent
        # A body streamed through cannot be sent twice: no retries.
        return await upstream.send(request.method, path, headers, content=limited_body(request.receive, limit),
                                   params=query(request), first_byte_timeout=first_byte_timeout,
                                   idle_timeout=idle_timeout, decode=False)
    response, _ = await upstream.send_retrying(request.method, path, headers, content=body,
                                               params=query(request), first_byte_timeout=first_byte_timeout,
                                               idle_timeout=idle_timeout, decode=False)
    return response


def query(request: Request) -> str | None:
    """The request's query string, as sent (Starlette's ``request.url`` would parse a whole URL to find it)."""
    return request.scope["query_string"].decode() or None


def relay_streaming(response: UpstreamResponse,
                    extra_headers: dict[str, str] | None = None) -> StreamedResponse:
    """Stream an upstream answer to the client byte for byte (still compressed, if it was)."""
    relayed = StreamedResponse(_relayed_body(response, _can_end_with_event(response)), status_code=response.status_code,
                               length=_length(response))
    relayed.raw_headers = origins.for_client(relayed_headers(response)) + [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in (extra_headers or {}).items()]
    return relayed


def relay_read(response: UpstreamResponse, body: bytes, media_type: str | None = None) -> Response:
    """An upstream answer whose body the proxy read (and decoded, or rewrote), with the upstream's headers."""
    replayed = Response(body, status_code=response.status_code)
    replayed.raw_headers = [(name, value) for name, value in origins.for_client(relayed_headers(response))
                            if name.lower() not in (b"content-length", b"content-encoding", b"content-type")]
    replayed.raw_headers += [(b"content-length", str(len(body)).encode()),
                             (b"content-type", (media_type or response.headers.get("content-type", "")).encode())]
    return replayed


def _length(response: UpstreamResponse) -> int | None:
    """The body's length as the upstream declared it (and the client is told), if it did."""
    declared = response.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else None


def _can_end_with_event(response: UpstreamResponse) -> bool:
    """Whether an error event can follow the relayed bytes: an event stream, neither compressed nor of declared length."""
    headers = response.headers
    return headers.get("content-type", "").startswith("text/event-stream") and "content-length" not in headers \
        and headers.get("content-encoding", "identity").strip().lower() == "identity"


# An event stream's unfinished last event is held back until it is complete, so that a cut leaves no event
# half-sent (clients would fail on its JSON before they read the error event); a larger one goes out as it comes.
HELD_EVENT_LIMIT = 1024 * 1024


async def _relayed_body(response: UpstreamResponse, event_stream: bool) -> AsyncIterator[bytes]:
    """The upstream's body as it arrives; one that breaks off (cut, or silent for the idle timeout) is reported.

    The reason is logged and goes to the request's log line; an event stream then ends with an error event,
    so clients report an error instead of waiting or seeing a protocol error. Any other body is left cut
    (:class:`AnswerCut`).
    """
    last = b""
    relayed = 0
    holder = EventHolder(HELD_EVENT_LIMIT) if event_stream else None
    try:
        async for chunk in response.chunks():
            if holder is not None:
                chunk = holder.feed(chunk)
                if not chunk:
                    continue
            relayed += len(chunk)
            last = chunk
            yield chunk
        if holder:  # the stream ended without a blank line: relayed as it came
            yield holder.flush()
    except UpstreamBroken as error:
        record = logs.current()
        record.error = str(error.code)
        dropped = f" ({len(holder)} bytes of an unfinished event left out)" if holder else ""
        log.warning("the upstream's answer to %s %s broke off after %d bytes%s: %s", record.method, record.path,
                    relayed, dropped, error.message, extra={"fields": {"request_id": record.request_id}})
        if not event_stream:
            raise AnswerCut() from None
        yield closing_frame(last, error.body())
    finally:
        response.close()
