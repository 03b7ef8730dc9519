"""Configuration: defaults, environment, and an optional YAML file.

Precedence, highest first: command-line flags, the YAML file, environment
variables, built-in defaults. The file may reference the environment as
``${VAR}`` or ``${VAR:-default}``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, field_validator,
                      model_validator)

from .configfile import ConfigError, Origin, Origins, describe, describe_validation, read_yaml
from .configfile import expand_env as expand_env  # re-exported: part of this module's interface
from .translate import REASONING_EFFORTS, REASONING_OUTPUTS

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

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


def _comma_list(value: Any) -> Any:
    """Accept ``"a, b"`` for a list of strings, as ``${PROXY_API_KEYS}`` expands to (empty: none)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


KeyList = Annotated[list[str], BeforeValidator(_comma_list)]


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

    name: str = Field(default="default", min_length=1, description="Shown in logs and metrics.")
    api_keys: KeyList = Field(default_factory=list, repr=False,
                              description="More keys, used in turn with api_key (round-robin).")
    key_rest_seconds: float = Field(default=60.0, gt=0,
                                    description="How long a key that got 401/429 is left out of the rotation.")
    models: list[str] = Field(default_factory=lambda: ["*"], min_length=1,
                              description="Globs of the models this upstream serves; the first match wins.")
    kind: Literal["openai", "azure"] = Field(
        default="openai", description="The API's URL layout: OpenAI's (and compatible gateways'), or Azure OpenAI's.")
    auth_header: str | None = Field(
        default=None, min_length=1, description="The header that carries the key: Authorization, or api-key on Azure.")
    auth_scheme: str | None = Field(
        default=None, description="The word before the key: Bearer in Authorization, none in other headers.")
    query: dict[str, str] = Field(default_factory=dict, repr=False,
                                  description="Query parameters sent with every request (never shown).")
    api_version: str | None = Field(default=None, min_length=1,
                                    description="Azure's dated API (api-version=...); unset: Azure's v1 API.")
    deployments: dict[str, str] = Field(default_factory=dict,
                                        description="Azure deployment names of the models clients name.")
    chat_only: bool = Field(default=False, description="The upstream speaks only Chat Completions: /v1/responses "
                                                       "requests for its models are served through its chat endpoint.")
    _api_path_added: bool = PrivateAttr(default=False)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _api_path(self) -> UpstreamConfig:
        """A base URL with no path (``http://host:3000``, as aggregators print it) means the API under ``/v1``;
        on Azure (``https://RESOURCE.openai.azure.com``, as its portal prints it), under ``/openai/v1``, or
        ``/openai`` for the dated API."""
        parts = urlsplit(self.base_url)
        if parts.path in ("", "/"):
            path = "/v1" if self.kind == "openai" else "/openai" if self.api_version else "/openai/v1"
            self.base_url = urlunsplit(parts._replace(path=path))
            self._api_path_added = True
        for key in ("api_version", "deployments"):
            if getattr(self, key) and self.kind != "azure":
                raise ValueError(f"{key} is for Azure OpenAI: set kind: azure too, or remove it")
        return self

    @property
    def key_header(self) -> str:
        """The header the key goes in, in lower case."""
        return (self.auth_header or ("api-key" if self.kind == "azure" else "authorization")).lower()

    def credential(self, key: str) -> str:
        """The key as the upstream reads it: ``Bearer sk-...`` in Authorization, the bare key elsewhere."""
        scheme = self.auth_scheme if self.auth_scheme is not None else \
            "Bearer" if self.key_header == "authorization" else ""
        return f"{scheme} {key}" if scheme else key

    @property
    def secrets(self) -> list[str]:
        """Every value configured to go to the upstream that logs, ``/``, metrics and errors must never show."""
        return [*self.keys, *self.headers.values(), *self.query.values()]

    @property
    def api_path_added(self) -> bool:
        """Whether the base URL was given without a path, and ``/v1`` added."""
        return self._api_path_added

    @property
    def keys(self) -> list[str]:
        """Every configured key, ``api_key`` first, without blanks or repeats."""
        keys = [self.api_key] if self.api_key else []
        return list(dict.fromkeys(keys + [key for key in self.api_keys if key]))


