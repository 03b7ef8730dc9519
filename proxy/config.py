"""Configuration: defaults, environment, and an optional YAML file.

Precedence, highest first: command-line flags, the YAML file, environment
variables, built-in defaults. The file may reference the environment as
``${VAR}`` or ``${VAR:-default}``.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
DEFAULT_TRANSLATED_MODELS = [
    "o1-pro*",
    "o3-pro*",
    "o3-deep-research*",
    "o4-mini-deep-research*",
    "codex-mini*",
    "gpt-5*-pro*",
    "gpt-5*-codex*",
    "computer-use-preview*",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UpstreamConfig(_Section):
    base_url: str = "https://api.openai.com/v1"
    api_key: str | None = Field(default=None, repr=False)
    connect_timeout: float = Field(default=10.0, gt=0)
    first_byte_timeout: float = Field(default=900.0, gt=0, description="Seconds to wait for the upstream's answer to begin.")
    idle_timeout: float = Field(default=600.0, gt=0, description="Seconds without a byte before a stream is declared dead.")
    headers: dict[str, str] = Field(default_factory=dict)
    max_attempts: int = Field(default=3, ge=1, le=20, description="Tries per request, counting the first.")
    retry_budget: float = Field(default=120.0, ge=0, description="Seconds all retries of one request may take together.")
    backoff_initial: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=8.0, ge=0)


class ModelSettings(_Section):
    """Settings for the models matching one glob; unset fields fall through to the next match."""

    background: bool | None = None
    fallback: str | None = None
    first_byte_timeout: float | None = Field(default=None, gt=0)
    idle_timeout: float | None = Field(default=None, gt=0)
    reasoning_effort: Literal[EFFORTS] | None = None  # type: ignore[valid-type]
    progress: bool | None = Field(default=None, description="Progress notes in the reasoning stream.")
    search_tool: bool | None = Field(default=None, description="Add web_search_preview when no search tool is sent.")


# Long-running models are run in background mode unless configured otherwise; deep research
# needs a search tool and shows its searches as progress.
DEFAULT_MODEL_SETTINGS = {
    "o3-pro*": ModelSettings(background=True),
    "o1-pro*": ModelSettings(background=True),
    "gpt-5*-pro*": ModelSettings(background=True),
    "*deep-research*": ModelSettings(background=True, progress=True, search_tool=True),
}


class BackgroundConfig(_Section):
    poll_initial: float = Field(default=1.0, gt=0, description="First wait between polls of a background response.")
    poll_max: float = Field(default=5.0, gt=0, description="Longest wait between polls.")
    max_resumes: int = Field(default=5, ge=0, description="Reconnections to a cut background stream.")


ReasoningOutput = Literal["reasoning_content", "think", "none"]


class TranslateConfig(_Section):
    models: list[str] = Field(default_factory=lambda: list(DEFAULT_TRANSLATED_MODELS))
    all_models: bool = False
    auto_detect: bool = True
    effort_suffixes: bool = Field(default=True, description="Accept o3-pro-high etc. for translated models.")
    list_variants: list[Literal[EFFORTS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["low", "medium", "high"],
        description="Effort variants listed in /v1/models for each translated model the upstream lists.")
    max_n: int = Field(default=4, ge=1, le=16, description="Largest 'n' served (n upstream requests at once).")


class ReasoningConfig(_Section):
    summary: Literal["auto", "concise", "detailed", "off"] = "auto"
    output: ReasoningOutput = "reasoning_content"
    keep_encrypted: bool = Field(default=True, description="Carry encrypted reasoning across turns.")
    memory_entries: int = Field(default=2000, ge=0, description="Answers kept in process memory.")
    memory_ttl: float = Field(default=3600.0, gt=0)
    redis_url: str | None = Field(default=None, description="Keep reasoning in Redis, shared by replicas.")


class WebSearchConfig(_Section):
    sources_in_content: bool = Field(default=False, description="Append a Markdown list of cited sources.")


class AliasConfig(_Section):
    """A model name that stands for another model with fixed parameters."""

    model: str
    reasoning_effort: Literal[EFFORTS] | None = None  # type: ignore[valid-type]
    params: dict[str, Any] = Field(default_factory=dict)


class StreamConfig(_Section):
    heartbeat_interval: float = Field(default=15.0, gt=0)
    non_stream_keepalive: bool = Field(
        default=False, description="Send whitespace before a non-streamed JSON answer every heartbeat interval.")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)


class Config(_Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    upstream: UpstreamConfig = Field(default_factory=UpstreamConfig)
    translate: TranslateConfig = Field(default_factory=TranslateConfig)
    reasoning: ReasoningConfig = Field(default_factory=ReasoningConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)
    background: BackgroundConfig = Field(default_factory=BackgroundConfig)
    web_search: WebSearchConfig = Field(default_factory=WebSearchConfig)
    models: dict[str, ModelSettings] = Field(default_factory=dict)
    aliases: dict[str, AliasConfig] = Field(default_factory=dict)

    def model_settings(self, model: str) -> ModelSettings:
        """Merged settings for ``model``: configured globs first, then the built-in defaults."""
        name = model.lower()
        bare = name.rsplit("/", 1)[-1]
        merged: dict[str, Any] = {}
        for glob, settings in [*self.models.items(), *DEFAULT_MODEL_SETTINGS.items()]:
            pattern = glob.lower()
            if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(bare, pattern):
                for key, value in settings.model_dump(exclude_none=True).items():
                    merged.setdefault(key, value)
        return ModelSettings(**merged)


class ConfigError(Exception):
    """A configuration problem, worded for the operator (no traceback)."""


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


def _env_defaults(env: Mapping[str, str]) -> dict[str, Any]:
    upstream: dict[str, Any] = {}
    if env.get("OPENAI_BASE_URL"):
        upstream["base_url"] = env["OPENAI_BASE_URL"]
    if env.get("OPENAI_API_KEY"):
        upstream["api_key"] = env["OPENAI_API_KEY"]
    return {"upstream": upstream} if upstream else {}


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    env = os.environ if env is None else env
    data = _env_defaults(env)
    source = "the environment"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        try:
            loaded = yaml.safe_load(expand_env(text, env)) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        data = _merge(data, loaded)
    if overrides:
        data = _merge(data, overrides)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    config.upstream.base_url = config.upstream.base_url.rstrip("/")
    return config
