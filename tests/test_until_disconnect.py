"""Noticing a client that leaves while its answer is prepared: the wait is abandoned, and the watcher does not
outlive it."""

from __future__ import annotations

import asyncio
import time

import pytest

from proxy.streaming import ClientGone, until_disconnect


class Client:
    def __init__(self, leaves_after: float | None) -> None:
        self.leaves_after = leaves_after
        self.receives = 0
        self.stopped = False  # a watcher reading its messages was stopped

    async def receive(self):
        self.receives += 1
        try:
            if self.leaves_after is None:
                await asyncio.Event().wait()
            await asyncio.sleep(self.leaves_after)
        except asyncio.CancelledError:
            self.stopped = True
            raise
        return {"type": "http.disconnect"}


async def test_a_client_that_leaves_at_once_is_noticed_soon_and_the_wait_abandoned() -> None:
    abandoned = asyncio.Event()

    async def long_wait() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            abandoned.set()
            raise
        return "answer"

    started = time.monotonic()
    with pytest.raises(ClientGone):
        await until_disconnect(Client(leaves_after=0).receive, long_wait())
    assert abandoned.is_set() and time.monotonic() - started < 2


async def test_a_client_that_leaves_later_is_noticed_then() -> None:
    started = time.monotonic()
    with pytest.raises(ClientGone):
        await until_disconnect(Client(leaves_after=0.3).receive, asyncio.sleep(10))
    assert 0.3 <= time.monotonic() - started < 3


async def test_the_client_is_watched_while_the_answer_is_prepared_and_no_longer() -> None:
    client = Client(leaves_after=None)
    assert await until_disconnect(client.receive, asyncio.sleep(0.1, "answer")) == "answer"
    assert client.receives == 1
    await asyncio.sleep(0)  # the watcher's cancellation runs
    assert client.stopped
