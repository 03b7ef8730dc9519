"""Responses this proxy made through a chat upstream and was asked to store (``store`` defaults to true).

Kept in process memory, bounded in number and age: enough for ``previous_response_id`` to continue a
conversation, and for ``GET /v1/responses/{id}``, ``GET /v1/responses/{id}/input_items`` and ``DELETE`` to
work on them. A response made with ``store: false`` is not kept. Nothing survives a restart, and replicas do
not share them.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

from .errors import ClientError, InvalidRequest


class StoredResponse(NamedTuple):
    response: dict[str, Any]  # the Response object, as the client got it
    input_items: list[dict[str, Any]]  # the request's input, as items with ids
    history: list[dict[str, Any]]  # the conversation's items before that input (previous responses)

    def conversation(self) -> list[dict[str, Any]]:
        """The items a response continuing this one starts from: the history, this input, this output."""
        return [*self.history, *self.input_items, *self.response.get("output", ())]


class ResponseStore:
    """At most ``entries`` responses, each for ``ttl`` seconds; when full, the oldest goes."""

    def __init__(self, entries: int, ttl: float, now: Callable[[], float] = time.monotonic) -> None:
        self._entries = entries
        self._ttl = ttl
        self._now = now
        self._kept: OrderedDict[str, tuple[float, StoredResponse]] = OrderedDict()

    def put(self, response: dict[str, Any], input_items: list[dict[str, Any]],
            history: list[dict[str, Any]]) -> None:
        if self._entries == 0:
            return
        self._kept.pop(response["id"], None)
        while len(self._kept) >= self._entries:
            self._kept.popitem(last=False)
        self._kept[response["id"]] = (self._now() + self._ttl, StoredResponse(response, with_ids(input_items),
                                                                               history))

    def get(self, response_id: str) -> StoredResponse | None:
        found = self._kept.get(response_id)
        if found is None:
            return None
        if found[0] <= self._now():
            del self._kept[response_id]
            return None
        return found[1]

    def delete(self, response_id: str) -> bool:
        return self.get(response_id) is not None and self._kept.pop(response_id, None) is not None


def with_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items as the API lists them: each with an id (a message the client sent without one gets one)."""
    return [item if isinstance(item.get("id"), str) else {"id": "msg_" + random.randbytes(24).hex(), **item}
            for item in items]


def deleted(response_id: str) -> dict[str, Any]:
    return {"id": response_id, "object": "response", "deleted": True}


def input_item_page(stored: StoredResponse, query: dict[str, str]) -> dict[str, Any]:
    """``GET /v1/responses/{id}/input_items``: a list page (``order``, ``limit``, ``after``), as the API pages."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest(f"Invalid value for 'order': {order!r:.40}. Expected 'asc' or 'desc'.", "order")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise InvalidRequest("Invalid value for 'limit': expected an integer from 1 to 100.", "limit")
    items = stored.input_items if order == "asc" else stored.input_items[::-1]
    after = query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise ClientError(404, f"Item with id '{after:.100}' not found.", "after", "not_found")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit}