class ModelSettings(_Section):
    """Settings for the models matching one glob; unset fields fall through to the next match."""

    background: bool | None = None
    fallback: str | None = None
    first_byte_timeout: float | None = Field(default=None, gt=0)
    idle_timeout: float | None = Field(default=None, gt=0)
    reasoning_effort: Literal[REASONING_EFFORTS] | None = None  # type: ignore[valid-type]
    progress: bool | None = Field(default=None, description="Progress notes in the reasoning stream.")
    search_tool: bool | None = Field(default=None, description="Add web_search_preview when no search tool is sent.")
    # Serving /v1/responses through a chat upstream (see ToChatConfig).
    chat_only: bool | None = Field(default=None, description="/v1/responses requests go through chat.")
    reasoning_history: bool | None = Field(
        default=None, description="Give the upstream its reasoning back as reasoning_content (DeepSeek thinking "
                                  "with tools needs it).")
    max_tokens_param: Literal["max_completion_tokens", "max_tokens"] | None = None
    reasoning_source: Literal["fields", "think", "none"] | None = Field(
        default=None, description="Where a chat upstream puts its reasoning: fields, or <think> blocks too.")


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
    reattach_window: float = Field(default=120.0, ge=0, description="Seconds a background run is kept after its "
                                   "client left, for a retry to follow it (0: cancelled at once).")
    max_kept_runs: int = Field(default=1000, ge=1, description="Background runs each process keeps for a retry; "
                               "when full, the oldest no client follows is let go of early.")


ReasoningOutput = Literal[REASONING_OUTPUTS]  # type: ignore[valid-type]


class TranslateConfig(_Section):
    models: list[str] = Field(default_factory=lambda: list(DEFAULT_TRANSLATED_MODELS))
    all_models: bool = False
    auto_detect: bool = True
    effort_suffixes: bool = Field(default=True, description="Accept o3-pro-high etc. for translated models.")
    list_variants: list[Literal[REASONING_EFFORTS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["low", "medium", "high"],
        description="Effort variants listed in /v1/models for each translated model the upstream lists.")
    max_n: int = Field(default=4, ge=1, le=16, description="Largest 'n' served (n upstream requests at once).")
    adapt: bool = Field(default=True, description="Send a request again with the nearest value the model takes, or "
                        "without an optional parameter it refuses, and remember it per model.")


class ToChatConfig(_Section):
    """``/v1/responses`` for models that speak only Chat Completions."""

    auto_detect: bool = Field(default=True, description="Serve a model through chat when the upstream has no "
                                                        "/v1/responses for it (404, 405, or a 400 saying so).")
    refuse_builtin_tools: bool = Field(default=False, description="A built-in tool (web_search, ...) is a 400 "
                                                                  "instead of being left out.")
    store: str = Field(default="sqlite", description="Where stored responses are kept, for previous_response_id "
                       "and GET /v1/responses/{id}: sqlite (a file in the user's state directory), sqlite://PATH, "
                       "a Redis URL (redis://HOST:PORT/DB, shared by replicas), or memory (this process only).")
    stored_responses: int = Field(default=10_000, ge=0, description="Stored responses kept at most; when full, the "
                                                                    "oldest goes (0: none kept).")
    stored_max_bytes: int = Field(default=256 * 1024 * 1024, gt=0, description="Their JSON, in bytes, at most; "
                                                                               "when full, the oldest goes.")
    stored_ttl: float = Field(default=30 * 24 * 3600.0, gt=0, description="Seconds a stored response is kept.")

    background_runs: int = Field(default=100, ge=1, description="Background responses kept in process memory: "
                                 "running ones, and ended ones for background_ttl (the oldest ended one goes first).")
    background_ttl: float = Field(default=600.0, gt=0, description="Seconds an ended background response's events "
                                  "are kept, for GET /v1/responses/{id}?stream=true.")
    background_event_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024, description="The most recent events "
                                        "of a background response kept for its stream, in bytes.")

    reasoning_key: str | None = Field(
        default=None, repr=False, min_length=16,
        description="Server key sealing reasoning items' encrypted_content (the same on every replica and across "
                    "restarts); unset: a random key per process.")

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        value = value.strip()
        if value in ("memory", "sqlite") or (value.startswith("sqlite://") and len(value) > len("sqlite://")) \
                or value.startswith(REDIS_SCHEMES):
            return value
        raise ValueError("must be sqlite, sqlite://PATH, a Redis URL (redis://HOST:PORT/DB) or memory")


class ReasoningConfig(_Section):
    summary: Literal["auto", "concise", "detailed", "off"] = "auto"
    effort: Literal[REASONING_EFFORTS] | None = Field(  # type: ignore[valid-type]
        default=None, description="reasoning_effort for translated requests that set none.")
    output: ReasoningOutput = "reasoning_content"
    keep_encrypted: bool = Field(default=True, description="Carry encrypted reasoning across turns.")
    memory_entries: int = Field(default=2000, ge=0, description="Answers kept in process memory.")
    memory_ttl: float = Field(default=3600.0, gt=0)
    redis_url: str | None = Field(default=None, description="Keep reasoning in Redis, shared by replicas (with "
                                  "background runs kept for a retry and what models refused).")


class WebSearchConfig(_Section):
    sources_in_content: bool = Field(default=False, description="Append a Markdown list of cited sources.")


