"""Stored responses (``store``, true by default) of `/v1/responses` requests served through chat, in each store.

The stores themselves (memory, an SQLite file, Redis): bounded in number, in bytes and in age, the oldest going
first, expired ones purged. Then the real proxy: a conversation that survives a restart of the proxy process (the
SQLite file), two proxies sharing one Redis, a store that fails (the answer is served, the response not kept),
``store: false``, and an expired id answered with the API's 404.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
from collections.abc import AsyncIterator, Iterator
from typing import Any

import fakeredis
import httpx
import orjson
import pytest

from conftest import CLIENT_KEY, proxy_config
from fake_chat_upstream import Chat, FakeChatUpstream
from proxy.config import load_config
from proxy.translate import new_response_id
from proxy.stored_responses import (Bounds, MemoryResponses, RedisResponses, ResponseStore, SqliteResponses,
                                    default_sqlite_path, open_response_store, with_ids)
from proxy.app import create_app
from servers import free_port, proxy_process, running_app, running_proxy, running_redis

MODEL = "deepseek-chat"
HEADERS = {"authorization": f"Bearer {CLIENT_KEY}"}
INPUT = [{"type": "message", "role": "user", "content": "hi"}]


class Clock:
    def __init__(self) -> None:
        self.time = 1_000_000.0

    def __call__(self) -> float:
        return self.time


def response(n: int, text: str = "") -> dict[str, Any]:
    return {"id": f"resp_{n}", "object": "response", "output": [{"type": "message", "text": text}]}


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def make_store(request, tmp_path) -> AsyncIterator:
    """Build a store of each kind with the given bounds and clock; closed at the end."""
    made: list[ResponseStore] = []
    server = fakeredis.FakeServer()

    def make(entries: int = 100, max_bytes: int = 1 << 20, ttl: float = 60, now: Clock | None = None,
             ) -> ResponseStore:
        bounds, clock = Bounds(entries, max_bytes, ttl), now or Clock()
        if request.param == "memory":
            store: ResponseStore = MemoryResponses(bounds, clock)
        elif request.param == "sqlite":
            store = SqliteResponses(str(tmp_path / "responses.db"), bounds, clock)
        else:
            store = RedisResponses(fakeredis.FakeAsyncRedis(server=server), bounds, now=clock)
        made.append(store)
        return store

    make.kind = request.param
    yield make
    for store in made:
        await store.aclose()


async def kept(store: ResponseStore, count: int) -> list[int]:
    return [n for n in range(count) if await store.get(f"resp_{n}") is not None]


async def test_a_stored_response_is_read_back_as_it_was_put(make_store):
    store = make_store()
    await store.put(response(1, "Paris."), INPUT, [{"type": "message", "role": "user", "content": "before"}])
    stored = await store.get("resp_1")
    assert stored.response == response(1, "Paris.")
    assert stored.input_items[0]["id"].startswith("msg_") and stored.input_items[0]["content"] == "hi"
    assert [item["content"] for item in stored.conversation()[:2]] == ["before", "hi"]
    assert await store.get("resp_2") is None


async def test_the_store_is_bounded_in_number_the_oldest_going_first(make_store):
    store = make_store(entries=2)
    for n in range(3):
        await store.put(response(n), INPUT, [])
    assert await kept(store, 3) == [1, 2]


async def test_the_store_is_bounded_in_bytes_the_oldest_going_first(make_store):
    size = len(orjson.dumps({"response": response(0, "x" * 1000), "input_items": with_ids(INPUT), "history": [],
                             "owner": ""}))
    store = make_store(max_bytes=3 * size)  # three fit
    for n in range(4):
        await store.put(response(n, "x" * 1000), INPUT, [])
    assert await kept(store, 4) == [1, 2, 3]
    await store.put(response(4, "y" * (size + 1000)), INPUT, [])  # one twice as large makes room by two
    assert await kept(store, 5) == [3, 4]


async def test_a_response_larger_than_the_bound_is_not_kept_and_evicts_nothing(make_store):
    store = make_store(max_bytes=5000)
    await store.put(response(0), INPUT, [])
    await store.put(response(1, "x" * 6000), INPUT, [])
    assert await kept(store, 2) == [0]


async def test_storing_an_id_again_replaces_it_and_counts_once(make_store):
    store = make_store(entries=2)
    for n in (0, 1, 1, 1):
        await store.put(response(n, f"take {n}"), INPUT, [])
    assert await kept(store, 2) == [0, 1]
    await store.put(response(2), INPUT, [])
    assert await kept(store, 3) == [1, 2]


async def test_a_response_expires_after_the_ttl_and_is_purged(make_store, tmp_path):
    clock = Clock()
    store = make_store(ttl=10, now=clock)
    await store.put(response(0), INPUT, [])
    clock.time += 9.9
    assert await kept(store, 1) == [0]
    clock.time += 0.1
    assert await store.get("resp_0") is None
    assert await store.delete("resp_0") is False
    await store.put(response(1), INPUT, [])  # a write purges what expired
    if make_store.kind == "sqlite":
        with sqlite3.connect(tmp_path / "responses.db") as db:
            assert db.execute("SELECT id FROM responses").fetchall() == [("resp_1",)]
            assert db.execute("SELECT entries FROM totals").fetchone() == (1,)
    elif make_store.kind == "redis":
        assert await store.client.zrange(RedisResponses.INDEX, 0, -1) == [b"resp_1"]
        assert await store.client.hkeys(RedisResponses.SIZES) == [b"resp_1"]


async def test_a_deleted_response_is_gone_and_frees_its_room(make_store):
    store = make_store(entries=2)
    await store.put(response(0), INPUT, [])
    await store.put(response(1), INPUT, [])
    assert await store.delete("resp_0") is True
    assert await store.delete("resp_0") is False
    await store.put(response(2), INPUT, [])
    assert await kept(store, 3) == [1, 2]


async def test_a_store_of_no_entries_keeps_nothing(make_store):
    store = make_store(entries=0)
    await store.put(response(0), INPUT, [])
    assert await store.get("resp_0") is None


async def test_the_sqlite_file_keeps_the_bounds_across_connections(tmp_path):
    """A second process (or a restart) sees the first one's responses and totals: they are in the file."""
    path, clock = str(tmp_path / "responses.db"), Clock()
    first = SqliteResponses(path, Bounds(2, 1 << 20, 60), clock)
    await first.put(response(0), INPUT, [])
    await first.put(response(1), INPUT, [])
    await first.aclose()
    second = SqliteResponses(path, Bounds(2, 1 << 20, 60), clock)
    await second.put(response(2), INPUT, [])
    assert await kept(second, 3) == [1, 2]
    await second.aclose()


