"""Regenerate openai-schemas.json from the full OpenAI OpenAPI spec.

The full spec is ~3 MB of YAML; the tests only need the request/response
schemas of the two APIs the proxy translates between. This keeps those
`components.schemas` entries, unmodified, with their full transitive `$ref`
closure, so `#/components/schemas/...` references still resolve.

Usage: python tests/spec/extract_schemas.py path/to/openapi.yaml [out.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOTS = [
    "CreateResponse",
    "Response",
    "ResponseStreamEvent",
    "CreateChatCompletionRequest",
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "ErrorResponse",
    "Error",
]
PREFIX = "#/components/schemas/"
OUT = Path(__file__).with_name("openai-schemas.json")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Safe loader that keeps unquoted dates as strings (JSON has no dates)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}


def _refs(node, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                if not value.startswith(PREFIX):
                    raise ValueError(f"unsupported $ref {value!r}")
                found.add(value[len(PREFIX):])
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def closure(schemas: dict, roots: list[str]) -> list[str]:
    """Names reachable from roots through $ref, in the spec's order."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(schemas[name], found)
        todo.extend(found - seen)
    return [name for name in schemas if name in seen]


def extract(spec: dict) -> dict:
    schemas = spec["components"]["schemas"]
    return {
        "openapi": spec["openapi"],
        "info": {
            "title": spec["info"]["title"],
            "version": spec["info"]["version"],
            "description": "Subset of components.schemas (roots: "
            + ", ".join(ROOTS)
            + ", plus everything they reference). See SOURCE.md.",
        },
        "components": {"schemas": {n: schemas[n] for n in closure(schemas, ROOTS)}},
    }


def main(argv: list[str]) -> int:
    if not 2 <= len(argv) <= 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    spec = yaml.load(Path(argv[1]).read_bytes(), Loader=_Loader)
    out = Path(argv[2]) if len(argv) == 3 else OUT
    doc = extract(spec)
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{out}: {len(doc['components']['schemas'])} schemas")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
