"""Reading the YAML file so that every problem names the key and the line it was written on.

The file is composed into YAML nodes (which carry their positions) and built
into plain data here, recording where each key came from. ``${VAR}``
references are expanded per scalar value, so comments are never expanded, a
value cannot break the YAML around it, and line numbers stay true.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

KeyPath = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"


class ConfigError(Exception):
    """A configuration problem, worded for the operator (no traceback)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a value came from: ``config.yaml, line 3``, ``environment variable PORT``, ``command line``.

    ``written`` is the key as the operator wrote it when it was moved to
    another place (the legacy ``api.key`` becomes ``upstream.api_key``).
    """

    where: str
    written: KeyPath | None = None
    line: int = 0


Origins = dict[KeyPath, Origin]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise ConfigError(f"environment variable {name} is not set (referenced as ${{{name}}})")
            return default
        return value

    return _ENV_REF.sub(replace, text)


def dotted(path: KeyPath) -> str:
    """``("upstreams", 0, "base_url")`` -> ``upstreams[0].base_url``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def read_yaml(path: str | Path, env: Mapping[str, str]) -> tuple[dict[str, Any], Origins]:
    """The file's data with ``${VAR}`` expanded, and the line of every key and list item."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, {}
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        builder = _Builder(loader, env, str(path))
        data = builder.build(node, ())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if builder.problems:
        raise ConfigError(describe(builder.problems, builder.origins))
    return data, builder.origins


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, env: Mapping[str, str], label: str) -> None:
        self.loader = loader
        self.env = env
        self.label = label
        self.origins: Origins = {}
        self.problems: list[tuple[KeyPath, str]] = []

    def _mark(self, path: KeyPath, node: yaml.Node) -> None:
        line = node.start_mark.line + 1
        self.origins[path] = Origin(f"{self.label}, line {line}", line=line)

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves "<<: *anchor" merges
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self._mark(path + ("?",), key_node)
                    self.problems.append((path + ("?",), "a key must be a plain name"))
                    continue
                key = self.loader.construct_object(key_node)
                key_path = path + (key,)
                if key in result:
                    first = self.origins[key_path].where
                    self._mark(key_path, key_node)
                    self.problems.append((key_path, f"duplicate key (first written at {first})"))
                    continue
                self._mark(key_path, key_node)
                result[key] = self.build(value_node, key_path)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self._mark(path + (index,), item)
                items.append(self.build(item, path + (index,)))
            return items
        if node.tag == _STR_TAG and "${" in node.value:
            try:
                value = expand_env(node.value, self.env)
            except ConfigError as exc:
                self.problems.append((path, str(exc)))
                return None
            # A plain scalar is typed after expansion, as if the value had been written there.
            tag = self.loader.resolve(yaml.ScalarNode, value, (True, False)) if node.style is None else _STR_TAG
            node = yaml.ScalarNode(tag, value, node.start_mark, node.end_mark, style=node.style)
        return self.loader.construct_object(node)


def lookup(origins: Origins, path: KeyPath) -> tuple[Origin | None, KeyPath]:
    """The origin of the nearest enclosing key, and the path as the operator wrote it."""
    for end in range(len(path), 0, -1):
        origin = origins.get(path[:end])
        if origin is not None:
            written = path if origin.written is None else origin.written + path[end:]
            return origin, written
    return None, path


def describe(problems: list[tuple[KeyPath, str]], origins: Origins) -> str:
    located = [(lookup(origins, path), message) for path, message in problems]
    located.sort(key=lambda item: item[0][0].line if item[0][0] is not None else 0)
    lines = ["invalid configuration:"]
    for (origin, written), message in located:
        where = f"{origin.where}: " if origin is not None else ""
        lines.append(f"  {where}{dotted(written)}: {message}")
    return "\n".join(lines)


def describe_validation(errors: list[dict[str, Any]], origins: Origins, model: type[BaseModel]) -> str:
    """Pydantic errors, each with the key's origin and, for an unknown key, the closest known one."""
    problems: list[tuple[KeyPath, str]] = []
    for error in errors:
        path: KeyPath = tuple(error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden" and path:
            message = "unknown key"
            known = _known_keys(model, path[:-1])
            close = difflib.get_close_matches(str(path[-1]), known, n=1)
            if close:
                message += f" (did you mean {close[0]}?)"
            elif known:
                message += f" (known keys: {', '.join(sorted(known))})"
        elif error["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        problems.append((path, message))
    return describe(problems, origins)


def _known_keys(model: type[BaseModel], path: KeyPath) -> list[str]:
    """The field names of the section at ``path`` (empty when it is not a section)."""
    current: Any = model
    for part in path:
        current = _section_type(current, part)
        if current is None:
            return []
    return list(current.model_fields) if _is_model(current) else []


def _section_type(current: Any, part: str | int) -> Any:
    if _is_model(current):
        field = current.model_fields.get(part) if isinstance(part, str) else None
        return _unwrap(field.annotation) if field is not None else None
    origin = typing.get_origin(current)
    args = typing.get_args(current)
    if origin is list and isinstance(part, int) and args:
        return _unwrap(args[0])
    if origin is dict and len(args) == 2:
        return _unwrap(args[1])
    return None


def _unwrap(annotation: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` -> ``X``."""
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)