def test_the_store_setting_names_the_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_sqlite_path() == str(tmp_path / "responses-proxy" / "responses.db")

    def store(env: dict[str, str], **to_chat: Any) -> ResponseStore:
        return open_response_store(load_config(env=env, overrides={"to_chat": to_chat} if to_chat else None).to_chat)

    default = store({})
    assert isinstance(default, SqliteResponses) and default.path == default_sqlite_path()
    assert store({}, store="sqlite:///data/r.db").path == "/data/r.db"
    assert store({"PROXY_RESPONSE_STORE": "sqlite://r.db"}).path == "r.db"
    assert isinstance(store({}, store="memory"), MemoryResponses)
    redis_store = store({"PROXY_RESPONSE_STORE": "redis://:secret@localhost:6379/0"})
    assert isinstance(redis_store, RedisResponses) and redis_store.where == "Redis at redis://localhost:6379/0"


@pytest.mark.parametrize("value", ["sqlite://", "postgres://db", "/data/responses.db", "Memory"])
def test_a_store_setting_of_another_form_is_refused(value):
    from proxy.config import ConfigError

    with pytest.raises(ConfigError, match="to_chat.store"):
        load_config(env={}, overrides={"to_chat": {"store": value}})


# ---------------------------------------------------------------- through the proxy


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + "/v1/responses", json={"model": MODEL, **body}, headers=HEADERS, timeout=30)


def get(url: str, path: str) -> httpx.Response:
    return httpx.get(url + "/v1/responses/" + path, headers=HEADERS, timeout=30)


def last_history(fake: FakeChatUpstream) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in fake.requests_to("/chat/completions")[-1].json["messages"]]


NOT_FOUND = {"error": {"message": "Previous response with id '{}' not found.", "type": "invalid_request_error",
                       "param": "previous_response_id", "code": "previous_response_not_found"}}


def not_found(response_id: str) -> dict[str, Any]:
    return {"error": {**NOT_FOUND["error"], "message": NOT_FOUND["error"]["message"].format(response_id)}}


