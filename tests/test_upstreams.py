"""Several upstreams and several keys: routing by model, round-robin keys, rest after 401/429."""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager

import httpx
import openai
import pytest

from conftest import CLIENT_KEY, UPSTREAM_KEY, sdk
from fake_upstream import Reply, error_body, running_fake_upstream
from proxy.config import load_config
from proxy.keys import KeyRing, bearer_key, retry_after
from proxy.errors import UpstreamBroken
from proxy.upstream import Upstream
from servers import running_proxy

MESSAGES = [{"role": "user", "content": "Hi"}]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keys_are_used_in_turn():
    ring = KeyRing(["a", "b", "c", "a"], rest_seconds=60)
    assert len(ring) == 3
    assert [ring.pick() for _ in range(7)] == ["a", "b", "c", "a", "b", "c", "a"]


def test_a_rested_key_sits_out_until_its_rest_ends():
    clock = Clock()
    ring = KeyRing(["a", "b", "c"], rest_seconds=60, clock=clock)
    ring.rest("b")
    assert [ring.pick() for _ in range(4)] == ["a", "c", "a", "c"]
    assert ring.resting() == ["b"]
    clock.now += 60
    assert ring.resting() == [] and sorted(ring.pick() for _ in range(3)) == ["a", "b", "c"]


def test_when_every_key_rests_the_one_back_soonest_is_used():
    clock = Clock()
    ring = KeyRing(["a", "b"], rest_seconds=60, clock=clock)
    ring.rest("a", 30)
    ring.rest("b", 5)
    assert ring.pick() == "b"
    ring.rest("unknown")  # ignored
    assert ring.resting() == ["a", "b"]


def test_without_keys_nothing_is_picked():
    assert KeyRing([], rest_seconds=60).pick() is None


@pytest.mark.parametrize("headers, expected", [
    ({"retry-after": "7"}, 7.0), ({"retry-after": "0"}, 0.0), ({"retry-after": "soon"}, None), ({}, None),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0), ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
    ({"retry-after-ms": "x", "retry-after": "2"}, 2.0),
])
def test_retry_after(headers, expected):
    assert retry_after(headers) == expected


def test_bearer_key():
    assert bearer_key("Bearer sk-1") == "sk-1" and bearer_key("bearer  sk-1 ") == "sk-1"
    assert bearer_key("Basic abc") is None and bearer_key(None) is None and bearer_key("Bearer ") is None


async def test_headers_take_the_next_key_and_rekey_swaps_it():
    config = load_config(env={}, overrides={"upstream": {"api_key": "k1", "api_keys": ["k2"]}}).upstream
    upstream = Upstream(config)
    try:
        first = upstream.headers([(b"authorization", b"Bearer client"), (b"x-api-key", b"client"), (b"accept", b"*/*")])
        assert first == {"authorization": "Bearer k1", "accept": "*/*"}
        assert upstream.rekey(first) == {"authorization": "Bearer k2", "accept": "*/*"}
    finally:
        await upstream.aclose()
    keyless = Upstream(load_config(env={}).upstream)
    try:
        assert keyless.headers([(b"authorization", b"Bearer client")])["authorization"] == "Bearer client"
        assert keyless.rekey({"authorization": "Bearer client"}) == {"authorization": "Bearer client"}
    finally:
        await keyless.aclose()


def keys_used(fake):
    return [request.headers["authorization"] for request in fake.requests]


def chat(url, model="o3-pro"):
    return httpx.post(url + "/v1/chat/completions", json={"model": model, "messages": MESSAGES},
                      headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=30)


@pytest.mark.parametrize("status", [401, 429])
def test_a_key_the_upstream_refuses_rests(make_proxy, fake, status):
    fake.script(Reply(status, json=error_body("Rate limit reached" if status == 429 else "Incorrect API key")))
    with make_proxy(upstream={"api_key": "sk-a", "api_keys": ["sk-b", "sk-c"]}) as url:
        # A 401 is the client's answer; a 429 is retried at once with the next key.
        assert chat(url).status_code == (status if status == 401 else 200)
        for _ in range(4):
            assert chat(url).status_code == 200
        metrics = httpx.get(url + "/metrics").text
    used = ["Bearer sk-a", "Bearer sk-b", "Bearer sk-c", "Bearer sk-b", "Bearer sk-c"]
    assert keys_used(fake) == (used if status == 401 else used + ["Bearer sk-b"])
    assert f'proxy_upstream_key_rests_total{{status="{status}",upstream="default"}}' in metrics


