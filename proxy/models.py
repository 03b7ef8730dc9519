"""The model table: for a model name, where a request goes and how it is served, and what the proxy learned.

One table answers every question about a model: its :class:`ModelRoute` (the real model behind an alias or an
effort variant and the parameters they fix, whether a chat request is translated and in which direction, the
upstream serving it) and its settings (:class:`~proxy.config.ModelSettings`, merged from the configured globs and
the defaults). What the upstreams taught the proxy during this process's life is kept here too: models served
only by the Responses API, and features an upstream refuses (:class:`Refusals`).

Model names come from clients: what is remembered per name is bounded (:class:`Remembered`).
"""

from __future__ import annotations

import fnmatch
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from .config import DEFAULT_MODEL_SETTINGS, Config, ModelSettings
from .errors import NoUpstreamForModel
from .memory import LearnedStore, open_learned_store
from .translate import REASONING_EFFORTS, Adaptation, adapted
from .upstream import Upstream

log = logging.getLogger("proxy.models")

NAME_REMEMBERED_CHARS = 256  # a longer name is decided each time, and never remembered
DECISIONS_REMEMBERED = 1024  # names whose route and settings are kept
MODELS_REMEMBERED = 1024  # models one fact is kept for (learned Responses-only, refused features)
PARAMS_REMEMBERED = 16  # refused values and parameters kept per model
SHARED_REFRESH = 10.0  # seconds what another process learned about a model may take to be seen here

# How a request is served: passed through; a chat request translated to the Responses API; or a Responses
# request served through the upstream's chat endpoint (a chat-only model).
Direction = Literal["pass", "to_responses", "to_chat"]
T = TypeVar("T")


def rememberable(model: str) -> bool:
    """Whether a model name is short enough to be kept as the key of what is remembered about it."""
    return len(model) <= NAME_REMEMBERED_CHARS


class Globs:
    """Model-name globs (``o3-pro*``), matched case-insensitively against the whole name.

    With ``bare``, a name an aggregator prefixes with its provider (``openai/o3-pro``) matches by its bare name
    too: translation and settings go by what the model is; an upstream's globs go by the name as sent, so that
    ``openai/*`` can send prefixed names to the aggregator.
    """

    __slots__ = ("_pattern", "_bare")

    def __init__(self, globs: Iterable[str], *, bare: bool) -> None:
        self._pattern = re.compile("|".join(fnmatch.translate(glob.lower()) for glob in globs) or r"(?!)")
        self._bare = bare

    def match(self, model: str) -> bool:
        name = model.lower()
        if self._pattern.match(name):
            return True
        return self._bare and "/" in name and self._pattern.match(name.rsplit("/", 1)[-1]) is not None


class Remembered(Generic[T]):
    """``compute(name)``, remembered for names of bounded length; when full, it starts over.

    Matching every glob costs more than a translation: the answer for a name is looked up, not recomputed.
    """

    __slots__ = ("_compute", "_known")

    def __init__(self, compute: Callable[[str], T]) -> None:
        self._compute = compute
        self._known: dict[str, T] = {}

    def __call__(self, name: str) -> T:
        found = self._known.get(name)
        if found is None:
            found = self._compute(name)
            if rememberable(name):
                if len(self._known) >= DECISIONS_REMEMBERED:
                    self._known.clear()
                self._known[name] = found
        return found

    def forget(self) -> None:
        self._known.clear()


