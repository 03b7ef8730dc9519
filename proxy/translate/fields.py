"""Reading JSON fields, for both directions. Pure: no I/O.

Two ways, for two sources: an upstream's answer is read leniently (a field of
the wrong type counts as absent, never as an exception: the client gets what
can be made of it), a client's request strictly (a field of the wrong type is a
400 naming its path, so the client learns what to fix).
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest

# --- lenient: upstream answers ------------------------------------------------


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def is_int(value: Any) -> bool:
    """A JSON integer: ``bool`` is an ``int`` to Python, never to JSON."""
    return isinstance(value, int) and not isinstance(value, bool)


def as_int(value: Any) -> int:
    return value if is_int(value) else 0


# --- strict: client requests --------------------------------------------------
# The wording and codes are the API's own: "Invalid type for 'x': expected ...", invalid_type / invalid_value.


def model_of(request: Any) -> str:
    """The model a request names; a 400 unless the request is an object that names one (both APIs need it)."""
    if not isinstance(request, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", "model")
    return model


def typed(value: Any, kind: type, where: str) -> Any:
    """``value`` if it is of ``kind`` (a JSON type: ``bool`` is no ``int``); else a 400 naming ``where``."""
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        _wrong_type(kind, where)
    return value


def optional(fields: dict[str, Any], key: str, kind: type, where: str | None = None) -> Any:
    """``fields[key]`` if present and of ``kind``, else None; of another kind, a 400 naming ``where`` (the key)."""
    value = fields.get(key)
    if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        _wrong_type(kind, where or key)
    return value


def string(value: Any, where: str) -> str:
    """``value`` if it is a string; else a 400 naming ``where``."""
    if not isinstance(value, str):
        _wrong_type(str, where)
    return value


def _wrong_type(kind: type, where: str) -> None:
    raise InvalidRequest(f"Invalid type for '{where}': expected {_TYPE_NAMES[kind]}.", where, "invalid_type")


_TYPE_NAMES = {bool: "a boolean", dict: "an object", str: "a string", list: "an array", int: "an integer"}


def check_choice(value: Any, allowed: tuple[str, ...], where: str) -> None:
    """A 400 naming ``where`` unless ``value`` is one of the ``allowed`` strings."""
    if not isinstance(value, str) or value not in allowed:
        raise InvalidRequest(f"Invalid '{where}': {value!r:.100}. Supported values are {', '.join(allowed)}.", where,
                             "invalid_value")


def positive_int(value: Any, where: str) -> int:
    """``value`` if it is an integer of at least 1 (a token limit); else a 400 naming ``where``."""
    if not is_int(value) or value < 1:
        raise InvalidRequest(f"Invalid '{where}': expected an integer of at least 1, got {value!r:.100}.", where,
                             "invalid_value")
    return value


def bounded_string(value: Any, where: str, limit: int) -> str:
    """``value`` if it is a string of at most ``limit`` characters; else a 400 naming ``where``."""
    if len(string(value, where)) > limit:
        raise InvalidRequest(f"'{where}' may be at most {limit} characters.", where, "invalid_value")
    return value


# Limits both APIs set alike.
MAX_SAFETY_IDENTIFIER = 64
MAX_METADATA = (16, 64, 512)  # pairs, key length, value length


def metadata(value: Any, where: str = "metadata") -> dict[str, Any]:
    """``value`` if it is metadata both APIs take: an object of at most 16 string pairs, keys up to 64 characters
    and values up to 512; else a 400 naming ``where``."""
    pairs, key_length, value_length = MAX_METADATA
    if typed(value, dict, where) and (len(value) > pairs or not all(
            len(key) <= key_length and isinstance(text, str) and len(text) <= value_length
            for key, text in value.items())):
        raise InvalidRequest(f"'{where}' must hold at most {pairs} pairs of strings (keys up to {key_length} "
                             f"characters, values up to {value_length}).", where, "invalid_value")
    return value