class AliasConfig(_Section):
    """A model name that stands for another model with fixed parameters."""

    model: str
    reasoning_effort: Literal[REASONING_EFFORTS] | None = None  # type: ignore[valid-type]
    params: dict[str, Any] = Field(default_factory=dict)


class StreamConfig(_Section):
    heartbeat_interval: float = Field(default=15.0, gt=0)
    non_stream_keepalive: bool = Field(
        default=False, description="Send whitespace before a non-streamed JSON answer every heartbeat interval.")
    upstream_stream: bool = Field(
        default=False, description="Serve non-streaming clients from an upstream stream too (headers arrive at once).")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024,
                                  description="Largest request line and headers; a larger head gets a 431.")
    api_keys: KeyList = Field(default_factory=list, repr=False,
                              description="Keys clients must present; empty: no access control.")
    metrics_require_key: bool = False
    cors_origins: list[str] = Field(default_factory=list,
                                    description="Web page origins allowed to call the proxy; others get 403.")
    readiness_check: Literal["none", "connect", "models"] = "connect"
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        """Origins as browsers write them (``https://app.example:8443``): lower case, no trailing slash, no path."""
        written = []
        for origin in origins:
            origin = origin.strip().rstrip("/").lower()
            if origin not in ("*", "null") and ("://" not in origin or "/" in origin.split("://", 1)[1]):
                raise ValueError(f"{origin!r} is not an origin: write scheme://host[:port] (no path), or '*'")
            written.append(origin)
        return written


