"""Every dependency a run installs comes from a lock: the runtime, the test tools, the build backend, the
benchmark tools, the Node client libraries; and the README's test command is the one CI runs."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

PROJECT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((PROJECT / "pyproject.toml").read_text())


def pins(lock: Path) -> dict[str, str]:
    """A lock file's ``name==version`` lines, names normalised as pip compares them."""
    found = {}
    for line in lock.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split(";")[0].split("==")
            found[normalise(name)] = version.strip()
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_runtime_and_test_dependency_is_pinned_in_the_test_lock():
    wanted = PYPROJECT["project"]["dependencies"] + [
        spec for extra in ("test", "redis") for spec in PYPROJECT["project"]["optional-dependencies"][extra]]
    locked = pins(PROJECT / "requirements-test.lock")
    for spec in map(Requirement, wanted):
        if spec.marker is not None and not spec.marker.evaluate():
            continue
        assert normalise(spec.name) in locked, f"{spec.name} is not in requirements-test.lock"
        assert spec.specifier.contains(locked[normalise(spec.name)]), (spec, locked[normalise(spec.name)])


def test_the_test_lock_keeps_the_runtime_pins_the_image_runs():
    runtime, test = pins(PROJECT / "requirements.lock"), pins(PROJECT / "requirements-test.lock")
    assert runtime, "requirements.lock pins nothing"
    assert {name: test.get(name) for name in runtime} == runtime


def test_pip_and_the_build_backend_are_pinned():
    assert "pip" in pins(PROJECT / "requirements-test.lock")
    (backend,) = map(Requirement, PYPROJECT["build-system"]["requires"])
    assert str(backend.specifier).startswith("=="), backend


def test_the_ci_script_and_the_readme_install_from_the_locks():
    run = (PROJECT / ".ci" / "run").read_text()
    commands = [line.strip() for line in run.splitlines() if not line.lstrip().startswith(("#", "echo"))]
    installs = [line for line in commands if "pip install" in line or "npm ci" in line or "npm install" in line]
    from_locks = ("-c requirements-test.lock", "-r tests/clients/requirements-agents.lock", "npm ci")
    assert installs and all(any(lock in line for lock in from_locks) for line in installs), installs
    readme = (PROJECT / "README.md").read_text()
    assert "bash .ci/run" in readme
    assert "pip install -c requirements.lock ." in readme


def test_benchmark_tools_are_installed_from_locks():
    for lock in ("requirements.lock", "requirements-litellm.lock"):
        locked = pins(PROJECT / "bench" / lock)
        assert locked, lock
    source = (PROJECT / "bench" / "run.py").read_text()
    assert "requirements-litellm.lock" in source


def test_the_agents_sdk_has_its_own_lock_and_venv():
    """Every openai-agents release pins websockets below the runtime's, so it cannot share the test lock."""
    assert pins(PROJECT / "tests" / "clients" / "requirements-agents.lock")["openai-agents"]
    assert "-r tests/clients/requirements-agents.lock" in (PROJECT / ".ci" / "run").read_text()


def test_the_browser_job_installs_open_webui_from_its_lock():
    assert "open-webui" in pins(PROJECT / "tests" / "browser" / "requirements.lock")
    assert "pip install -r tests/browser/requirements.lock" in (PROJECT / "tests/browser/run_openwebui.sh").read_text()


def test_node_client_libraries_are_locked_at_their_declared_versions():
    for folder in ("tests/clients", "tests/browser"):
        declared = json.loads((PROJECT / folder / "package.json").read_text()).get("dependencies", {})
        locked = json.loads((PROJECT / folder / "package-lock.json").read_text())["packages"]
        for name, version in declared.items():
            assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{folder}: {name}@{version} is not an exact version"
            assert locked[f"node_modules/{name}"]["version"] == version
