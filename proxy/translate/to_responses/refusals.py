"""What an upstream's refusal means for this direction. Pure: no I/O.

A Responses upstream may refuse a feature the proxy added to the client's
request (background mode, streaming, a reasoning summary, encrypted reasoning):
its 400 is recognised here, and the request is sent again without the feature.
A chat upstream may answer that a model is served by the Responses API only:
then the request is translated after all. A value the model refuses while
naming the ones it takes is replaced by the nearest of those, and an optional
parameter it refuses outright is left out (:func:`refused_value`,
:func:`refused_param`); what defines the request is never changed.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import orjson

from ...errors import ProxyError, without_name
from ..paths import parse, reach, render
from ..reasoning import REASONING_EFFORTS
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


# What defines a request: a refusal of these reaches the client as it is, never worked around by leaving them out.
DEFINING_PARAMS = frozenset({"model", "input", "instructions", "tools", "tool_choice", "text.format",
                             "previous_response_id", "prompt", "conversation", "stream", "background", "store"})
# Values in order, where "nearest" means something: the next higher level is taken first, then the nearest below.
ORDERED_VALUES = {"reasoning.effort": REASONING_EFFORTS, "text.verbosity": ("low", "medium", "high")}

# OpenAI: "Unsupported value: 'reasoning.effort' does not support 'medium' with this model. Supported values are:
# 'high'." (code ``unsupported_value``); the supported values may be listed as "'low', 'medium', and 'high'".
# A value is a short word (it goes into a response header as it is): a longer or stranger one is not adapted.
_UNSUPPORTED_VALUE = re.compile(
    r"unsupported value:\s*['\"`](?P<param>[\w.\[\]]+)['\"`] does not support ['\"`](?P<value>[\w.-]{1,64})['\"`]"
    r".*?supported values are:?\s*(?P<supported>.+)", re.IGNORECASE | re.DOTALL)
_QUOTED = re.compile(r"['\"`]([\w.-]{1,64})['\"`]")
_WORD = re.compile(r"[\w.-]{1,64}")
_UNSUPPORTED_PARAM = re.compile(r"\b(?:unsupported|unknown|unrecognized)(?: request)? (?:parameter|argument)"
                                r"(?: supplied)?:?\s*['\"`]?(?P<param>[A-Za-z_][\w.]*)", re.IGNORECASE)


class Adaptation(NamedTuple):
    """A request changed to what the model takes: ``param`` (a Responses path) set from ``was`` to ``now``, or left
    out (``now`` None); ``supported``: the values the model named, kept so that later requests are right at once."""

    param: str
    was: Any
    now: str | None
    supported: tuple[str, ...] = ()


def adapted(body: dict[str, Any], learned: dict[str, tuple[str, ...] | None]) -> tuple[dict[str, Any],
                                                                                       list[Adaptation]]:
    """``body`` as the model takes it, by what was learned of its refusals (a Responses path -> the values the
    model takes, or None for a parameter it refuses outright), and what was changed."""
    changes: list[Adaptation] = []
    for param, supported in learned.items():
        path = parse(param)
        reached, value = reach(body, path)
        if not path or reached < len(path):
            continue
        if supported is None:
            body = without_param(body, param)
            changes.append(Adaptation(param, value, None))
        elif isinstance(value, str) and value not in supported and _WORD.fullmatch(value):
            now = nearest_value(param, value, supported)
            body = with_param(body, param, now)
            changes.append(Adaptation(param, value, now, supported))
    return body, changes


def adaptation(error: ProxyError, body: dict[str, Any]) -> Adaptation | None:
    """How to send ``body`` again after ``error``: a refused value replaced by the nearest the model takes, or a
    refused optional parameter left out; None when the error is about something else."""
    value = refused_value(error, body)
    if value is not None:
        return Adaptation(value.param, value.value, nearest_value(*value), value.supported)
    param = refused_param(error, body)
    if param is not None:
        return Adaptation(param, reach(body, parse(param))[1], None)
    return None


def adapt(body: dict[str, Any], change: Adaptation) -> dict[str, Any]:
    """``body`` with ``change`` made."""
    return without_param(body, change.param) if change.now is None else with_param(body, change.param, change.now)


class RefusedValue(NamedTuple):
    """A value the upstream refuses for a parameter, and the values it says it takes."""

    param: str  # the Responses path, as the upstream named it
    value: str
    supported: tuple[str, ...]


def refused_value(error: ProxyError, body: dict[str, Any]) -> RefusedValue | None:
    """The value of ``body`` (the request sent) that ``error`` refuses while naming the values the model takes;
    None when the error is about something else, names no supported value, or the value is not the one sent."""
    if error.status != 400:
        return None
    found = _UNSUPPORTED_VALUE.search(error.message)
    if found is None:
        return None
    param = error.param or found["param"]
    supported = tuple(dict.fromkeys(_QUOTED.findall(found["supported"])))
    path = parse(param)
    known, sent = reach(body, path)
    if (not path or known != len(path) or sent != found["value"] or not supported or sent in supported
            or defines_request(param)):
        return None
    return RefusedValue(param, sent, supported)


def nearest_value(param: str, value: str, supported: tuple[str, ...]) -> str:
    """The supported value nearest to ``value``: for an ordered parameter (reasoning effort, verbosity) the next
    higher one, else the nearest below; for any other, the first the upstream lists."""
    order = ORDERED_VALUES.get(param, ())
    if value not in order or not any(choice in order for choice in supported):
        return supported[0]
    rank = order.index(value)
    ranked = sorted((order.index(choice), choice) for choice in supported if choice in order)
    higher = [choice for position, choice in ranked if position > rank]
    return higher[0] if higher else ranked[-1][1]


def refused_param(error: ProxyError, body: dict[str, Any]) -> str | None:
    """The optional parameter of ``body`` that ``error`` refuses outright ("Unsupported parameter: 'x'"), as a
    path; None for an error about something else, a parameter not sent, or one that defines the request
    (:data:`DEFINING_PARAMS`, and any part of one)."""
    if error.status != 400 or _UNSUPPORTED_VALUE.search(error.message):
        return None
    found = _UNSUPPORTED_PARAM.search(error.message)
    param = error.param or (found["param"] if found else None)
    if not param or (found is not None and error.param and found["param"] != error.param):
        return None
    if found is None and (error.code or "") not in ("unsupported_parameter", "unknown_parameter"):
        return None
    path = parse(param)
    if not path or reach(body, path)[0] != len(path) or defines_request(param):
        return None
    return param


def defines_request(param: str) -> bool:
    """Whether ``param`` (a Responses path) is, or is inside, what defines the request."""
    path = parse(param)
    return any(render(path[:length]) in DEFINING_PARAMS for length in range(1, len(path) + 1))


def with_param(body: dict[str, Any], param: str, value: Any) -> dict[str, Any]:
    """``body`` with the parameter at ``param`` (a path of object fields) set to ``value``; a copy."""
    path = parse(param)
    head, rest = path[0], path[1:]
    if not rest:
        return {**body, head: value}
    inner = body.get(head)
    return {**body, head: with_param(inner if isinstance(inner, dict) else {}, render(rest), value)}


def without_param(body: dict[str, Any], param: str) -> dict[str, Any]:
    """``body`` without the parameter at ``param`` (a path of object fields), and without an object it leaves
    empty; a copy."""
    path = parse(param)
    head, rest = path[0], path[1:]
    if head not in body:
        return body
    if not rest:
        return {key: value for key, value in body.items() if key != head}
    inner = body[head]
    if not isinstance(inner, dict):
        return body
    left = without_param(inner, render(rest))
    return {**body, head: left} if left else without_param(body, str(head))