class Config(_Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    upstream: UpstreamConfig = Field(default_factory=UpstreamConfig)
    translate: TranslateConfig = Field(default_factory=TranslateConfig)
    to_chat: ToChatConfig = Field(default_factory=ToChatConfig)
    reasoning: ReasoningConfig = Field(default_factory=ReasoningConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)
    background: BackgroundConfig = Field(default_factory=BackgroundConfig)
    web_search: WebSearchConfig = Field(default_factory=WebSearchConfig)
    models: dict[str, ModelSettings] = Field(default_factory=dict)
    aliases: dict[str, AliasConfig] = Field(default_factory=dict)
    upstreams: list[UpstreamConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_upstream_list(self) -> Config:
        """``upstreams`` always lists every upstream; ``upstream`` is the first (default) one."""
        if self.upstreams:
            self.upstream = self.upstreams[0]
        else:
            self.upstreams = [self.upstream]
        names = [upstream.name for upstream in self.upstreams]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"upstreams: every upstream needs its own name (repeated: {', '.join(duplicates)})")
        return self


# Environment variables for the common cases: (variable, config path).
ENVIRONMENT = (
    ("OPENAI_BASE_URL", ("upstream", "base_url")),
    ("OPENAI_API_KEY", ("upstream", "api_key")),
    ("PROXY_API_KEYS", ("server", "api_keys")),
    ("PORT", ("server", "port")),
    ("PROXY_RESPONSE_STORE", ("to_chat", "store")),
    ("PROXY_REASONING_KEY", ("to_chat", "reasoning_key")),
)


# The variables the official AzureOpenAI client reads: with an endpoint (and no OPENAI_BASE_URL), the upstream is
# Azure; OPENAI_API_VERSION picks the dated API. They win over OPENAI_API_KEY, which serves when no Azure key is set.
AZURE_ENVIRONMENT = (
    ("AZURE_OPENAI_ENDPOINT", "base_url"),
    ("AZURE_OPENAI_API_KEY", "api_key"),
    ("OPENAI_API_VERSION", "api_version"),
)


def _env_defaults(env: Mapping[str, str], origins: Origins | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    azure = bool(env.get("AZURE_OPENAI_ENDPOINT")) and not env.get("OPENAI_BASE_URL")
    variables = [(variable, ("upstream", key)) for variable, key in AZURE_ENVIRONMENT] if azure else []
    for variable, (section, key) in variables + list(ENVIRONMENT):
        if env.get(variable) and key not in data.get(section, {}):
            data.setdefault(section, {})[key] = env[variable]
            if origins is not None:
                origins[(section, key)] = Origin(f"environment variable {variable}")
    if azure:
        data["upstream"]["kind"] = "azure"
    return data


# The shape popular o3-pro setup guides use, and where each of its keys lives here.
_LEGACY_API = {"endpoint": "base_url", "key": "api_key", "timeout": "first_byte_timeout"}


def normalize_legacy(data: dict[str, Any], origins: Origins | None = None) -> dict[str, Any]:
    """Rewrite the setup-guide shape into the native one, so one model validates both.

    ``api.endpoint``/``api.key``/``api.timeout`` become ``upstream.base_url``/
    ``api_key``/``first_byte_timeout``; ``models.reasoning`` (a model name) is
    added to ``translate.models``; ``models.fallback`` becomes the per-model
    setting ``models: {<reasoning model>: {fallback: ...}}``. ``reasoning.effort``
    is native. Moved keys keep their origin, so errors name them as written.
    """
    origins = {} if origins is None else origins
    data = dict(data)
    problems: list[tuple[tuple[Any, ...], str]] = []

    def move(old: tuple[Any, ...], new: tuple[Any, ...]) -> None:
        for path, origin in list(origins.items()):
            if path[:len(old)] == old:
                origins[new + path[len(old):]] = Origin(origin.where, origin.written or path, origin.line)

    api = data.pop("api", None)
    if api is not None:
        if not isinstance(api, dict):
            problems.append((("api",), "must be a mapping (endpoint, key, timeout)"))
        else:
            upstream = dict(data.get("upstream") or {})
            for key, value in api.items():
                target = _LEGACY_API.get(key)
                if target is None:
                    problems.append((("api", key), f"unknown key (known keys: {', '.join(_LEGACY_API)})"))
                elif target in upstream:
                    problems.append((("api", key), f"conflicts with upstream.{target}; set only one"))
                else:
                    upstream[target] = value
                    move(("api", key), ("upstream", target))
            data["upstream"] = upstream

    models = data.get("models")
    if isinstance(models, dict) and isinstance(models.get("reasoning"), str):
        models = dict(models)
        reasoning = models.pop("reasoning")
        fallback = models.pop("fallback", None)
        translate = dict(data.get("translate") or {})
        listed = translate.get("models", list(DEFAULT_TRANSLATED_MODELS))
        if isinstance(listed, list) and reasoning not in listed:
            translate["models"] = [*listed, reasoning]
            move(("models", "reasoning"), ("translate", "models", len(listed)))
        data["translate"] = translate
        if fallback is not None:
            models[reasoning] = {"fallback": fallback}
            move(("models", "fallback"), ("models", reasoning, "fallback"))
        if models:
            data["models"] = models
        else:
            del data["models"]
    if problems:
        raise ConfigError(describe(problems, origins))
    return data


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _leaves(data: Mapping[str, Any], prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths: list[tuple[Any, ...]] = []
    for key, value in data.items():
        path = prefix + (key,)
        paths.extend(_leaves(value, path) if isinstance(value, Mapping) and value else [path])
    return paths


def _layer(origins: Origins, layer: Origins, data: Mapping[str, Any]) -> None:
    """A later layer's values replace earlier ones, and so do their origins."""
    for path in layer:
        value: Any = data
        for part in path:
            value = value.get(part) if isinstance(value, Mapping) else None
        if not isinstance(value, Mapping):
            for old in [old for old in origins if len(old) > len(path) and old[:len(path)] == path]:
                del origins[old]
    origins.update(layer)


def _upstreams_replace(data: dict[str, Any], layer: Mapping[str, Any], origins: Origins) -> dict[str, Any]:
    """A layer that lists ``upstreams`` replaces the one ``upstream`` that lower layers describe."""
    if "upstreams" not in layer:
        return data
    if "upstream" in layer:
        raise ConfigError(describe([(("upstream",), "set either upstream (one upstream) or upstreams (a list), "
                                                    "not both")], origins))
    return {key: value for key, value in data.items() if key != "upstream"}


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Defaults, then the environment, then the file, then ``overrides`` (command-line flags).

    Every problem raises :class:`ConfigError` naming the key and where it was set.
    """
    env = os.environ if env is None else env
    origins: Origins = {}
    data = _env_defaults(env, origins)
    if path is not None:
        loaded, file_origins = read_yaml(path, env)
        loaded = normalize_legacy(loaded, file_origins)
        data = _merge(_upstreams_replace(data, loaded, file_origins), loaded)
        _layer(origins, file_origins, loaded)
    if overrides:
        override_origins = {path: Origin("command line") for path in _leaves(overrides)}
        data = _merge(_upstreams_replace(data, overrides, override_origins), overrides)
        _layer(origins, override_origins, overrides)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation(exc.errors(), origins, Config)) from None
    if config.server.api_keys:
        keyless = [upstream.name for upstream in config.upstreams if not upstream.keys]
        if keyless:
            raise ConfigError(
                "invalid configuration: server.api_keys is set, so clients' own keys are not forwarded, but "
                f"upstream {', '.join(keyless)} has no key: set upstream.api_key (or OPENAI_API_KEY), "
                "or remove server.api_keys")
    redis_settings = [name for name, used in (("reasoning.redis_url", bool(config.reasoning.redis_url)),
                                              ("to_chat.store", config.to_chat.store.startswith(REDIS_SCHEMES)))
                      if used]
    if redis_settings and importlib.util.find_spec("redis") is None:
        raise ConfigError(f"invalid configuration: {', '.join(redis_settings)}: Redis needs the redis package, which "
                          "is not installed: pip install 'responses-proxy[redis]'")
    return config