@dataclass
class Refusals:
    """Features, values and optional parameters an upstream refused; remembered for the life of the process (per
    model, for a bounded number of names of bounded length)."""

    no_background: set[str] = field(default_factory=set)  # models
    no_stream: set[str] = field(default_factory=set)  # models
    no_encrypted_reasoning: set[str] = field(default_factory=set)  # models
    # OpenAI refuses reasoning summaries to organizations that are not verified: a property of the key.
    no_summary: bool = False
    # model -> Responses path -> the values the model takes, or None for a parameter it refuses outright
    takes: dict[str, dict[str, tuple[str, ...] | None]] = field(default_factory=dict)
    # Shared with other processes and replicas (Redis), under the upstream's name; when each model was last read.
    shared: LearnedStore | None = None
    upstream: str = ""
    _read: dict[str, float] = field(default_factory=dict)

    async def adapt(self, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], list[Adaptation]]:
        """``body`` as the model takes it, by what was learned of its refusals, and what was changed."""
        name = model.lower()
        if self.shared is not None and rememberable(name):
            now = time.monotonic()
            if now - self._read.get(name, -SHARED_REFRESH) >= SHARED_REFRESH:
                if len(self._read) >= MODELS_REMEMBERED:
                    self._read.clear()
                self._read[name] = now
                for param, supported in (await self.shared.fetch(self.upstream, name)).items():
                    self._keep(name, param, supported)
        learned = self.takes.get(name)
        return adapted(body, learned) if learned else (body, [])

    async def learn_adaptation(self, model: str, change: Adaptation) -> None:
        """Remember a refused value (and the values the model takes) or a refused parameter for ``model``."""
        name, supported = model.lower(), change.supported if change.now is not None else None
        if not self._keep(name, change.param, supported):
            return
        log.info("%s refuses %s; %s from now on", model,
                 f"{change.param}={change.was}" if change.now is not None else change.param,
                 f"{change.now} (of {', '.join(change.supported)})" if change.now is not None else "left out")
        if self.shared is not None:
            await self.shared.put(self.upstream, name, change.param, supported)

    def _keep(self, name: str, param: str, supported: tuple[str, ...] | None) -> bool:
        """Keep what ``name`` takes for ``param``, within the bounds; whether it was kept."""
        learned = self.takes.get(name)
        if learned is None:
            if not rememberable(name) or len(self.takes) >= MODELS_REMEMBERED:
                return False
            learned = self.takes[name] = {}
        if param not in learned and len(learned) >= PARAMS_REMEMBERED:
            return False
        learned[param] = supported
        return True

    def learn(self, feature: str, model: str) -> None:
        """Remember that ``feature`` (a Responses parameter the proxy adds) is refused for ``model``."""
        if feature == "reasoning.summary":
            self.no_summary = True
            log.info("upstream refuses reasoning summaries; left out from now on")
            return
        what, refusing = _REFUSED[feature]
        name = model.lower()
        if rememberable(name) and len(getattr(self, refusing)) < MODELS_REMEMBERED:
            getattr(self, refusing).add(name)
            log.info("upstream refuses %s for %s; left out from now on", what, model)


_REFUSED = {"background": ("background mode", "no_background"), "stream": ("streaming", "no_stream"),
            "include": ("encrypted reasoning", "no_encrypted_reasoning")}


class LearnedModels:
    """Models the upstreams showed to be served one way only, for this process's life: a bounded number of
    names of bounded length (names come from clients)."""

    __slots__ = ("_names", "_what", "_full")

    def __init__(self, what: str) -> None:
        self._names: set[str] = set()
        self._what = what  # "served only by ..." in the log
        self._full = False

    def __contains__(self, model: str) -> bool:
        return model.lower() in self._names

    def learn(self, model: str) -> None:
        name = model.lower()
        if name in self._names or not rememberable(name):
            return
        if len(self._names) >= MODELS_REMEMBERED:
            if not self._full:
                self._full = True
                log.warning("%d models learned to be %s, the most kept: %s and later ones are not remembered",
                            MODELS_REMEMBERED, self._what, model)
            return
        log.info("model %s is %s; served so from now on", model, self._what)
        self._names.add(name)


class ModelRoute(NamedTuple):
    """Where a chat request for ``model`` goes, and the settings it is served with (immutable: a named tuple,
    cheaper to build than a frozen dataclass, once per request)."""

    model: str
    direction: Direction
    upstream: Upstream
    settings: ModelSettings
    refusals: Refusals  # what this model's upstream refuses