async def test_retry_after_sets_the_rest(fake):
    fake.script(Reply(429, headers={"retry-after": "0.2"}, json=error_body("Slow down")), Reply(200, json={}),
                Reply(200, json={}))
    config = load_config(env={}, overrides={"upstream": {"base_url": fake.base_url, "api_key": "sk-a",
                                                         "api_keys": ["sk-b"]}}).upstream
    upstream = Upstream(config)
    try:
        statuses = []
        for _ in range(3):
            response = await upstream.send("POST", "/responses", upstream.headers(()), json={})
            statuses.append(response.status_code)
            response.close()
        assert statuses == [429, 200, 200]
        assert keys_used(fake) == ["Bearer sk-a", "Bearer sk-b", "Bearer sk-b"]
        assert upstream.keys.resting() == ["sk-a"]
        await asyncio.sleep(0.25)
        assert upstream.keys.resting() == [] and upstream.keys.pick() == "sk-a"
    finally:
        await upstream.aclose()


def two_upstreams(fake):
    return running_proxy(load_config(env={"OPENAI_API_KEY": "sk-unused"}, overrides={"upstreams": [
        {"name": "direct", "base_url": fake.base_url, "api_key": "sk-direct", "models": ["o3-pro*", "gpt-4o"],
         "headers": {"x-via": "direct"}},
        {"name": "aggregator", "base_url": fake.base_url, "api_key": "sk-agg", "models": ["openai/*", "text-*"],
         "headers": {"x-via": "aggregator"}},
    ], "background": {"poll_initial": 0.02, "poll_max": 0.05}}))


def test_chat_requests_go_to_the_upstream_serving_their_model(fake):
    with two_upstreams(fake) as url:
        assert chat(url, "o3-pro").status_code == 200
        assert chat(url, "openai/o3-pro").status_code == 200
        assert chat(url, "gpt-4o").status_code == 200
        missing = chat(url, "claude-3")
    # o3-pro runs in background mode by default, followed by its stream on the upstream that created it: no poll.
    creates = [r for r in fake.requests if r.method == "POST"]
    assert [r for r in fake.requests if r.method == "GET"] == []
    assert [r.json.get("background") for r in creates[:2]] == [True, True]
    assert [(r.path, r.headers["x-via"], r.headers["authorization"]) for r in creates] == [
        ("/v1/responses", "direct", "Bearer sk-direct"),
        ("/v1/responses", "aggregator", "Bearer sk-agg"),
        ("/v1/chat/completions", "direct", "Bearer sk-direct"),
    ]
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_other_requests_go_by_their_json_model_else_to_the_first(fake):
    with two_upstreams(fake) as url:
        embedded = httpx.post(url + "/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hi"})
        upload = httpx.post(url + "/v1/audio/transcriptions", files={"file": ("a.wav", b"RIFF")},
                            data={"model": "text-whisper"})
    assert embedded.status_code == upload.status_code == 200
    assert embedded.json()["model"] == "text-embedding-3-small"
    assert [(r.path, r.headers["x-via"]) for r in fake.requests] == [
        ("/v1/embeddings", "aggregator"), ("/v1/audio/transcriptions", "direct")]


def model_list(*ids):
    return Reply(json={"object": "list", "data": [
        {"id": model, "object": "model", "created": 1715367049, "owned_by": "system"} for model in ids]})


@contextmanager
def direct_and_aggregator(fake, aggregator_fake):
    """Two upstreams on two fake servers, so each can list and keep its own things."""
    with running_proxy(load_config(env={"OPENAI_API_KEY": "sk-unused"}, overrides={
        "translate": {"list_variants": []},
        "upstreams": [
            {"name": "direct", "base_url": fake.base_url, "api_key": "sk-direct", "models": ["o3-pro*", "gpt-4o"]},
            {"name": "aggregator", "base_url": aggregator_fake.base_url, "api_key": "sk-agg",
             "models": ["openai/*", "text-*"]},
        ]})) as url:
        yield url


def test_the_model_list_holds_every_upstreams_models_each_where_it_is_routed(fake):
    # Each upstream lists more than the proxy sends it; a model is listed from the upstream that serves it.
    fake.script(model_list("gpt-4o", "o3-pro", "claude-3", "openai/gpt-4o"))
    with running_fake_upstream() as aggregator:
        aggregator.script(model_list("openai/o3-pro", "gpt-4o", "openai/gpt-4o", "text-embedding-3-small"))
        with direct_and_aggregator(fake, aggregator) as url:
            ids = [model.id for model in sdk(url).models.list()]
        assert [r.headers["authorization"] for r in aggregator.requests] == ["Bearer sk-agg"]
    assert ids == ["gpt-4o", "o3-pro", "openai/o3-pro", "openai/gpt-4o", "text-embedding-3-small"]
    assert [r.headers["authorization"] for r in fake.requests] == ["Bearer sk-direct"]


