"""Codex CLI (npm `@openai/codex`) through the proxy: `codex exec` with a custom model provider
(`wire_api = "responses"`) runs a shell command, edits a file with apply_patch, and answers.

Codex runs offline: its home is a temporary CODEX_HOME whose config.toml turns off the update check,
analytics, feedback, OpenTelemetry export and the plugin and app features (which otherwise reach github.com
for the plugin marketplace); the provider takes its key from an environment variable, so there is no login.
Codex knows the tools a model takes from its model catalog: for a model outside its bundled catalog (any
chat-only model) it offers no apply_patch tool, so the configuration points `model_catalog_json` at a
catalog entry for the model, derived from a bundled one (`codex debug models --bundled`), in which
apply_patch is a custom (freeform) tool with a Lark grammar. docs/clients.md has the configuration
for users.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import proxy_config
from fake_chat_upstream import Chat, FakeChatUpstream, ToolCall
from fake_upstream import running_fake_upstream
from servers import running_proxy

from .conftest import CLIENTS, NODE_TIMEOUT
from .responses_upstreams import MODEL, Call, Upstream

CODEX = CLIENTS / "node_modules" / "@openai" / "codex" / "bin" / "codex.js"
KEY_VARIABLE = "PROXY_API_KEY"
TASK = "List the files, then add ', world' to the line in notes.txt."
PATCH = "*** Begin Patch\n*** Update File: notes.txt\n@@\n-hello\n+hello, world\n*** End Patch\n"
DONE = "notes.txt now says hello, world."

CONFIG = """\
model = "{model}"
model_provider = "proxy"
model_catalog_json = "{catalog}"
check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false

[features]
apps = false
plugins = false
remote_plugin = false

[otel]
exporter = "none"

[model_providers.proxy]
name = "responses-proxy"
base_url = "{base_url}"
env_key = "{key_variable}"
wire_api = "responses"
"""


def codex(node: str, home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home), KEY_VARIABLE: "client-key"}
    return subprocess.run([node, str(CODEX), *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=NODE_TIMEOUT)


@pytest.fixture(scope="module")
def catalog(node_bin, tmp_path_factory) -> Path:
    """A model catalog with one entry, MODEL, as Codex's bundled catalog describes its own models."""
    home = tmp_path_factory.mktemp("codex-catalog")
    done = codex(node_bin, home, "debug", "models", "--bundled")
    assert done.returncode == 0, done.stderr
    # A model that takes its tools as a request's `tools` (newer ones take "code mode" and a lighter request).
    bundled = next(m for m in json.loads(done.stdout)["models"] if m["apply_patch_tool_type"] == "freeform"
                   and not m.get("tool_mode") and not m.get("use_responses_lite"))
    path = home / "catalog.json"
    path.write_text(json.dumps({"models": [bundled | {"slug": MODEL, "display_name": MODEL, "upgrade": None}]}))
    return path


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A git repository with one file for Codex to work in."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "notes.txt").write_text("hello\n")
    return repo


def test_codex_exec_runs_a_command_and_applies_a_patch(node_bin, catalog, served, upstream: Upstream, workspace,
                                                       tmp_path):
    upstream.script_calls(Call("call_ls", "exec_command", {"cmd": "ls"}))
    upstream.script_calls(Call("call_patch", "apply_patch", input=PATCH))
    upstream.script_answer(DONE, reasoning="")
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(CONFIG.format(model=MODEL, catalog=catalog, base_url=served[1] + "/v1",
                                                    key_variable=KEY_VARIABLE))
    done = codex(node_bin, home, "exec", "--strict-config", "--ephemeral", "--sandbox", "workspace-write",
                 "--cd", str(workspace), TASK)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == DONE
    assert (workspace / "notes.txt").read_text() == "hello, world\n"

    first, after_ls, after_patch = upstream.requests()
    offered = upstream.tools_offered(first)
    assert "exec_command" in offered
    if upstream.kind == "responses":
        assert (offered["apply_patch"]["type"], offered["apply_patch"]["format"]["syntax"]) == ("custom", "lark")
    assert "notes.txt" in upstream.tool_results(after_ls)["call_ls"]
    assert "M notes.txt" in upstream.tool_results(after_patch)["call_patch"]
    assert all(request["model"] == MODEL for request in (first, after_ls, after_patch))


def test_codex_gives_a_chat_model_its_reasoning_back_through_its_tool_loop(node_bin, catalog, workspace, tmp_path):
    """DeepSeek's thinking mode with tools needs its reasoning back on every call of a tool loop. Codex keeps
    nothing on the server (`store: false`) and asks for `reasoning.encrypted_content`: it resends each reasoning
    item as it got it, with the content the proxy sealed, which the proxy opens into the assistant message's
    `reasoning_content` (its summary would serve here too; tests/test_to_chat_state.py has the seal serving a
    client that keeps no summary)."""
    with running_fake_upstream(FakeChatUpstream()) as fake, \
            running_proxy(proxy_config(fake.base_url, models={MODEL: {"reasoning_history": True}})) as url:
        fake.needs_reasoning_back = True
        fake.script(Chat(reasoning="I list the files first.", tool_calls=[
                        ToolCall("exec_command", {"cmd": "ls"}, id="call_ls")]),
                    Chat(reasoning="Now the patch.", tool_calls=[
                        ToolCall("apply_patch", {"input": PATCH}, id="call_patch")]),
                    Chat(content=DONE))
        home = tmp_path / "codex-home"
        home.mkdir()
        (home / "config.toml").write_text(CONFIG.format(model=MODEL, catalog=catalog, base_url=url + "/v1",
                                                        key_variable=KEY_VARIABLE))
        done = codex(node_bin, home, "exec", "--strict-config", "--ephemeral", "--sandbox", "workspace-write",
                     "--cd", str(workspace), TASK)
        requests = [r.json for r in fake.requests_to("/chat/completions")]
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == DONE and (workspace / "notes.txt").read_text() == "hello, world\n"
    reasoning = [[m.get("reasoning_content") for m in request["messages"] if m.get("tool_calls")]
                 for request in requests]
    assert reasoning == [[], ["I list the files first."], ["I list the files first.", "Now the patch."]]
