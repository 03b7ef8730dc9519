"""Parameter paths (``messages[2].content[0].image_url.url``), for naming the client's parameters in errors.

Both directions do the same thing with an upstream's error: the upstream names
a parameter of the request the proxy sent, and the client must see the path of
the parameter it sent. Each direction maps paths its own way; what they share
(reading, writing and following a path, renaming the error) is here. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..errors import ProxyError

Path = list[str | int]
Mapped = tuple[Path, bool]  # the client's path, and whether all of the upstream's path was mapped

_SEGMENT = re.compile(r"(?:^|\.)([^.\[\]\s'\"`]+)|\[(\d+)\]")


def rename_param(error: ProxyError, client_param: Callable[[str], tuple[str, bool] | None]) -> ProxyError:
    """``error`` naming the client's parameter (a new error; the same one when there is nothing to rename):
    ``client_param`` gives the client's path for the upstream's, and whether all of it was mapped (only then are
    the message's quoted mentions renamed too)."""
    mapped = client_param(error.param) if error.param else None
    if mapped is None:
        return error
    path, whole = mapped
    message = error.message
    if whole:
        for quote in "'\"`":
            message = message.replace(quote + error.param + quote, quote + path + quote)
    return error.replace(param=path, message=message)


def renamed(where: Path, tail: Path, renames: dict[str, Path]) -> Mapped | None:
    """``where`` followed by ``tail`` with its first field renamed; None when that field has no client name."""
    if not tail or tail[0] == "type":
        return [*where, *tail], True
    name = renames.get(tail[0]) if isinstance(tail[0], str) else None
    return ([*where, *name, *tail[1:]], True) if name is not None else None


def reach(request: Any, path: Path) -> tuple[int, Any]:
    """How many of ``path``'s leading parts lead somewhere in ``request``, and the value they lead to."""
    value = request
    for length, part in enumerate(path):
        if isinstance(part, int) and isinstance(value, list) and part < len(value):
            value = value[part]
        elif isinstance(part, str) and isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return length, value
    return len(path), value


def parse(path: str) -> Path:
    """``a.b[2].c`` -> ``["a", "b", 2, "c"]``; empty when it is not such a path."""
    parts: Path = []
    position = 0
    while position < len(path):
        match = _SEGMENT.match(path, position)
        if match is None:
            return []
        parts.append(match[1] if match[1] is not None else int(match[2]))
        position = match.end()
    return parts


def render(path: Path) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" if index else part
                   for index, part in enumerate(path))
