"""Encrypted reasoning of recent answers, so a reasoning model keeps its thinking across turns.

Chat apps resend the whole history but cannot carry Responses reasoning
items. With ``store: false`` the proxy asks for ``reasoning.encrypted_content``
and keeps each answer's reasoning items here, keyed by what the client will
send back unchanged: the answer's tool-call ids, or a hash of its text. When
the conversation returns, the request mapping puts them back in front of the
answer. A bounded in-process LRU with a time limit: a miss simply means the
model starts that turn without its earlier reasoning, as with any chat proxy.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from .translate.request import reasoning_keys
from .translate.response import as_list


class ReasoningMemory:
    def __init__(self, max_entries: int = 2000, ttl: float = 3600.0) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, list[dict[str, Any]]]] = OrderedDict()

    def get(self, key: str) -> list[dict[str, Any]] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, items = entry
        if time.monotonic() - stored_at > self.ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return items

    def remember(self, response: dict[str, Any] | None) -> None:
        """Keep the encrypted reasoning items of a finished response under the keys of its answer."""
        if not response or self.max_entries <= 0:
            return
        output = [item for item in as_list(response.get("output")) if isinstance(item, dict)]
        reasoning = [
            {"type": "reasoning", "id": item.get("id"), "encrypted_content": item["encrypted_content"],
             "summary": [{"type": "summary_text", "text": part["text"]} for part in as_list(item.get("summary"))
                         if isinstance(part, dict) and isinstance(part.get("text"), str)]}
            for item in output if item.get("type") == "reasoning" and isinstance(item.get("id"), str)
            and isinstance(item.get("encrypted_content"), str) and item["encrypted_content"]
        ]
        if not reasoning:
            return
        answer = [item for item in output if item.get("type") in ("message", "function_call", "custom_tool_call")]
        now = time.monotonic()
        for key in reasoning_keys(answer):
            self._entries[key] = (now, reasoning)
            self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
