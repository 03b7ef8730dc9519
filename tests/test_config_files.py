"""Config files as operators write them: every mistake names the key and its line, never a traceback."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from proxy import cli
from proxy.config import DEFAULT_TRANSLATED_MODELS, Config, ConfigError, load_config, normalize_legacy
from proxy.configfile import _unwrap
from proxy.models import ModelTable

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path, env=None, **kwargs):
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env or {}, **kwargs)
    return str(caught.value)


@pytest.mark.parametrize("text, key, line", [
    ("server:\n  port: 8000\nupstream:\n  base_ur: http://x/v1\n", "upstream.base_ur", 4),
    ("server:\n  host: 0.0.0.0\n  port: eighty\n", "server.port", 3),
    ("translate:\n  models:\n    - o3-pro*\n    - [nested]\n", "translate.models[1]", 4),
    ("\n\nreasoning:\n  summary: loud\n", "reasoning.summary", 4),
    ("upstreams:\n  - name: a\n    base_url: http://a/v1\n  - name: b\n    base_url: ftp://b\n",
     "upstreams[1].base_url", 5),
    ("mystery: 1\n", "mystery", 1),
])
def test_wrong_keys_and_types_name_key_and_line(tmp_path, text, key, line):
    path = write(tmp_path, text)
    message = error_of(path)
    assert f"{path}, line {line}: {key}:" in message, message
    assert "Traceback" not in message


def test_unknown_key_suggests_the_closest_one(tmp_path):
    message = error_of(write(tmp_path, "upstream:\n  api_kye: sk-x\n"))
    assert "unknown key (did you mean api_key?)" in message


def test_every_problem_is_listed_in_file_order(tmp_path):
    message = error_of(write(tmp_path, "stream:\n  heartbeat_interval: never\nserver:\n  prot: 1\n"))
    lines = message.splitlines()
    assert lines[0] == "invalid configuration:"
    assert "line 2: stream.heartbeat_interval" in lines[1] and "line 4: server.prot" in lines[2]


def test_missing_variable_names_key_and_line(tmp_path):
    message = error_of(write(tmp_path, "server:\n  port: 8000\nupstream:\n  api_key: ${TEAM_KEY}\n"))
    assert "line 4: upstream.api_key: environment variable TEAM_KEY is not set" in message


def test_variables_are_expanded_in_values_only_and_typed_like_written_values(tmp_path):
    path = write(tmp_path, "# a comment may mention ${UNSET_IN_COMMENT}\n"
                           "server:\n  port: ${P:-9000}\n  cors_origins: ['${ORIGIN}']\n"
                           "translate:\n  all_models: ${ALL}\n"
                           "upstream:\n  api_key: \"${KEY}\"\n  headers: {X-Note: 'a: b # ${NOTE}'}\n")
    config = load_config(path, env={"ORIGIN": "http://ui:3000", "ALL": "true", "KEY": "12345", "NOTE": "c"})
    assert config.server.port == 9000
    assert config.translate.all_models is True
    assert config.upstream.api_key == "12345"  # quoted: stays a string
    assert config.upstream.headers == {"X-Note": "a: b # c"}
    assert config.server.cors_origins == ["http://ui:3000"]


def test_duplicate_keys_are_refused(tmp_path):
    message = error_of(write(tmp_path, "server:\n  port: 1\n  port: 2\n"))
    assert "line 3: server.port: duplicate key (first written at" in message and "line 2)" in message


def test_environment_variables_for_the_common_cases():
    config = load_config(env={"OPENAI_BASE_URL": "http://gw/v1", "OPENAI_API_KEY": "sk-e",
                              "PROXY_API_KEYS": "team-a, team-b,,", "PORT": "9100"})
    assert config.upstream.base_url == "http://gw/v1" and config.upstream.keys == ["sk-e"]
    assert config.server.api_keys == ["team-a", "team-b"]
    assert config.server.port == 9100


def test_an_environment_value_that_is_wrong_names_the_variable():
    with pytest.raises(ConfigError, match=r"environment variable PORT: server\.port"):
        load_config(env={"PORT": "http"})


def test_precedence_flags_then_file_then_environment_then_defaults(tmp_path):
    path = write(tmp_path, "server:\n  port: 8100\n  host: 0.0.0.0\n")
    env = {"PORT": "8200", "OPENAI_BASE_URL": "http://env/v1"}
    assert load_config(path, env=env).server.port == 8100
    assert load_config(path, env=env, overrides={"server": {"port": 8300}}).server.port == 8300
    config = load_config(path, env=env)
    assert config.upstream.base_url == "http://env/v1" and config.server.host == "0.0.0.0"
    assert load_config(env={}).server.port == 8000


def test_a_flag_value_that_is_wrong_says_so(tmp_path):
    path = write(tmp_path, "server:\n  port: 8100\n")
    with pytest.raises(ConfigError, match=r"command line: server\.port"):
        load_config(path, env={}, overrides={"server": {"port": -1}})


def test_upstreams_list(tmp_path):
    path = write(tmp_path, "upstreams:\n"
                           "  - name: openai\n    base_url: https://api.openai.com/v1/\n"
                           "    api_key: ${OPENAI_API_KEY}\n    api_keys: [sk-2, sk-3]\n    key_rest_seconds: 5\n"
                           "    models: ['o3-pro*', 'gpt-*']\n    first_byte_timeout: 1200\n"
                           "  - name: aggregator\n    base_url: https://agg.example/api/v1\n    api_keys: 'ak-1, ak-2'\n"
                           "    headers: {HTTP-Referer: https://team.example}\n")
    config = load_config(path, env={"OPENAI_API_KEY": "sk-1", "OPENAI_BASE_URL": "http://ignored/v1"})
    first, second = config.upstreams
    assert config.upstream is first
    assert (first.name, first.base_url, first.keys, first.key_rest_seconds) == (
        "openai", "https://api.openai.com/v1", ["sk-1", "sk-2", "sk-3"], 5)
    assert first.models == ["o3-pro*", "gpt-*"] and first.first_byte_timeout == 1200
    assert (second.name, second.keys, second.models) == ("aggregator", ["ak-1", "ak-2"], ["*"])
    assert second.headers == {"HTTP-Referer": "https://team.example"}


def test_the_single_upstream_section_is_one_upstream_serving_everything():
    config = load_config(env={"OPENAI_API_KEY": "sk-1"})
    assert config.upstreams == [config.upstream]
    assert config.upstream.models == ["*"] and config.upstream.name == "default"


@pytest.mark.parametrize("text, expected", [
    ("upstream:\n  base_url: http://a/v1\nupstreams:\n  - base_url: http://b/v1\n", "line 1: upstream: set either"),
    ("upstreams:\n  - base_url: http://a/v1\n  - base_url: http://b/v1\n", "repeated: default"),
])
def test_upstream_sections_that_contradict(tmp_path, text, expected):
    assert expected in error_of(write(tmp_path, text))


def test_proxy_keys_need_an_upstream_key(tmp_path):
    message = error_of(write(tmp_path, "server:\n  api_keys: [team]\n"))
    assert "server.api_keys" in message and "upstream default has no key" in message
    assert load_config(env={"PROXY_API_KEYS": "team", "OPENAI_API_KEY": "sk-1"}).server.api_keys == ["team"]


# ---------------------------------------------------------------- the setup-guide shape

GUIDE = """\
api:
  endpoint: https://gateway.example/v1
  key: ${OPENAI_API_KEY}
  timeout: 1800
