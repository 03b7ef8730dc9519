"""A client's retry of a background run follows the run it left (background.reattach_window, Idempotency-Key):
one upstream run in all, the whole answer, x-proxy-reattached; a delivered answer is never given again."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from chunks import fold
from conftest import proxy_config
from fake_upstream import Reply, Stream, build_response, error_body, message_item, stream_events
from servers import running_proxy, until

MESSAGES = [{"role": "user", "content": "Prove it."}]
TEXT = "A long proof, sent in many small pieces so that the run takes a while."
REQUEST = {"model": "o3-pro", "messages": MESSAGES}


def slow_run(delay=0.02):
    events = stream_events(build_response({"background": True, "store": True, "model": "o3-pro"},
                                          [message_item(TEXT)]), text_chunk=2)
    return Stream(events=events, delay=delay), events[0]["response"]["id"]


def config(fake, window=30.0):
    return proxy_config(fake.base_url, models={"o3-pro*": {"background": True}},
                        background={"reattach_window": window})


def creates(fake):
    return fake.requests_to("/responses")


class Proxy:
    """The proxy on loopback, and its registry of runs, to wait until it has seen a client leave."""

    def __init__(self):
        self.app = None

    def __call__(self, app):
        self.app = app

    def left(self):
        return all(getattr(run, "followers", 1) == 0 for run in self.app.state.proxy.runs._runs.values())


def streamed_text(body: str) -> str:
    payloads = [line[6:] for line in body.split("\n") if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    return fold([json.loads(p) for p in payloads[:-1]])["message"]["content"]


async def test_a_client_that_times_out_and_retries_gets_the_same_run(fake):
    stream, response_id = slow_run()
    fake.script(stream)
    proxy = Proxy()
    with running_proxy(config(fake), proxy) as url:
        async with httpx.AsyncClient(timeout=0.3) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(url + "/v1/chat/completions", json=REQUEST)
        await until(proxy.left)
        async with httpx.AsyncClient(timeout=30) as http:
            retry = await http.post(url + "/v1/chat/completions", json=REQUEST)
    assert retry.status_code == 200
    assert retry.json()["choices"][0]["message"]["content"] == TEXT
    assert retry.headers["x-proxy-reattached"] == response_id
    assert len(creates(fake)) == 1 and fake.cancelled == []


async def test_a_streaming_retry_gets_the_whole_stream_from_its_first_event(fake):
    stream, response_id = slow_run()
    fake.script(stream)
    proxy = Proxy()
    body = {**REQUEST, "stream": True}
    with running_proxy(config(fake), proxy) as url:
        async with httpx.AsyncClient(timeout=30) as http:
            async with http.stream("POST", url + "/v1/chat/completions", json=body) as first:
                async for line in first.aiter_lines():
                    if '"content"' in line:
                        break  # the user's tab closes mid-answer
        await until(proxy.left)
        async with httpx.AsyncClient(timeout=30) as http:
            retry = await http.post(url + "/v1/chat/completions", json={**REQUEST, "stream": False})
            again = await http.post(url + "/v1/chat/completions", json=body)  # delivered: a new run
    assert retry.headers["x-proxy-reattached"] == response_id
    assert retry.json()["choices"][0]["message"]["content"] == TEXT
    assert "x-proxy-reattached" not in again.headers
    assert streamed_text(again.text).startswith("Echo: Prove it.")
    assert len(creates(fake)) == 2


async def test_a_regenerate_after_a_delivered_answer_is_a_new_run(fake):
    with running_proxy(config(fake)) as url:
        async with httpx.AsyncClient(timeout=30) as http:
            first = await http.post(url + "/v1/chat/completions", json=REQUEST)
            second = await http.post(url + "/v1/chat/completions", json={**REQUEST, "stream": True})
    assert first.status_code == second.status_code == 200
    assert "x-proxy-reattached" not in first.headers and "x-proxy-reattached" not in second.headers
    assert len(creates(fake)) == 2


async def test_the_same_idempotency_key_gets_the_same_run_while_connected_and_after_delivery(fake):
    stream, response_id = slow_run(delay=0.01)
    fake.script(stream)
    keyed = {"idempotency-key": "conv-1-turn-3"}
    with running_proxy(config(fake)) as url:
        async with httpx.AsyncClient(timeout=30) as http:
            first, second = await asyncio.gather(
                http.post(url + "/v1/chat/completions", json=REQUEST, headers=keyed),
                http.post(url + "/v1/chat/completions", json={**REQUEST, "stream": True}, headers=keyed))
            after = await http.post(url + "/v1/chat/completions", json=REQUEST, headers=keyed)
            other = await http.post(url + "/v1/chat/completions", json=REQUEST, headers={"idempotency-key": "other"})
    assert first.json()["choices"][0]["message"]["content"] == TEXT
    assert streamed_text(second.text) == TEXT
    assert after.json()["choices"][0]["message"]["content"] == TEXT
    assert [r.headers.get("x-proxy-reattached") for r in (first, second, after)].count(response_id) == 2
    assert other.json()["choices"][0]["message"]["content"].startswith("Echo: Prove it.")
    assert len(creates(fake)) == 2


async def test_a_run_nobody_comes_back_to_is_cancelled_after_the_window(fake):
    stream, response_id = slow_run(delay=0.05)
    fake.script(stream)
    with running_proxy(config(fake, window=0.2)) as url:
        async with httpx.AsyncClient(timeout=0.3) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(url + "/v1/chat/completions", json=REQUEST)
        await until(lambda: fake.cancelled)
        metrics = httpx.get(url + "/metrics").text
    assert fake.cancelled == [response_id]
    assert "proxy_runs_cancelled_after_window_total 1.0" in metrics


async def test_another_caller_never_follows_a_run(fake):
    stream, _ = slow_run()
    fake.script(stream)
    proxy = Proxy()
    with running_proxy(config(fake), proxy) as url:
        async with httpx.AsyncClient(timeout=0.3, headers={"authorization": "Bearer one"}) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(url + "/v1/chat/completions", json=REQUEST)
        await until(proxy.left)
        async with httpx.AsyncClient(timeout=30, headers={"authorization": "Bearer two"}) as http:
            other = await http.post(url + "/v1/chat/completions", json=REQUEST)
    assert "x-proxy-reattached" not in other.headers
    assert len(creates(fake)) == 2


async def test_a_run_the_upstream_would_not_put_in_the_background_ends_with_its_client(fake):
    """Refused background mode, the run is a plain stream: nobody can come back to it, so it is not kept."""
    stream, _ = slow_run()
    fake.script(Reply(400, json=error_body("Unknown parameter: 'background'.", param="background")), stream)
    with running_proxy(config(fake), Proxy()) as url:
        async with httpx.AsyncClient(timeout=0.3) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(url + "/v1/chat/completions", json=REQUEST)
        await fake.wait_for_disconnect()  # the upstream stream is closed with the client, not read on
    assert [r.json.get("background") for r in creates(fake)] == [True, None]


def script(fake, *texts, delay=0.02):
    """Script one slow background run per text; their response ids."""
    ids = []
    for text in texts:
        events = stream_events(build_response({"background": True, "store": True, "model": "o3-pro"},
                                              [message_item(text)]), text_chunk=2)
        fake.script(Stream(events=events, delay=delay))
        ids.append(events[0]["response"]["id"])
    return ids


def evicted(url):
    """Runs let go of early so far (the counters are the test process's, shared by every proxy in it)."""
    lines = httpx.get(url + "/metrics").text.splitlines()
    return next((float(line.split()[1]) for line in lines if line.startswith("proxy_runs_evicted_total ")), 0.0)


def asking(text):
    return {"model": "o3-pro", "messages": [{"role": "user", "content": text}]}


async def test_a_retry_that_comes_before_its_client_is_seen_gone_follows_the_run(fake, caplog):
    """The retry reaches the proxy while the first request still looks connected (its client closes its socket
    a moment later): it waits for that client to be gone, then follows the run."""
    caplog.set_level(logging.DEBUG, logger="proxy.reattach")
    [response_id] = script(fake, TEXT, delay=0.05)  # 2 s: the first client leaves long before its end
    body = {**REQUEST, "stream": True}
    with running_proxy(config(fake)) as url:
        async with httpx.AsyncClient(timeout=30) as http, httpx.AsyncClient(timeout=30) as other:
            async with http.stream("POST", url + "/v1/chat/completions", json=body) as first:
                lines = first.aiter_lines()  # kept: the connection stays open until the block ends
                async for line in lines:
                    if '"content"' in line:
                        break
                retry = asyncio.ensure_future(other.post(url + "/v1/chat/completions", json=REQUEST))
                await until(lambda: "waits up to" in caplog.text)
            retry = await retry
    assert retry.status_code == 200
    assert retry.headers["x-proxy-reattached"] == response_id
    assert retry.json()["choices"][0]["message"]["content"] == TEXT
    assert len(creates(fake)) == 1 and fake.cancelled == []


async def test_two_clients_asking_the_same_at_once_get_a_run_each(fake, monkeypatch):
    monkeypatch.setattr("proxy.reattach.ATTACH_GRACE", 0.2)
    script(fake, TEXT)
    body = {**REQUEST, "stream": True}
    with running_proxy(config(fake)) as url:
        async with httpx.AsyncClient(timeout=30) as http:
            async with http.stream("POST", url + "/v1/chat/completions", json=body) as first:
                lines = first.aiter_lines()
                async for line in lines:
                    if '"content"' in line:
                        break
                second = await http.post(url + "/v1/chat/completions", json=REQUEST)
                rest = [line async for line in lines]
    assert "x-proxy-reattached" not in second.headers
    assert second.json()["choices"][0]["message"]["content"].startswith("Echo: Prove it.")
    assert "data: [DONE]" in rest
    assert len(creates(fake)) == 2


async def test_a_full_registry_lets_go_of_its_oldest_run_nobody_follows(fake):
    first_id, second_id = script(fake, TEXT, TEXT + " Again.")
    proxy = Proxy()
    settings = proxy_config(fake.base_url, models={"o3-pro*": {"background": True}},
                            background={"reattach_window": 30, "max_kept_runs": 1})
    with running_proxy(settings, proxy) as url:
        before = evicted(url)
        for text in ("First question.", "Second question."):
            async with httpx.AsyncClient(timeout=0.3) as http:
                with pytest.raises(httpx.ReadTimeout):
                    await http.post(url + "/v1/chat/completions", json=asking(text))
            await until(proxy.left)
        await until(lambda: fake.cancelled)
        async with httpx.AsyncClient(timeout=30) as http:
            second = await http.post(url + "/v1/chat/completions", json=asking("Second question."))
            first = await http.post(url + "/v1/chat/completions", json=asking("First question."))
        after = evicted(url)
    assert fake.cancelled == [first_id]
    assert second.headers["x-proxy-reattached"] == second_id
    assert "x-proxy-reattached" not in first.headers
    assert first.json()["choices"][0]["message"]["content"] == "Echo: First question."
    assert after == before + 1
    assert len(creates(fake)) == 3


async def test_a_run_beyond_the_bound_while_every_kept_run_is_followed_is_not_kept(fake):
    followed_id, unkept_id = script(fake, TEXT, TEXT + " Again.")
    settings = proxy_config(fake.base_url, models={"o3-pro*": {"background": True}},
                            background={"reattach_window": 30, "max_kept_runs": 1})
    with running_proxy(settings) as url:
        async with httpx.AsyncClient(timeout=30) as http:
            async with http.stream("POST", url + "/v1/chat/completions",
                                   json={**asking("Followed."), "stream": True}) as followed:
                assert followed.status_code == 200
                async with httpx.AsyncClient(timeout=0.3) as impatient:
                    with pytest.raises(httpx.ReadTimeout):
                        await impatient.post(url + "/v1/chat/completions", json=asking("Not kept."))
                await until(lambda: fake.cancelled)  # left, not kept: cancelled at once
                lines = [line async for line in followed.aiter_lines()]
            retry = await http.post(url + "/v1/chat/completions", json=asking("Not kept."))
    assert fake.cancelled == [unkept_id]
    assert streamed_text("\n".join(lines)) == TEXT
    assert "x-proxy-reattached" not in retry.headers
    assert len(creates(fake)) == 3
