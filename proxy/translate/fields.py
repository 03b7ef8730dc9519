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


def optional(fields: dict[str, Any], key: str, kind: type, where: str | None = None) -> Any:
    """``fields[key]`` if present and of ``kind``, else None; of another kind, a 400 naming ``where`` (the key)."""
    value = fields.get(key)
    if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        where = where or key
        raise InvalidRequest(f"Invalid type for '{where}': expected {_TYPE_NAMES[kind]}.", where)
    return value


_TYPE_NAMES = {bool: "a boolean", dict: "an object", str: "a string", list: "an array"}


def check_choice(value: Any, allowed: tuple[str, ...], where: str) -> None:
    """A 400 naming ``where`` unless ``value`` is one of the ``allowed`` strings."""
    if not isinstance(value, str) or value not in allowed:
        raise InvalidRequest(f"Invalid '{where}': {value!r:.100}. Supported values are {', '.join(allowed)}.", where)


def string(value: Any, where: str) -> str:
    """``value`` if it is a string; else a 400 naming ``where``."""
    if not isinstance(value, str):
        raise InvalidRequest(f"'{where}' must be a string.", where)
    return value