models:
  reasoning: o3-pro-2025-06-10
reasoning:
  effort: high
"""


def test_setup_guide_shape_is_accepted(tmp_path):
    config = load_config(write(tmp_path, GUIDE), env={"OPENAI_API_KEY": "sk-guide"})
    assert config.upstream.base_url == "https://gateway.example/v1"
    assert config.upstream.api_key == "sk-guide"
    assert config.upstream.first_byte_timeout == 1800
    assert config.translate.models == [*DEFAULT_TRANSLATED_MODELS, "o3-pro-2025-06-10"]
    assert config.reasoning.effort == "high"


def test_normalize_legacy_moves_every_key_to_its_native_place():
    legacy = {"api": {"endpoint": "https://g/v1", "key": "sk", "timeout": 60},
              "models": {"reasoning": "o3-pro", "fallback": "gpt-4o"},
              "translate": {"models": ["o3-pro", "custom*"]}, "reasoning": {"effort": "low"}}
    assert normalize_legacy(legacy) == {
        "upstream": {"base_url": "https://g/v1", "api_key": "sk", "first_byte_timeout": 60},
        "translate": {"models": ["o3-pro", "custom*"]},
        "models": {"o3-pro": {"fallback": "gpt-4o"}},
        "reasoning": {"effort": "low"},
    }
    native = {"upstream": {"base_url": "https://g/v1"}, "models": {"o3-pro*": {"fallback": "gpt-4o"}}}
    assert normalize_legacy(native) == native


def test_setup_guide_mistakes_are_named_as_written(tmp_path):
    path = write(tmp_path, GUIDE.replace("1800", "half an hour").replace("  key:", "  token: x\n  key:"))
    message = error_of(path, env={"OPENAI_API_KEY": "sk"})
    assert re.search(r"line 3: api\.token: unknown key", message), message
    path = write(tmp_path, GUIDE.replace("1800", "half an hour"))
    message = error_of(path, env={"OPENAI_API_KEY": "sk"})
    assert re.search(r"line 4: api\.timeout: Input should be a valid number", message), message


def test_setup_guide_and_native_keys_may_not_disagree(tmp_path):
    path = write(tmp_path, GUIDE + "upstream:\n  base_url: https://other/v1\n")
    assert "api.endpoint: conflicts with upstream.base_url" in error_of(path, env={"OPENAI_API_KEY": "sk"})


# ---------------------------------------------------------------- the command line and the example


def test_cli_exits_2_with_the_message_on_stderr(tmp_path, capsys):
    path = write(tmp_path, "server:\n  port: 8000\n  prot: 1\n")
    assert cli.main(["--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert f"{path}, line 3: server.prot: unknown key" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_example_config_loads_to_the_defaults():
    path = ROOT / "config.example.yaml"
    example, default = load_config(path, env={}), load_config(env={})
    # The example spells out the built-in per-model defaults; in effect they are the same.
    assert example.model_dump(exclude={"models"}) == default.model_dump(exclude={"models"})
    for model in ("o3-pro", "o3-deep-research", "gpt-5-pro", "gpt-4o", "codex-mini-latest"):
        assert ModelTable(example).settings(model) == ModelTable(default).settings(model), model
    env = {"OPENAI_API_KEY": "sk-1", "PROXY_API_KEYS": "a,b", "PORT": "9000"}
    config = load_config(path, env=env)
    assert config.upstream.keys == ["sk-1"] and config.server.api_keys == ["a", "b"] and config.server.port == 9000


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        names.append(prefix + name)
        annotation = _unwrap(field.annotation)
        if typing.get_origin(annotation) is list:
            annotation = _unwrap(typing.get_args(annotation)[0])
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.extend(_keys(annotation, prefix + name + "."))
    return names


def test_example_config_documents_every_key():
    text = (ROOT / "config.example.yaml").read_text()
    for key in _keys(Config):
        leaf = key.rsplit(".", 1)[-1]
        assert re.search(rf"^\s*#?\s*(- )?{leaf}:", text, re.MULTILINE), f"{key} is not in config.example.yaml"
    lines = text.splitlines()
    for before, line in zip([""] + lines, lines):
        if re.match(r"^\s*[a-z_]+:\s*\S", line):
            assert "#" in line or before.strip().startswith("#"), f"undocumented line in config.example.yaml: {line!r}"