def test_a_conversation_survives_a_restart_of_the_proxy(chat_fake, tmp_path):
    """The proxy process stops and starts again on the same SQLite file: the chain goes on, GET, input_items
    and DELETE work on what the first process stored."""
    chat_fake.script(Chat(content="Paris."), Chat(content="About 2 million."))
    config = tmp_path / "config.yaml"
    config.write_text(f"upstream:\n  base_url: {chat_fake.base_url}\n  api_key: sk-test\n  chat_only: true\n")
    env = {**os.environ, "PROXY_RESPONSE_STORE": f"sqlite://{tmp_path}/state/responses.db"}

    process, url = proxy_process(["--config", str(config)], env)
    try:
        first = post(url, {"input": "Capital of France?"}).json()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    assert first["status"] == "completed"

    process, url = proxy_process(["--config", str(config)], env)
    try:
        second = post(url, {"input": "Its population?", "previous_response_id": first["id"]})
        assert second.status_code == 200 and second.json()["previous_response_id"] == first["id"]
        assert last_history(chat_fake) == [("user", "Capital of France?"), ("assistant", "Paris."),
                                           ("user", "Its population?")]
        assert get(url, first["id"]).json() == first
        items = get(url, first["id"] + "/input_items").json()
        assert [item["content"][0]["text"] for item in items["data"]] == ["Capital of France?"]
        assert httpx.delete(f"{url}/v1/responses/{first['id']}", headers=HEADERS).json() == \
            {"id": first["id"], "object": "response", "deleted": True}
        again = post(url, {"input": "And?", "previous_response_id": first["id"]})
        assert (again.status_code, again.json()) == (404, not_found(first["id"]))
        assert get(url, second.json()["id"]).json() == second.json()  # the second response is stored too
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


@pytest.fixture
def redis_url() -> Iterator[str]:
    with running_redis() as url:
        yield url


def test_two_proxies_share_stored_responses_through_redis(chat_fake, redis_url):
    chat_fake.script(Chat(content="Paris."), Chat(content="About 2 million."))
    to_chat = {"store": redis_url}
    with running_proxy(proxy_config(chat_fake.base_url, upstream={"chat_only": True}, to_chat=to_chat)) as one, \
            running_proxy(proxy_config(chat_fake.base_url, upstream={"chat_only": True}, to_chat=to_chat)) as two:
        first = post(one, {"input": "Capital of France?"}).json()
        second = post(two, {"input": "Its population?", "previous_response_id": first["id"], "stream": True})
        assert second.status_code == 200 and '"previous_response_id":"' + first["id"] in second.text
        assert last_history(chat_fake)[:2] == [("user", "Capital of France?"), ("assistant", "Paris.")]
        assert get(two, first["id"]).json() == first
        assert httpx.delete(f"{one}/v1/responses/{first['id']}", headers=HEADERS).status_code == 200
        again = post(two, {"input": "And?", "previous_response_id": first["id"]})
        assert (again.status_code, again.json()) == (404, not_found(first["id"]))


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_store_that_fails_does_not_fail_the_answer(chat_fake, tmp_path, kind, caplog):
    """An SQLite file that cannot be made (its directory is a file), a Redis that is not there: the answer is
    served, the response is not kept, and continuing it is the API's 404."""
    (tmp_path / "not-a-directory").write_text("")
    store = f"sqlite://{tmp_path}/not-a-directory/responses.db" if kind == "sqlite" else \
        f"redis://127.0.0.1:{free_port()}/0"
    chat_fake.script(Chat(content="Paris."), Chat(content="Paris."))
    with running_proxy(proxy_config(chat_fake.base_url, upstream={"chat_only": True},
                                    to_chat={"store": store})) as url:
        answer = post(url, {"input": "Capital of France?"})
        streamed = post(url, {"input": "Capital of France?", "stream": True})
        again = post(url, {"input": "And?", "previous_response_id": answer.json()["id"]})
    assert answer.status_code == 200 and answer.json()["status"] == "completed"
    assert streamed.status_code == 200 and "response.completed" in streamed.text
    assert (again.status_code, again.json()) == (404, not_found(answer.json()["id"]))
    assert any(f"could not store response {answer.json()['id']}" in record.getMessage()
               for record in caplog.records)


def test_store_false_keeps_nothing_in_the_file(chat_fake, tmp_path):
    chat_fake.script(Chat(content="Paris."))
    path = tmp_path / "responses.db"
    with running_proxy(proxy_config(chat_fake.base_url, upstream={"chat_only": True},
                                    to_chat={"store": f"sqlite://{path}"})) as url:
        first = post(url, {"input": "Capital of France?", "store": False}).json()
        again = post(url, {"input": "And?", "previous_response_id": first["id"]})
        assert (again.status_code, again.json()) == (404, not_found(first["id"]))
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM responses").fetchone() == (0,)


