"""Whether an upstream's error answer to ``POST /v1/responses`` means "this model speaks only chat". Pure.

A server without the Responses API answers 404 or 405 (``{"detail": "Not Found"}``, llama.cpp's ``File Not
Found``); a gateway answers 400 saying the model or the endpoint is not supported. An error about something
else (an unknown ``previous_response_id``, a model that does not exist, a bad parameter) is relayed: chat
would not serve that request either.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ...errors import without_name

# A gateway's 400 for a model or endpoint it does not serve through the Responses API.
_NOT_SUPPORTED = re.compile(r"(?:not|n't) (?:supported|support|available|enabled)|unsupported"
                            r"|no such (?:route|endpoint)|unknown (?:route|endpoint|url|path)", re.IGNORECASE | re.ASCII)
# What a 400 must be about: the model or the endpoint, not a parameter of the request.
_SUBJECT = re.compile(r"\bmodel\b|endpoint|responses|route|\burl\b|\bpath\b", re.IGNORECASE | re.ASCII)
_PARAMETER = re.compile(r"parameter|argument|\bfield\b|\bvalue\b", re.IGNORECASE | re.ASCII)
# Codes that name what is missing when it is not the endpoint.
_OTHER_GAPS = frozenset(("model_not_found", "previous_response_not_found", "not_found_item"))


def says_chat_only(status: int, payload: Any, raw: str, request: dict[str, Any]) -> bool:
    """True when the upstream's error answer to the Responses ``request`` means "serve it through chat".

    404 and 405 count unless the error names a parameter other than the model, or a code for another gap. A 400
    counts when the upstream's own words say the model or endpoint (not a parameter) is not supported: the
    model's name is left out of the message, and words found in the rest of the request (which upstreams echo)
    are not read as the upstream's.
    """
    if status not in (400, 404, 405):
        return False
    inner = payload.get("error", payload) if isinstance(payload, dict) else None
    text = raw
    if isinstance(inner, dict):
        param, code = inner.get("param"), inner.get("code")
        if (param and param != "model") or code in _OTHER_GAPS:
            return False
        message = inner.get("message", inner.get("detail"))
        if isinstance(message, str):
            text = message
    if status != 400:
        return True
    model = request.get("model")
    name = model if isinstance(model, str) else ""
    text = without_name(text, name)
    if _PARAMETER.search(text) or not (_SUBJECT.search(text) or (isinstance(inner, dict) and inner.get("param"))):
        return False
    written: str | None = None
    for match in _NOT_SUPPORTED.finditer(text):
        if written is None:
            rest = orjson.dumps({key: value for key, value in request.items() if key != "model"}).decode()
            written = without_name(rest, name).lower()
        if match.group().lower() not in written:
            return True
    return False
