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

import orjson

from .config import EFFORTS, AliasConfig, TranslateConfig
from .errors import without_name

log = logging.getLogger("proxy.routing")

# OpenAI answers 404 "This model is only supported in v1/responses and not in v1/chat/completions." with
# ``param: "model"``; gateways reword it, so match loosely on the text.
_RESPONSES_ONLY = re.compile(
    r"only supported in (?:/?v1/)?responses|not supported (?:in|on|with|by) (?:the )?(?:/?v1/)?chat[/ _]?completions"
    r"|use the responses api|only available (?:in|via|through) the responses api",
    re.IGNORECASE | re.ASCII,
)


def says_responses_only(payload: Any, raw: str, request: dict[str, Any]) -> bool:
    """True when an upstream's error answer to the chat ``request`` means "call this model through /v1/responses".

    Only an error about the model counts: one naming another parameter does not. And only the upstream's own
    words count, never what it repeats of the request: the model's name is left out of the message, and
    wording found anywhere else in the request (a key or a value, which an upstream echoes as in
    "Unrecognized request argument supplied: ...") is not read as the upstream's. ``payload`` is the error
    body parsed (None if it is not JSON), ``raw`` its text.
    """
    inner = payload.get("error", payload) if isinstance(payload, dict) else None
    text = raw
    if isinstance(inner, dict):
        param = inner.get("param")
        if param and param != "model":
            return False
        message = inner.get("message")
        if isinstance(message, str):
            text = message
    model = request.get("model")
    name = model if isinstance(model, str) else ""
    text = without_name(text, name)
    written: str | None = None  # what the client wrote besides the model, made only when needed
    for match in _RESPONSES_ONLY.finditer(text):
        if written is None:  # the name is left out here too: a key "only supported in<model>responses" is no gap
            rest = orjson.dumps({key: value for key, value in request.items() if key != "model"}).decode()
            written = without_name(rest, name).lower()
        if match.group().lower() not in written:
            return True
    return False


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
            if dash and base and suffix.lower() in EFFORTS and self.should_translate(base):
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
