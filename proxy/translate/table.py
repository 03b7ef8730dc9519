"""The shape of a direction's parameter table: one row per client parameter, saying what becomes of it.

A direction's table drives its request mapping (each row's handler, in table
order, on the value the request gives the row), the report of what was dropped, and the naming of the
client's parameters in upstream errors (the upstream request paths each row
produces). A parameter the table does not know is dropped and reported; a null
one counts as not given, as the APIs read it. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .paths import Mapped, Path, parse

# What becomes of a client parameter:
# mapped   - translated into the upstream request, under another name or shape
# copied   - sent upstream as it is (after a check): the same name and meaning in both APIs
# adjusted - mapped, and a value the upstream would refuse is changed to the nearest it takes (and reported)
# answer   - shapes the answer the client gets, done by the proxy (choices, stop sequences, streaming)
# refused  - has no counterpart the proxy could honour: a value that asks for it is a 400
# dropped  - has no counterpart and changes nothing essential: left out, and reported
Fate = Literal["mapped", "copied", "adjusted", "answer", "refused", "dropped"]
# Names the client's path for the rest of an upstream path below one of a row's ``paths`` (the path matched,
# the rest, and the direction's record of where the upstream request came from); None: no client name.
Namer = Callable[[str, Path, Any], Mapped | None]
# Writes a parameter's part of the upstream request: (the direction's draft, the parameter's name, its value).
Handler = Callable[[Any, str, Any], None]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    fate: Fate
    # Writes this parameter's part of the upstream request; called only when the request gives it a value. What
    # depends on parameters left out (defaults, checks across rows) is the direction's, before or after the rows.
    map: Handler | None = None
    paths: tuple[str, ...] = ()  # upstream request paths it produces under another name
    errors: Namer | None = None  # how paths below those are named; by default the same path below ``name``


class ParamTable:
    """A direction's rows, in the order their handlers run."""

    __slots__ = ("rows", "_handlers", "_by_name", "_by_path")

    def __init__(self, *rows: Param) -> None:
        self.rows = rows
        self._handlers = tuple((row.name, row.map) for row in rows if row.map is not None)
        self._by_name = {row.name: row for row in rows}
        self._by_path = [(parse(path), path, row) for row in rows for path in row.paths]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def map(self, draft: Any, request: Mapping[str, Any]) -> None:
        """Run each row's handler, in table order, on the request's value for it (unless null or absent)."""
        get = request.get
        for name, handler in self._handlers:
            value = get(name)
            if value is not None:
                handler(draft, name, value)

    def dropped(self, request: Mapping[str, Any]) -> list[str]:
        """The request's parameters left out: dropped ones, and ones the table does not know."""
        return [name for name, value in request.items()
                if value is not None and ((row := self._by_name.get(name)) is None or row.fate == "dropped")]

    def client_path(self, path: Path, request: Mapping[str, Any], record: Any) -> Mapped | None:
        """The client's path for an upstream request path: from the first row, in table order, that produces a
        leading part of it and that the client sent."""
        for produced, spelled, row in self._by_path:
            if path[:len(produced)] == produced and request.get(row.name) is not None:
                rest = path[len(produced):]
                if row.errors is not None:
                    return row.errors(spelled, rest, record)
                return [row.name, *rest], True
        return None
