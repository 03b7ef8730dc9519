"""Configuration loading: defaults, environment, YAML with ${VAR} expansion, clear errors."""

import importlib.util
import re

import pytest

from proxy import __version__, cli
from proxy.config import DEFAULT_TRANSLATED_MODELS, ConfigError, load_config


def test_defaults_without_file_or_environment():
    config = load_config(env={})
    assert config.upstream.base_url == "https://api.openai.com/v1"
    assert config.upstream.api_key is None
    assert config.translate.models == DEFAULT_TRANSLATED_MODELS
    assert config.server.port == 8000


def test_environment_supplies_upstream():
    config = load_config(env={"OPENAI_BASE_URL": "http://gateway.local/v1/", "OPENAI_API_KEY": "sk-env"})
    assert config.upstream.base_url == "http://gateway.local/v1"
    assert config.upstream.api_key == "sk-env"


def test_yaml_overrides_environment_and_expands_variables(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "upstream:\n"
        "  base_url: ${GATEWAY:-http://fallback/v1}\n"
        "  api_key: ${GATEWAY_KEY}\n"
        "translate:\n"
        "  models: ['my-model*']\n"
        "  all_models: true\n"
    )
    config = load_config(path, env={"OPENAI_BASE_URL": "http://env/v1", "GATEWAY_KEY": "sk-file"})
    assert config.upstream.base_url == "http://fallback/v1"
    assert config.upstream.api_key == "sk-file"
    assert config.translate.models == ["my-model*"] and config.translate.all_models


def test_missing_variable_is_named(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("upstream:\n  api_key: ${NOT_SET_ANYWHERE}\n")
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        load_config(path, env={})


@pytest.mark.parametrize("text, where", [
    ("upstream:\n  base_ur: x\n", "upstream.base_ur"),
    ("server:\n  port: eighty\n", "server.port"),
    ("reasoning:\n  summary: loud\n", "reasoning.summary"),
])
def test_wrong_keys_and_types_are_named(tmp_path, text, where):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_config(path, env={})


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("upstream: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, env={})


def test_the_command_line_tells_its_version(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.parse_args(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"responses-proxy {__version__}"


def test_the_command_lines_help_shows_every_default(capsys):
    """Each option but --help and --version says its default, and so does the upstream it points at."""
    with pytest.raises(SystemExit):
        cli.parse_args(["--help"])
    shown = capsys.readouterr().out
    options = shown.split("options:\n")[1].split("\n\n")[0]
    entries = {entry.split()[0].rstrip(","): " ".join(entry.split())
               for entry in re.split(r"\n(?=  -)", options) if entry.strip()}
    assert {"-h", "--host", "--port", "--config", "--workers", "--log-level", "--log-format", "--version"} == set(entries)
    for option, entry in entries.items():
        if option not in ("-h", "--version"):
            assert "(default" in entry, entry
    assert "OPENAI_BASE_URL (default https://api.openai.com/v1" in " ".join(shown.split())


def test_a_redis_setting_without_the_redis_package_is_a_config_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "redis" else real(name, *a))
    with pytest.raises(ConfigError, match=r"reasoning\.redis_url, to_chat\.store: Redis needs the redis package"):
        load_config(env={}, overrides={"reasoning": {"redis_url": "redis://r:6379/0"},
                                       "to_chat": {"store": "redis://r:6379/1"}})
    load_config(env={}, overrides={"to_chat": {"store": "memory"}})  # nothing names Redis: fine
