"""The proxy's errors, as types, and the one place that builds OpenAI-style error bodies.

Every failure a client sees, whether raised by the proxy or relayed from the
upstream, has the shape ``{"error": {"message", "type", "param", "code"}}`` so
that SDKs and chat apps show a readable message instead of a parse failure.

The kinds form a small hierarchy (as httpx's ``ConnectTimeout < TimeoutException
< TransportError``)::

    ProxyError                     status, message, type, param, code, headers
    ├── ClientError                the client's request cannot be served (400, 403, 404, 413, 415)
    │   ├── InvalidRequest         400
    │   └── NoUpstreamForModel     404 model_not_found
    ├── ClientGone                 499, the client left
    └── UpstreamError              the upstream failed
        ├── UpstreamUnreachable    502: refused, no such host, reset (retried)
        ├── UpstreamTimeout        504
        │   ├── ConnectTimeout     (retried)
        │   ├── FirstByteTimeout   (not retried: the upstream may be working, and paid, already)
        │   └── IdleTimeout        mid-body, also an UpstreamBroken
        ├── UpstreamBroken         502: the connection failed mid-body
        ├── InvalidUpstreamAnswer  502: not JSON, or larger than the proxy reads
        └── UpstreamStatusError    an upstream error answer, with its status and parsed body
            ├── UpstreamRefusedParam   a 400 naming a parameter
            └── UpstreamNotFound       a 404 for a URL that leads nowhere

Each kind knows whether sending the request again may help (``retryable``) and
whether a fallback model may serve it (``warrants_fallback``); nobody compares
codes or words. The transport raises them with facts (the URL as it may be shown,
the reason, the seconds); :func:`error_response` turns any error into the answer.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.responses import Response

from . import logs

log = logging.getLogger("proxy")

# Upstream statuses that are worth another try (and, failing that, another model).
RETRYABLE_STATUSES = frozenset((429, 500, 502, 503, 504))


def error_body(
    message: str,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | int | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class ProxyError(Exception):
    """An error with the HTTP status and body the client should receive.

    Built as it is (not a subclass) for failures the upstream reports inside an answer (``response.failed``):
    what they warrant is read from their status and words, as the upstream gave nothing more.
    """

    retryable = False  # whether the same request, sent again, may succeed

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    @property
    def warrants_fallback(self) -> bool:
        """An overload, an outage, or a model that is not there: another model may serve the request."""
        if self.status in RETRYABLE_STATUSES:
            return True
        text = f"{self.code} {self.message}".lower()
        return self.status in (400, 404) and ("model_not_found" in text or "does not exist" in text
                                              or "overloaded" in text)

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)

    def replace(self, **changes: Any) -> ProxyError:
        """A new error of the same kind with some fields changed (``param``, ``message``, ``headers``)."""
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__, **changes)
        new.args = (new.message,)
        return new


class ClientError(ProxyError):
    """The client's request cannot be served as sent; another model would not change that."""

    warrants_fallback = False

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(status, message, "invalid_request_error", param, code)


