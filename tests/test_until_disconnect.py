"""Noticing a client that leaves while its answer is prepared: the wait is abandoned, and the watcher does not
outlive the answer."""

from __future__ import annotations

import asyncio
import time

import pytest

from conftest import proxy_config, sdk
from proxy.app import create_app
from proxy.streaming import ClientGone, until_disconnect
from servers import running_app
from wire import wait_until


class Client:
    """A client that leaves ``leaves_after`` seconds after its request body was read."""

    def __init__(self, leaves_after: float) -> None:
        self.leaves_after = leaves_after

    async def receive(self):
        await asyncio.sleep(self.leaves_after)
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


class Server:
    """A server's ``receive()`` once the body is in: ``http.disconnect`` when the answer has been sent (ASGI)."""

    def __init__(self) -> None:
        self.answer_sent = asyncio.Event()
        self.receives = 0

    async def receive(self):
        self.receives += 1
        await self.answer_sent.wait()
        return {"type": "http.disconnect"}


async def test_one_watcher_guards_every_wait_of_a_request_and_ends_once_the_answer_is_sent() -> None:
    server = Server()
    assert await until_disconnect(server.receive, asyncio.sleep(0.05, "head")) == "head"
    assert await until_disconnect(server.receive, asyncio.sleep(0.05, "answer")) == "answer"
    assert server.receives == 1  # one watcher for both waits
    (watcher,) = asyncio.all_tasks() - {asyncio.current_task()}
    server.answer_sent.set()
    await asyncio.wait_for(watcher, 1)  # it ends by itself...
    assert not watcher.cancelled()
    await asyncio.sleep(0.01)  # ...and cancels nothing: a cancellation of this task would land here


async def test_a_client_gone_between_two_waits_ends_the_second_before_it_starts() -> None:
    client = Client(leaves_after=0.05)
    assert await until_disconnect(client.receive, asyncio.sleep(0, "head")) == "head"
    await asyncio.sleep(0.2)  # the client leaves while nothing is guarded: nothing is cancelled
    started = False

    async def answer() -> None:
        nonlocal started
        started = True

    with pytest.raises(ClientGone):
        await until_disconnect(client.receive, answer())
    assert not started


def test_no_watcher_outlives_its_answer_on_the_real_server(fake) -> None:
    """uvicorn reports ``http.disconnect`` to a ``receive()`` already waiting when the answer is complete, even on a
    connection kept open for the next request: that is what ends each request's watcher."""
    app = create_app(proxy_config(fake.base_url))
    loops = []

    async def recording(scope, receive, send):
        if not loops:
            loops.append(asyncio.get_running_loop())
        await app(scope, receive, send)

    def watchers():
        async def find():
            return [task for task in asyncio.all_tasks() if "_Watch._watch" in task.get_coro().__qualname__]
        return asyncio.run_coroutine_threadsafe(find(), loops[0]).result(5)

    with running_app(recording) as url:
        client = sdk(url)  # one pooled keep-alive connection
        for model in ("o3-pro", "gpt-4o"):
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
            chunks = list(client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}],
                                                         stream=True))
            assert chunks
        assert len(fake.requests) == 4
        wait_until(lambda: not watchers(), what="the watchers to end")
