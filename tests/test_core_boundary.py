"""The translation core is used through its front door only: ``proxy.translate`` (or a direction's package,
``proxy.translate.to_responses``), never an inner module, so the core can be rearranged without touching
the shell, the tests or the benchmarks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import proxy.translate

pytestmark = pytest.mark.core  # the pure translation core: `pytest -m core` runs these alone

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "proxy" / "translate"
FRONT_DOORS = {"proxy.translate", "proxy.translate.to_responses"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(source: str, package: str) -> list[tuple[int, str]]:
    """Every module a module of ``package`` imports (relative imports resolved), with the line."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, module))
            # ``from proxy.translate import request`` reaches an inner module as well
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names
                         if (CORE / Path(*f"{module}.{alias.name}".split(".")[2:])).with_suffix(".py").exists()
                         and module.startswith("proxy.translate"))
    return found


def inner_imports(source: str, package: str) -> list[str]:
    return [f"{line}: {module}" for line, module in _imported(source, package)
            if module.startswith("proxy.translate.") and module not in FRONT_DOORS]


def _package(path: Path) -> str:
    return _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]


def test_outside_modules_use_the_front_door_only() -> None:
    outside = [path for folder in ("proxy", "tests", "bench") for path in (ROOT / folder).rglob("*.py")
               if CORE not in path.parents]
    assert len(outside) > 20
    found = {str(path.relative_to(ROOT)): inner_imports(path.read_text(), _package(path)) for path in outside}
    assert {path: imports for path, imports in found.items() if imports} == {}


def test_the_check_catches_an_inner_import() -> None:
    source = ("from .translate.to_responses.request import chat_to_responses\n"
              "from .translate import sse\n"
              "import proxy.translate.to_responses.stream\n"
              "from proxy.translate import StreamTranslator\n"
              "from .translate.to_responses import Presentation\n")
    assert inner_imports(source, "proxy") == ["1: proxy.translate.to_responses.request", "2: proxy.translate.sse",
                                              "3: proxy.translate.to_responses.stream"]


def test_the_front_door_exports_what_it_lists() -> None:
    assert all(hasattr(proxy.translate, name) for name in proxy.translate.__all__)
