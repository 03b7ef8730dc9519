"""The Dockerfile's steps, carried out without Docker.

Docker cannot run here or in CI, so the image is checked by doing what its
build does in a scratch directory that stands for the image's root: the
build stage's COPY and RUN steps (``python -m venv``, ``pip install .``), the
final stage's COPY and ENV, then its ENTRYPOINT and HEALTHCHECK. Paths in the
image (``/opt/venv``, ``/config``, ``/data``) are mapped into the scratch root.

Run as a script (``python tests/dockerfile.py ROOT``) it builds into ROOT, so
the slow install can run beside the other tests.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
DOCKERFILE = PROJECT / "Dockerfile"


@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int

    @property
    def exec_form(self) -> list[str] | None:
        """``["a", "b"]`` arguments as a list; None for shell form."""
        text = self.arguments
        for flag in re.findall(r"^(?:--\S+\s+)*", text)[:1]:
            text = text[len(flag):]
        if text.startswith("CMD "):
            text = text[4:]
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, list) else None


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(path: Path = DOCKERFILE) -> list[Stage]:
    stages: list[Stage] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text, pending = pending + line, ""
        keyword, _, arguments = text.partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip(), start)
        if instruction.keyword == "FROM":
            parts = instruction.arguments.split()
            stages.append(Stage(parts[0], parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None))
        else:
            stages[-1].instructions.append(instruction)
    return stages


def _ignore_pattern(text: str) -> re.Pattern[str]:
    """A ``.dockerignore`` pattern as Docker reads it: ``*`` and ``?`` within a path segment, ``**`` across any."""
    regex, index = "", 0
    while index < len(text):
        if text.startswith("**/", index):
            regex, index = regex + "(?:.*/)?", index + 3
        elif text.startswith("**", index):
            regex, index = regex + ".*", index + 2
        else:
            char = text[index]
            regex += "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char)
            index += 1
    return re.compile(regex + r"\Z")


def ignore_rules(project: Path = PROJECT) -> list[tuple[bool, str, re.Pattern[str]]]:
    """The ``.dockerignore`` rules in order: (re-included, pattern, matcher)."""
    path = project / ".dockerignore"
    rules = []
    for line in path.read_text().splitlines() if path.exists() else []:
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip().lstrip("/"))
            rules.append((negated, pattern, _ignore_pattern(pattern)))
    return rules


def in_context(relative: str, rules: list[tuple[bool, str, re.Pattern[str]]]) -> bool:
    """Whether Docker sends ``relative`` (a path in the project): the last rule matching it, or a folder it is
    in, decides."""
    parts = relative.split("/")
    paths = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    excluded = False
    for negated, _, matcher in rules:
        if any(matcher.match(path) for path in paths):
            excluded = not negated
    return not excluded


def build_context(project: Path = PROJECT) -> dict[str, int]:
    """The files ``docker build`` sends from ``project`` (relative path -> size); folders no rule re-includes
    anything in are not walked (as Docker does not)."""
    rules = ignore_rules(project)
    files: dict[str, int] = {}
    for folder, folders, names in os.walk(project):
        base = Path(folder).relative_to(project).as_posix()
        base = "" if base == "." else base + "/"
        folders[:] = [name for name in folders if in_context(base + name, rules) or any(
            negated and pattern.startswith(base + name + "/") for negated, pattern, _ in rules)]
        for name in names:
            if in_context(base + name, rules):
                files[base + name] = (Path(folder) / name).lstat().st_size
    return files


class Emulation:
    """The image's filesystem under ``root`` and its environment."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.context = build_context()  # what COPY can see
        self.env: dict[str, str] = {"PATH": os.environ.get("PATH", "")}
        self.workdir = root

    def path(self, image_path: str) -> str:
        """An absolute path in the image -> the same path under the scratch root."""
        return re.sub(r"(?<![\w.])/(opt|config|src|data)\b", lambda m: f"{self.root}/{m.group(1)}", image_path)

    def expand(self, text: str) -> str:
        return re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: self.env.get(m.group(1) or m.group(2), ""), text)

    def copy(self, instruction: Instruction) -> None:
        parts = shlex.split(instruction.arguments)
        if parts[0].startswith("--from="):
            sources, target = [self.path(part) for part in parts[1:-1]], self.path(parts[-1])
            if sources == [target]:
                return  # both stages share the scratch root
            raise AssertionError(f"line {instruction.line}: cannot emulate {instruction.arguments}")
        sources, target = [PROJECT / part for part in parts[:-1]], parts[-1]
        destination = Path(self.path(target)) if target.startswith("/") else self.workdir / target
        for source in sources:
            name = source.relative_to(PROJECT).as_posix()
            assert source.exists(), f"line {instruction.line}: COPY source {source.name} is not in the project"
            assert source.is_dir() or name in self.context, \
                f"line {instruction.line}: COPY source {name} is left out of the build context by .dockerignore"
            to = destination / source.name if target.endswith("/") and source.is_file() else destination
            if source.is_dir():
                assert any(path.startswith(name + "/") for path in self.context), \
                    f"line {instruction.line}: COPY source {name} is left out of the build context by .dockerignore"
                shutil.copytree(source, to, dirs_exist_ok=True, ignore=lambda folder, names: [
                    entry for entry in names if (Path(folder) / entry).is_file()
                    and (Path(folder) / entry).relative_to(PROJECT).as_posix() not in self.context])
            else:
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, to)

    def run(self, instruction: Instruction) -> None:
        """A RUN step with image paths mapped; pip may use its local cache (``--no-cache-dir`` dropped)."""
        command = self.path(instruction.arguments).replace("--no-cache-dir", "")
        command = re.sub(r"^python\b", shlex.quote(sys.executable), command)
        if command.startswith("useradd"):
            return  # the image's user and the /data it owns: checked by the parser tests, not created here
        subprocess.run(["bash", "-c", command], cwd=self.workdir, env={**os.environ, **self.env}, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stage(self, stage: Stage, execute: bool = True) -> None:
        """Carry out a stage; with ``execute=False`` only follow its WORKDIR and ENV (after a build elsewhere)."""
        for instruction in stage.instructions:
            if instruction.keyword == "WORKDIR":
                self.workdir = Path(self.path(instruction.arguments))
                self.workdir.mkdir(parents=True, exist_ok=True)
            elif instruction.keyword == "COPY" and execute:
                self.copy(instruction)
            elif instruction.keyword == "RUN" and execute:
                self.run(instruction)
            elif instruction.keyword == "ENV":
                for pair in shlex.split(instruction.arguments):
                    name, _, value = pair.partition("=")
                    self.env[name] = self.path(self.expand(value))


def build(root: Path, execute: bool = True) -> Emulation:
    emulation = Emulation(root)
    for stage in parse():
        emulation.stage(stage, execute)
    return emulation


if __name__ == "__main__":
    build(Path(sys.argv[1]))