class InvalidRequest(ClientError):
    """The client's request cannot be served as sent (HTTP 400)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(400, message, param, code)


class NoUpstreamForModel(ClientError):
    """No upstream of this proxy serves the model (404, in OpenAI's words): a fallback model may be served."""

    warrants_fallback = True

    def __init__(self, model: str) -> None:
        super().__init__(404, f"The model `{model}` does not exist or you do not have access to it "
                              "(no upstream of this proxy serves it).", "model", "model_not_found")


class ClientGone(ProxyError):
    """The client closed the connection before its answer was complete (nginx's 499)."""

    warrants_fallback = False

    def __init__(self) -> None:
        super().__init__(499, "The client closed the connection.", "client_disconnected")


class UpstreamError(ProxyError):
    """The upstream failed to answer, or answered with an error."""


class UpstreamUnreachable(UpstreamError):
    """No connection to the upstream: refused, no such host name, reset, a failed TLS handshake."""

    retryable = True
    warrants_fallback = True

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(502, f"Could not reach the upstream at {url}: {reason}.", "upstream_error",
                         code="upstream_unreachable")
        self.url, self.reason = url, reason


class UpstreamTimeout(UpstreamError):
    """The upstream took longer than a timeout allows (504)."""

    warrants_fallback = True


class ConnectTimeout(UpstreamTimeout):
    retryable = True

    def __init__(self, url: str, seconds: float) -> None:
        super().__init__(504, f"Could not reach the upstream at {url}: connecting timed out after {seconds:g} s "
                              "(connect timeout).", "upstream_timeout", code="connect_timeout")
        self.url, self.seconds = url, seconds


class FirstByteTimeout(UpstreamTimeout):
    """Not retried: the upstream may still be working, and paid, on the first try."""

    def __init__(self, seconds: float) -> None:
        super().__init__(504, f"The upstream sent no response within {seconds:g} s (first-byte timeout).",
                         "upstream_timeout", code="first_byte_timeout")
        self.seconds = seconds


class UpstreamBroken(UpstreamError):
    """The upstream connection failed while the body of an answer was being read."""

    warrants_fallback = True

    def __init__(self, reason: str) -> None:
        super().__init__(502, f"The upstream connection failed mid-answer: {reason}", "upstream_error",
                         code="upstream_disconnected")
        self.reason = reason


class IdleTimeout(UpstreamTimeout, UpstreamBroken):
    """The upstream sent nothing for the idle timeout while the body of an answer was being read."""

    def __init__(self, seconds: float) -> None:
        ProxyError.__init__(self, 504, f"The upstream sent nothing for {seconds:g} s (idle timeout).",
                            "upstream_timeout", code="idle_timeout")
        self.reason = f"no data for {seconds:g} s"
        self.seconds = seconds


class InvalidUpstreamAnswer(UpstreamError):
    """An upstream answer the proxy cannot use: not the JSON it should be, or larger than the proxy reads."""

    warrants_fallback = True

    def __init__(self, message: str) -> None:
        super().__init__(502, message, "upstream_error", code="invalid_upstream_response")

    @classmethod
    def too_large(cls, limit: int) -> InvalidUpstreamAnswer:
        """An answer (or one event of it) larger than the proxy reads: a 502, not a truncated answer."""
        return cls(f"The upstream's answer is larger than the proxy reads ({limit:,} bytes).")


class UpstreamStatusError(UpstreamError):
    """An upstream's error answer: its status (or the one the proxy gives it), OpenAI-style fields, the parsed
    ``payload``, and the headers the client gets with it (retry hints, the upstream's request id)."""

    payload: Any = None

    @classmethod
    def of_answer(cls, status: int, payload: Any, raw: bytes, headers: Mapping[str, str]) -> UpstreamStatusError:
        snippet = raw[:300].decode("utf-8", "replace").strip()
        fallback = f"The upstream answered HTTP {status}" + (f": {snippet}" if snippet else ".")
        fields = normalize_error(payload, fallback)["error"]
        kind = UpstreamRefusedParam if status == 400 and fields["param"] else UpstreamStatusError
        error = kind(status, fields["message"], fields["type"], fields["param"], fields["code"], headers)
        error.payload = payload
        return error

    def body(self) -> dict[str, Any]:
        """OpenAI's fields, and Azure's account of a prompt its content filter blocked, as its chat endpoint gives it
        (``innererror.content_filter_result``), from either API's answer."""
        body = super().body()
        if self.code == "content_filter":
            body["error"].update(azure_filter_details(self.payload))
        return body


def azure_filter_details(payload: Any) -> dict[str, Any]:
    """Azure's details of a filtered prompt in its chat shape: ``innererror`` as its chat endpoint sends it, or made
    from the v1 API's ``inner_error`` (its REST reference's name) or the Responses API's ``content_filters`` (the
    prompt's entry)."""
    inner = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(inner, dict):
        return {}
    details: dict[str, Any] = {"status": inner["status"]} if isinstance(inner.get("status"), int) else {}
    if isinstance(inner.get("innererror"), dict):
        return details | {"innererror": inner["innererror"]}
    named = inner.get("inner_error")
    if isinstance(named, dict):
        innererror = {"code": named.get("code") or "ResponsibleAIPolicyViolation", **{
            key: value for key, value in named.items() if key not in ("code", *_FILTER_RESULT_NAMES)}}
        results = next((named[key] for key in _FILTER_RESULT_NAMES if isinstance(named.get(key), dict)), None)
        if results is not None:
            innererror["content_filter_result"] = results
        return details | {"innererror": innererror}
    filters = inner.get("content_filters")
    prompt = next((entry for entry in filters if isinstance(entry, dict) and entry.get("source_type") == "prompt"),
                  None) if isinstance(filters, list) else None
    if prompt is not None and isinstance(prompt.get("content_filter_results"), dict):
        details["innererror"] = {"code": "ResponsibleAIPolicyViolation",
                                 "content_filter_result": prompt["content_filter_results"]}
    return details


_FILTER_RESULT_NAMES = ("content_filter_result", "content_filter_results")  # as Azure's bodies and its reference


class UpstreamRefusedParam(UpstreamStatusError):
    """A 400 naming a parameter of the request the proxy sent: maybe one the proxy added, or the client's under
    another name (see ``proxy.translate.name_chat_params``)."""


class UpstreamNotFound(UpstreamStatusError):
    """A 404 for a URL that leads nowhere: which URL, and the usual cause (a base URL without its ``/v1``)."""

    def __init__(self, called: str, said: str, headers: Mapping[str, str]) -> None:
        super().__init__(404, f"The upstream answered HTTP 404 to {called}" + (f" ({said})" if said else "") +
                         ". Check the upstream's base URL (upstream.base_url, or OPENAI_BASE_URL): OpenAI-compatible "
                         "servers serve the API under a path, most often /v1, as in http://host:port/v1.",
                         "invalid_request_error", code="upstream_not_found", headers=headers)


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json")


def error_response(exc: Exception) -> Response:
    """The answer to a request that failed: OpenAI-style, with the error's status (500 for a bug of ours)."""
    if isinstance(exc, ProxyError):
        logs.current().error = str(exc.code or exc.type)
        return json_response(exc.body(), exc.status, exc.headers)
    if isinstance(exc, HTTPException):
        return json_response(error_body(str(exc.detail), "invalid_request_error"), exc.status_code)
    log.error("unexpected error while serving a request", exc_info=exc)
    return json_response(error_body("The proxy failed unexpectedly while handling this request.", "server_error",
                                    code="proxy_error"), 500)


def normalize_error(payload: Any, fallback_message: str, fallback_type: str = "upstream_error") -> dict[str, Any]:
    """Coerce whatever an upstream called an error into the OpenAI shape.

    Upstreams send ``{"error": {...}}``, a flat ``{"message", "code"}``, a bare
    string, or a non-JSON page; the client always gets a string ``message``.
    """
    inner = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(inner, dict):
        message = inner.get("message")
        if not isinstance(message, str) or not message:
            message = fallback_message if message is None else str(message)
        etype = inner.get("type")
        param = inner.get("param")
        code = inner.get("code")
        return error_body(
            message,
            etype if isinstance(etype, str) and etype else fallback_type,
            param if isinstance(param, str) else None,
            # OpenAI's codes are strings; some gateways send numbers.
            str(code) if isinstance(code, int) and not isinstance(code, bool) else code if isinstance(code, str) else None,
        )
    if isinstance(inner, str) and inner:
        return error_body(inner, fallback_type)
    return error_body(fallback_message, fallback_type)


def without_name(text: str, name: str) -> str:
    """``text`` without ``name`` as it is, or JSON-escaped, in any case.

    Upstream errors echo names the client chose ("The model `...` does not exist"): what the
    name says must not be read as what the upstream says.
    """
    if not name:
        return text
    spellings = {name, json.dumps(name)[1:-1], json.dumps(name, ensure_ascii=False)[1:-1]}
    pattern = "|".join(re.escape(spelling) for spelling in sorted(spellings, key=len, reverse=True))
    return re.sub(pattern, " ", text, flags=re.IGNORECASE)