class ModelTable:
    """Every upstream, and for a model name: its route, its settings, and what was learned about it."""

    def __init__(self, config: Config) -> None:
        self.upstreams = [Upstream(upstream) for upstream in config.upstreams]
        self._serves = [Globs(upstream.models, bare=False) for upstream in config.upstreams]
        # What an upstream refused (background mode, streaming, summaries) is a property of that upstream.
        self._learned_store = open_learned_store(config.reasoning)
        self._refusals = {upstream.config.name: Refusals(shared=self._learned_store, upstream=upstream.config.name)
                          for upstream in self.upstreams}
        self._translate_all = config.translate.all_models
        self._translated = Globs(config.translate.models, bare=True)
        self.auto_detect = config.translate.auto_detect
        self._effort_suffixes = config.translate.effort_suffixes
        self._aliases = {name.lower(): alias for name, alias in config.aliases.items()}
        self._settings = [(Globs([glob], bare=True), settings)
                          for glob, settings in [*config.models.items(), *DEFAULT_MODEL_SETTINGS.items()]]
        self._learned: set[str] = set()  # models served only by the Responses API
        self._learned_full = False  # warned that no more are learned
        self.translates = Remembered(self._decide)
        self.chat_auto_detect = config.to_chat.auto_detect
        self.chat_only = LearnedModels("served only by the chat endpoint")
        self.settings = Remembered(self._merged_settings)
        self.route = Remembered(self._route)  # how a chat request for a (resolved) model name is served

    def _route(self, model: str) -> ModelRoute:
        """How a chat request for ``model`` (already resolved) is served; :class:`NoUpstreamForModel` when no
        upstream serves it."""
        upstream = self.upstream_for(model)
        return ModelRoute(model, "to_responses" if self.translates(model) else "pass", upstream, self.settings(model),
                     self._refusals[upstream.config.name])

    def responses_route(self, model: str) -> ModelRoute:
        """How a Responses request for ``model`` is served: passed through, or through the upstream's chat endpoint
        (an upstream or model configured chat-only, or a model learned to be)."""
        upstream = self.upstream_for(model)
        settings = self.settings(model)
        chat = upstream.config.chat_only or bool(settings.chat_only) or model in self.chat_only
        return ModelRoute(model, "to_chat" if chat else "pass", upstream, settings,
                          self._refusals[upstream.config.name])

    def resolve(self, model: str) -> tuple[str, dict[str, Any]]:
        """The real model behind an alias or an effort variant, and the parameters it fixes.

        ``o3-pro-high`` means ``o3-pro`` with ``reasoning_effort: high``, for translated models only;
        a name like ``o4-mini`` is never cut, since ``mini`` is not an effort.
        """
        alias = self._aliases.get(model.lower())
        if alias is not None:
            params = dict(alias.params)
            if alias.reasoning_effort:
                params["reasoning_effort"] = alias.reasoning_effort
            return alias.model, params
        if self._effort_suffixes:
            base, dash, suffix = model.rpartition("-")
            if dash and base and suffix.lower() in REASONING_EFFORTS and self.translates(base):
                return base, {"reasoning_effort": suffix.lower()}
        return model, {}

    def upstream_for(self, model: str) -> Upstream:
        """The upstream serving ``model``: the first whose globs match; 404 in OpenAI's words when none does."""
        for upstream, serves in zip(self.upstreams, self._serves):
            if serves.match(model):
                return upstream
        raise NoUpstreamForModel(model)

    def _decide(self, model: str) -> bool:
        return self._translate_all or model.lower() in self._learned or self._translated.match(model)

    def _merged_settings(self, model: str) -> ModelSettings:
        """Configured globs first, then the built-in defaults; a field unset by one match falls through."""
        merged: dict[str, Any] = {}
        for globs, settings in self._settings:
            if globs.match(model):
                for key, value in settings.model_dump(exclude_none=True).items():
                    merged.setdefault(key, value)
        return ModelSettings(**merged)

    def learn_responses_only(self, model: str) -> None:
        """Remember, for this process's life, that ``model`` is Responses-only, within the bounds on names."""
        name = model.lower()
        if name in self._learned:
            return
        if not rememberable(name):
            log.info("a model with a %d-character name is served only by the Responses API; translating this "
                     "request (names over %d characters are not remembered)", len(name), NAME_REMEMBERED_CHARS)
            return
        if len(self._learned) >= MODELS_REMEMBERED:
            if not self._learned_full:
                self._learned_full = True
                log.warning("%d Responses-only models learned, the most kept: %s and later ones are not remembered "
                            "(each request for them is refused as a chat request first)", MODELS_REMEMBERED, model)
            return
        log.info("model %s is served only by the Responses API; translating it from now on", model)
        self._learned.add(name)
        self.translates.forget()
        self.route.forget()

    @property
    def learned(self) -> frozenset[str]:
        return frozenset(self._learned)

    def share(self, store: LearnedStore | None) -> None:
        """Share what is learned of refused values and parameters through ``store`` (None: keep it here)."""
        self._learned_store = store
        for refusals in self._refusals.values():
            refusals.shared = store

    async def aclose(self) -> None:
        for upstream in self.upstreams:
            await upstream.aclose()
        if self._learned_store is not None:
            await self._learned_store.aclose()
