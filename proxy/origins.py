"""What web pages may do with the proxy: which origins it serves, and which bodies it reads.

A browser spends the operator's key as readily as any client, and loopback is no
boundary against a page open on the same machine. So a request that carries an
``Origin`` header (browsers send one with every cross-site request, and with
every POST) is served only when that origin is in ``server.cors_origins``;
clients that are not browsers send none and are unaffected. CORS headers are
the proxy's alone: the upstream's ``Access-Control-*`` headers never reach a
client, nor its cookies (the proxy never forwards a client's ``Cookie``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import ClientError


class Origins:
    """The origins allowed; the outermost middleware (:mod:`proxy.middleware`) refuses (403) a request whose
    ``Origin`` is not one of them, before anything else reads it."""

    __slots__ = ("allowed", "any_origin")

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed)
        self.any_origin = "*" in self.allowed

    def refusal(self, origin: bytes) -> ClientError | None:
        """The error for a request from ``origin`` (an ``Origin`` header's value), None if it is allowed."""
        if self.any_origin or origin.decode("latin-1") in self.allowed:
            return None
        return origin_refused(origin.decode("latin-1"))


def origin_refused(origin: str) -> ClientError:
    return ClientError(403, f"Requests from web pages at origin {origin[:100]!r} are not allowed. To let a browser "
                           "app at that origin use this proxy, add the origin to server.cors_origins.",
                       code="origin_not_allowed")


def for_client(upstream_headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers without its CORS headers and cookies."""
    return [(name, value) for name, value in upstream_headers
            if not (name[:15].lower() == b"access-control-" or name.lower() == b"set-cookie")]


# Body types a web page can send without asking first (a CORS "simple request") that no API endpoint takes; the
# third such type, multipart/form-data, is how files are uploaded.
_PAGE_FORMS = frozenset(("text/plain", "application/x-www-form-urlencoded"))


def media_type(headers: Mapping[str, str]) -> str:
    """The request's media type, without parameters, in lower case ("" when there is no Content-Type)."""
    value = headers["content-type"] if "content-type" in headers else ""
    return value.split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def require_json(headers: Mapping[str, str]) -> None:
    """A JSON endpoint's body: declared as JSON, or not declared at all (scripts that send JSON without saying so)."""
    media = media_type(headers)
    if media and not is_json(media):
        raise _unsupported(f"This endpoint takes a JSON body, not {media[:60]}: send it with {_JSON_HINT}.")


def refuse_page_forms(headers: Mapping[str, str]) -> None:
    """A pass-through body: anything but the plain-text and form types a web page can send unasked.

    Multipart bodies go through: files and audio are uploaded that way.
    """
    media = media_type(headers)
    if media in _PAGE_FORMS:
        raise _unsupported(f"The proxy forwards no {media} bodies: send JSON with {_JSON_HINT}, "
                           "or files as multipart/form-data.")


_JSON_HINT = "'Content-Type: application/json' (with curl: -H 'Content-Type: application/json')"


def _unsupported(message: str) -> ClientError:
    return ClientError(415, message, code="unsupported_content_type")