def test_an_expired_response_is_the_apis_404(chat_fake):
    clock = Clock()

    def with_clock(app) -> None:
        app.state.proxy.stored_responses.now = clock

    chat_fake.script(Chat(content="Paris."), Chat(content="Paris again."))
    with running_proxy(proxy_config(chat_fake.base_url, upstream={"chat_only": True},
                                    to_chat={"stored_ttl": 60}), with_clock) as url:
        first = post(url, {"input": "Capital of France?"}).json()
        clock.time += 59
        assert post(url, {"input": "Sure?", "previous_response_id": first["id"]}).status_code == 200
        clock.time += 1
        expired = post(url, {"input": "Sure?", "previous_response_id": first["id"]})
        assert (expired.status_code, expired.json()) == (404, not_found(first["id"]))
        assert get(url, first["id"]).status_code == 404  # not ours any more: asked of the upstream, which has none


def test_a_streamed_response_is_stored_before_its_last_event_is_sent(chat_fake):
    """A client that continues the conversation as soon as it reads ``response.completed`` finds it stored."""
    chat_fake.script(Chat(content="Paris."))
    happened: list[str] = []

    class Recorded(MemoryResponses):
        async def _put(self, response_id: str, data: bytes, expires: float) -> None:
            happened.append("stored")
            await super()._put(response_id, data, expires)

    app = create_app(proxy_config(chat_fake.base_url, upstream={"chat_only": True}))
    app.state.proxy.stored_responses = Recorded(app.state.proxy.stored_responses.bounds)

    async def recording(scope, receive, send):
        async def sent(message):
            if b"response.completed" in message.get("body", b""):
                happened.append("sent")
            await send(message)

        await app(scope, receive, sent if scope["type"] == "http" else send)

    with running_app(recording) as url:
        assert "response.completed" in post(url, {"input": "Capital of France?", "stream": True}).text
    assert happened == ["stored", "sent"]


async def test_a_record_that_is_not_a_stored_response_reads_as_none(tmp_path):
    store = SqliteResponses(str(tmp_path / "responses.db"), Bounds(10, 1 << 20, 60))
    await store.put(response(0), INPUT, [])
    with sqlite3.connect(tmp_path / "responses.db") as db:
        db.execute("UPDATE responses SET data = 'not json'")
    assert await store.get("resp_0") is None
    await store.aclose()


async def test_writers_sharing_the_sqlite_file_keep_its_bounds(tmp_path):
    """Worker processes of one proxy share the file: each has its own connection, writing at the same time."""
    path = str(tmp_path / "responses.db")
    stores = [SqliteResponses(path, Bounds(20, 1 << 20, 60)) for _ in range(3)]

    async def write(n: int, store: SqliteResponses) -> None:
        for k in range(40):
            await store.put(response(n * 100 + k), INPUT, [])

    await asyncio.gather(*(write(n, store) for n, store in enumerate(stores)))
    with sqlite3.connect(path) as db:
        entries, total = db.execute("SELECT count(*), total(size) FROM responses").fetchone()
        assert (entries, total) == db.execute("SELECT entries, bytes FROM totals").fetchone()
    assert entries == 20
    for store in stores:
        await store.aclose()


def test_a_stored_response_is_found_by_the_caller_that_made_it_alone(chat_fake):
    """Another caller (other credentials) knows nothing of it, as the API knows nothing of another organisation's
    responses: reading, listing, continuing, deleting and cancelling it are all as for an unknown id."""
    other = {"authorization": "Bearer another-callers-key"}
    with running_proxy(proxy_config(chat_fake.base_url, upstream={"chat_only": True})) as url:
        chat_fake.script(Chat(content="Paris."))
        made = post(url, {"input": "Capital of France?"}).json()
        stolen = httpx.get(f"{url}/v1/responses/{made['id']}", headers=other)
        assert stolen.status_code == 404  # passed through: the chat-only upstream has no such response
        assert httpx.get(f"{url}/v1/responses/{made['id']}/input_items", headers=other).status_code == 404
        continued = httpx.post(url + "/v1/responses", headers=other, json={
            "model": MODEL, "input": "And Italy?", "previous_response_id": made["id"]})
        assert (continued.status_code, continued.json()) == (404, not_found(made["id"]))
        assert httpx.delete(f"{url}/v1/responses/{made['id']}", headers=other).status_code == 404
        assert httpx.post(f"{url}/v1/responses/{made['id']}/cancel", headers=other).status_code == 404
        mine = get(url, made["id"])
        assert (mine.status_code, mine.json()) == (200, made)


def test_response_ids_do_not_come_from_the_random_module():
    """Ids are the only thing between a caller and a response of its own: unguessable, not from a seedable
    generator."""
    random.seed(7)
    first = new_response_id()
    random.seed(7)
    assert new_response_id() != first and len(first) == len("resp_") + 48
