"""The one place that builds OpenAI-style error bodies.

Every failure a client sees, whether raised by the proxy or relayed from the
upstream, has the shape ``{"error": {"message", "type", "param", "code"}}`` so
that SDKs and chat apps show a readable message instead of a parse failure.
"""

from __future__ import annotations

import json
import re
from typing import Any


def error_body(
    message: str,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | int | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class ProxyError(Exception):
    """An error with the HTTP status and body the client should receive."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


class InvalidRequest(ProxyError):
    """The client's request cannot be served as sent (HTTP 400)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(400, message, "invalid_request_error", param, code)


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
