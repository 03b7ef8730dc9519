"""The one place that decides which chat requests are translated.

A model is translated when it matches a configured glob, when the proxy is
told to translate everything, or when the upstream has said during this
process's life that the model is served only by the Responses API.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from typing import Any

from .config import AliasConfig, TranslateConfig
from .translate import REASONING_EFFORTS

log = logging.getLogger("proxy.routing")

# Model names come from clients: what is remembered per name is bounded.
NAME_REMEMBERED_CHARS = 256  # a longer name is decided each time, and never remembered
DECISIONS_REMEMBERED = 1024
MODELS_REMEMBERED = 1024  # models one fact is kept for (learned Responses-only, refused features)


def rememberable(model: str) -> bool:
    """Whether a model name is short enough to be kept as the key of what is remembered about it."""
    return len(model) <= NAME_REMEMBERED_CHARS


class ModelRouter:
    def __init__(self, config: TranslateConfig, aliases: dict[str, AliasConfig] | None = None) -> None:
        self._all = config.all_models
        self.auto_detect = config.auto_detect
        self._effort_suffixes = config.effort_suffixes
        self.aliases = {name.lower(): alias for name, alias in (aliases or {}).items()}
        self._pattern = re.compile(
            "|".join(fnmatch.translate(glob.lower()) for glob in config.models) or r"(?!)"
        )
        self._learned: set[str] = set()
        self._learned_full = False  # warned that no more are learned
        self._decided: dict[str, bool] = {}

    def should_translate(self, model: str) -> bool:
        """Remembered per name: matching the globs costs more than the lookup, on every request."""
        decided = self._decided.get(model)
        if decided is None:
            decided = self._decide(model)
            if rememberable(model):
                if len(self._decided) >= DECISIONS_REMEMBERED:
                    self._decided.clear()
                self._decided[model] = decided
        return decided

    def _decide(self, model: str) -> bool:
        if self._all:
            return True
        name = model.lower()
        if name in self._learned:
            return True
        # Aggregators prefix a provider ("openai/o3-pro"); match the bare name too.
        return any(self._pattern.match(part) for part in {name, name.rsplit("/", 1)[-1]})

    def resolve(self, model: str) -> tuple[str, dict[str, Any]]:
        """The real model behind an alias or an effort variant, and the parameters it fixes.

        ``o3-pro-high`` means ``o3-pro`` with ``reasoning_effort: high``, for translated models only;
        a name like ``o4-mini`` is never cut, since ``mini`` is not an effort.
        """
        alias = self.aliases.get(model.lower())
        if alias is not None:
            params = dict(alias.params)
            if alias.reasoning_effort:
                params["reasoning_effort"] = alias.reasoning_effort
            return alias.model, params
        if self._effort_suffixes:
            base, dash, suffix = model.rpartition("-")
            if dash and base and suffix.lower() in REASONING_EFFORTS and self.should_translate(base):
                return base, {"reasoning_effort": suffix.lower()}
        return model, {}

    def learn(self, model: str) -> None:
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
        self._decided.clear()

    @property
    def learned(self) -> frozenset[str]:
        return frozenset(self._learned)
