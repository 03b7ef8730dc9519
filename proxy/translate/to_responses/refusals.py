"""What an upstream's refusal means for this direction. Pure: no I/O.

A Responses upstream may refuse a feature the proxy added to the client's
request (background mode, streaming, a reasoning summary, encrypted reasoning):
its 400 is recognised here, and the request is sent again without the feature.
A chat upstream may answer that a model is served by the Responses API only:
then the request is translated after all.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ...errors import ProxyError, without_name
from .continuity import ENCRYPTED_REASONING


# OpenAI answers 404 "This model is only supported in v1/responses and not in v1/chat/completions." with
# ``param: "model"``; gateways reword it (sub2api: "/v1/chat/completions is not supported. Please use
# /v1/responses."), so match loosely on the text. Azure OpenAI answers 400
# ``OperationNotSupported`` "The chatCompletion operation does not work with the specified model, o3-pro. ...".
_RESPONSES_ONLY = re.compile(
    r"only supported in (?:/?v1/)?responses|not supported (?:in|on|with|by) (?:the )?(?:/?v1/)?chat[/ _]?completions"
    r"|use the responses api|only available (?:in|via|through) the responses api|please use /?v1/responses"
    r"|the chatcompletion operation does not work with the specified model",
    re.IGNORECASE | re.ASCII,
)


def says_responses_only(payload: Any, raw: str, request: dict[str, Any]) -> bool:
    """True when an upstream's error answer to the chat ``request`` means "call this model through /v1/responses".

    Only an error about the model counts: one naming another parameter does not. And only the upstream's own
    words count, never what it repeats of the request: the model's name is left out of the message, and
    wording found anywhere else in the request (a key or a value, which an upstream echoes as in
    "Unrecognized request argument supplied: ...") is not read as the upstream's. ``payload`` is the error
    body parsed (None if it is not JSON), ``raw`` its text.
    """
    inner = payload.get("error", payload) if isinstance(payload, dict) else None
    text = raw
    if isinstance(inner, dict):
        param = inner.get("param")
        if param and param != "model":
            return False
        message = inner.get("message")
        if isinstance(message, str):
            text = message
    model = request.get("model")
    name = model if isinstance(model, str) else ""
    text = without_name(text, name)
    written: str | None = None  # what the client wrote besides the model, made only when needed
    for match in _RESPONSES_ONLY.finditer(text):
        if written is None:  # the name is left out here too: a key "only supported in<model>responses" is no gap
            rest = orjson.dumps({key: value for key, value in request.items() if key != "model"}).decode()
            written = without_name(rest, name).lower()
        if match.group().lower() not in written:
            return True
    return False


def _refusal_wording(param: str) -> re.Pattern[str]:
    """How upstreams that leave ``param`` empty word a refused parameter: OpenAI's "Unsupported parameter: 'x' is
    not supported with this model." and "Unknown parameter: 'x'.", Azure's "Unrecognized request argument
    supplied: x", serde's "unknown field `x`", "'x' is not allowed". ``x`` is the exact name, not a part of one,
    and a word in a sentence ("the stream is not supported") is no parameter unless quoted or called one."""
    name = re.escape(param)
    loose = rf"['\"`]?(?<![\w.]){name}(?![\w\[]|\.\w)['\"`]?"
    refused = r" (?:is|are) (?:not (?:supported|allowed|permitted|recognized)|unsupported|unknown)"
    return re.compile(
        rf"\b(?:unsupported|unknown|unrecognized)(?: request)? (?:parameter|argument|field)(?: supplied)?:? {loose}"
        rf"|\b(?:parameter|argument|field) {loose}{refused}|['\"`]{name}['\"`]{refused}", re.IGNORECASE)


_REFUSALS = {param: _refusal_wording(param) for param in ("background", "stream", "reasoning.summary", "include")}


def refused_feature(error: ProxyError, body: dict[str, Any], model: str, *, background: bool, stream: bool,
                    summary_added: bool) -> str | None:
    """The Responses parameter of a feature the proxy added that ``error``, the upstream's answer to ``body``
    sent for ``model``, refuses: ``background``, ``stream``, ``reasoning.summary`` (only when the proxy added
    it) or ``include`` (encrypted reasoning); None when the error is about something else."""
    message = without_name(error.message, model)  # the client chose the name: what it says is no refusal
    if background and _refuses(error, message, "background"):
        return "background"
    if stream and _refuses(error, message, "stream"):
        return "stream"
    if summary_added and "summary" in (body.get("reasoning") or {}) and _refuses(error, message, "reasoning.summary"):
        return "reasoning.summary"
    if (_carries_encrypted_reasoning(body) and _refuses(error, message, "include")
            and (body.get("include") == [ENCRYPTED_REASONING] or "encrypted" in message.lower())):
        return "include"
    return None


def _refuses(error: ProxyError, message: str, param: str) -> bool:
    """A 400 refusing ``param``: the error's parameter is exactly ``param``, or the error names no parameter and
    its ``message`` (without the names the client chose) refuses it in so many words."""
    if error.status != 400:
        return False
    if error.param:
        return error.param == param
    return _REFUSALS[param].search(message) is not None


def without_summary(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without ``reasoning.summary`` (and without ``reasoning`` if nothing else is left in it)."""
    reasoning = {key: value for key, value in body["reasoning"].items() if key != "summary"}
    return {key: value for key, value in body.items() if key != "reasoning"} | ({"reasoning": reasoning} if reasoning else {})


def _carries_encrypted_reasoning(body: dict[str, Any]) -> bool:
    return ENCRYPTED_REASONING in (body.get("include") or ()) or any(
        isinstance(item, dict) and item.get("type") == "reasoning" for item in body.get("input") or ())


def without_encrypted_reasoning(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` neither asking for encrypted reasoning nor carrying reasoning items kept from earlier turns."""
    stripped = dict(body)
    include = [entry for entry in body.get("include") or () if entry != ENCRYPTED_REASONING]
    if include:
        stripped["include"] = include
    else:
        stripped.pop("include", None)
    stripped["input"] = [item for item in body.get("input") or ()
                         if not (isinstance(item, dict) and item.get("type") == "reasoning")]
    return stripped