def test_an_upstream_without_a_list_is_left_out_of_it(fake):
    fake.script(model_list("gpt-4o", "o3-pro"))
    with running_fake_upstream() as aggregator:
        aggregator.script(Reply(403, json=error_body("Listing models is not allowed for this key")))
        with direct_and_aggregator(fake, aggregator) as url:
            ids = [model.id for model in sdk(url).models.list()]
    assert ids == ["gpt-4o", "o3-pro"]


def test_when_no_upstream_lists_models_the_first_ones_error_is_relayed(fake):
    fake.script(Reply(403, json=error_body("Listing models is not allowed for this key")))
    with running_fake_upstream() as aggregator:
        aggregator.script(Reply(404, body=b"<html>Not Found</html>", content_type="text/html"))
        with direct_and_aggregator(fake, aggregator) as url:
            with pytest.raises(openai.PermissionDeniedError) as refused:
                sdk(url).models.list()
    assert refused.value.status_code == 403
    assert "not allowed" in refused.value.message


def test_the_upstream_key_replaces_the_clients(proxy_url, fake):
    assert chat(proxy_url).status_code == 200
    assert keys_used(fake) == [f"Bearer {UPSTREAM_KEY}"]


def test_a_rate_limited_key_is_swapped_at_once(make_proxy, fake):
    fake.script(Reply(429, json=error_body("Rate limit reached"), headers={"retry-after": "30"}))
    with make_proxy(upstream={"api_key": "sk-a", "api_keys": ["sk-b"]}) as url:
        started = time.monotonic()
        assert chat(url).status_code == 200
    assert time.monotonic() - started < 5  # not the 30 s the refused key was told to wait
    assert keys_used(fake) == ["Bearer sk-a", "Bearer sk-b"]


async def answering(head: bytes, body: bytes):
    """A one-shot upstream on loopback that writes ``head`` and ``body`` and then closes the connection."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, Upstream(load_config(env={}, overrides={"upstream": {"base_url": f"http://127.0.0.1:{port}/v1",
                                                                        "api_key": "sk-a"}}).upstream)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
@pytest.mark.parametrize("size", [300, 4 * 1024 * 1024])
async def test_a_body_within_the_limit_is_read_whole_a_larger_one_only_as_far_as_the_limit(declared, size):
    limit = 64 * 1024
    body = b'{"id": "resp_1", "output": []}'.ljust(size)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + (
        b"content-length: %d\r\n" % size if declared else b"connection: close\r\n") + b"\r\n"
    server, upstream = await answering(head, body)
    try:
        response = await upstream.send("POST", "/responses", upstream.headers(()), json={})
        read = await response.read(limit)
        if size <= limit:
            assert read == body and not response.cut
        else:  # reading stops at the first piece past the limit, and what is read of it is cut there
            assert read == body[:limit] and response.cut
    finally:
        await upstream.aclose()
        server.close()


async def test_a_body_shorter_than_declared_is_a_broken_answer():
    server, upstream = await answering(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n",
                                       b'{"id": "resp_1", "out')
    try:
        response = await upstream.send("POST", "/responses", upstream.headers(()), json={})
        with pytest.raises(UpstreamBroken):
            await response.read(1024)
    finally:
        await upstream.aclose()
        server.close()


def test_a_stored_response_is_found_on_the_upstream_that_made_it(fake):
    with running_fake_upstream() as aggregator:
        with direct_and_aggregator(fake, aggregator) as url:
            client = sdk(url)
            created = client.responses.create(model="openai/gpt-4o", input="Hi", store=True)
            found = client.responses.retrieve(created.id)
            client.responses.delete(created.id)
            with pytest.raises(openai.NotFoundError):
                client.responses.retrieve(created.id)
        on_aggregator = [(r.method, r.path) for r in aggregator.requests]
    assert found.id == created.id and found.output_text == created.output_text
    one = f"/v1/responses/{created.id}"
    assert [(r.method, r.path) for r in fake.requests] == [("GET", one), ("DELETE", one), ("GET", one)]
    assert on_aggregator == [("POST", "/v1/responses"), ("GET", one), ("DELETE", one), ("GET", one)]


def test_a_request_routed_by_its_model_or_with_an_upload_is_not_tried_elsewhere(fake):
    fake.script(Reply(404, json=error_body("The model `o3-pro` does not exist", code="model_not_found")))
    with running_fake_upstream() as aggregator:
        with direct_and_aggregator(fake, aggregator) as url:
            client = sdk(url)
            with pytest.raises(openai.NotFoundError):
                client.responses.create(model="o3-pro", input="Hi")
            # an upload to an endpoint the first upstream does not serve: its 404 is final, the body is gone
            upload = httpx.post(url + "/v1/images/edits", files={"image": ("a.png", b"PNG")},
                                data={"prompt": "a hat"})
        assert aggregator.requests == []
    assert upload.status_code == 404
    assert [(r.method, r.path) for r in fake.requests] == [("POST", "/v1/responses"), ("POST", "/v1/images/edits")]
