"""Several upstreams, each serving the models its globs match; the first match wins.

Globs match the whole model name as the client sent it, case-insensitively:
``openai/*`` sends an aggregator's prefixed names to the aggregator, ``*``
catches the rest. The first upstream is the default for requests that name
no model.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

from .config import UpstreamConfig
from .errors import NoUpstreamForModel
from .upstream import Upstream


class Upstreams:
    def __init__(self, configs: Sequence[UpstreamConfig]) -> None:
        self.all = [Upstream(config) for config in configs]
        self._patterns = [
            re.compile("|".join(fnmatch.translate(glob.lower()) for glob in config.models)) for config in configs
        ]

    @property
    def default(self) -> Upstream:
        return self.all[0]

    def for_model(self, model: str) -> Upstream:
        """The upstream serving ``model``; 404 in OpenAI's words when none does."""
        name = model.lower()
        for upstream, pattern in zip(self.all, self._patterns):
            if pattern.match(name):
                return upstream
        raise NoUpstreamForModel(model)

    async def aclose(self) -> None:
        for upstream in self.all:
            await upstream.aclose()
