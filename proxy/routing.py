"""The one place that decides which chat requests are translated.

A model is translated when it matches a configured glob, when the proxy is
told to translate everything, or when the upstream has said during this
process's life that the model is served only by the Responses API.
"""

from __future__ import annotations

import fnmatch
import re

from typing import Any

from .config import EFFORTS, AliasConfig, TranslateConfig

# OpenAI answers 404 "This model is only supported in v1/responses and not in
# v1/chat/completions."; gateways reword it, so match loosely on the text.
_RESPONSES_ONLY = re.compile(
    r"only supported in (?:/?v1/)?responses|not supported (?:in|on|with|by) (?:the )?(?:/?v1/)?chat[/ _]?completions"
    r"|use the responses api|only available (?:in|via|through) the responses api",
    re.IGNORECASE,
)


def says_responses_only(error_text: str) -> bool:
    """True when an upstream error means "call this model through /v1/responses"."""
    return bool(_RESPONSES_ONLY.search(error_text))


DECISIONS_REMEMBERED = 1024


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
        self._decided: dict[str, bool] = {}

    def should_translate(self, model: str) -> bool:
        """Remembered per name: matching the globs costs more than the lookup, on every request."""
        decided = self._decided.get(model)
        if decided is None:
            if len(self._decided) >= DECISIONS_REMEMBERED:  # model names come from clients
                self._decided.clear()
            decided = self._decided[model] = self._decide(model)
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
            if dash and base and suffix.lower() in EFFORTS and self.should_translate(base):
                return base, {"reasoning_effort": suffix.lower()}
        return model, {}

    def learn(self, model: str) -> None:
        """Remember, for this process's life, that ``model`` is Responses-only."""
        self._learned.add(model.lower())
        self._decided.clear()

    @property
    def learned(self) -> frozenset[str]:
        return frozenset(self._learned)
