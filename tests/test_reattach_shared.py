"""Runs kept for a retry are shared through Redis: two proxy processes (as two workers or replicas) sharing one
Redis in front of one upstream. A retry that lands on the other process follows the run from the upstream (one
upstream run in all); a delivered answer is not given again by the other; an Idempotency-Key holds across them;
the run nobody came back to is cancelled once, by the process whose client left it last. Redis that is down
costs the sharing, never a request."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from conftest import UPSTREAM_KEY, proxy_config
from fake_upstream import Reply, Stream, build_response, error_body, message_item, stream_events
from proxy.reattach import SharedRuns
from servers import free_port, proxy_process, running_proxy, running_redis, until

TEXT = "A long proof, sent in many small pieces so that the run takes a while."
WINDOW = 1.0
# OpenAI's answer to gpt-5-pro with reasoning.effort "medium" (as in test_adapt).
EFFORT_REFUSED = error_body("Unsupported value: 'reasoning.effort' does not support 'medium' with this model. "
                            "Supported values are: 'high'.", param="reasoning.effort", code="unsupported_value")


def slow_run(delay=0.02, text=TEXT):
    events = stream_events(build_response({"background": True, "store": True, "model": "o3-pro"},
                                          [message_item(text)]), text_chunk=2)
    return Stream(events=events, delay=delay), events[0]["response"]["id"]


def request(text):
    return {"model": "o3-pro", "messages": [{"role": "user", "content": text}]}


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as url:
        yield url


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, fake_server, redis_url) -> Iterator[tuple[str, str]]:
    config = tmp_path_factory.mktemp("shared") / "config.yaml"
    config.write_text(f"upstream:\n  base_url: {fake_server.base_url}\n  api_key: {UPSTREAM_KEY}\n"
                      f"models:\n  'o3-pro*':\n    background: true\n"
                      f"background:\n  reattach_window: {WINDOW}\n  poll_initial: 0.02\n  poll_max: 0.05\n"
                      f"reasoning:\n  redis_url: {redis_url}\n")
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PROXY_", "OPENAI_"))}
    processes = []
    try:
        with ThreadPoolExecutor(2) as starting:  # both start at once
            started = [starting.submit(proxy_process, ["--config", str(config)], env, subprocess.DEVNULL)
                       for _ in range(2)]
        processes = [future.result() for future in started if future.exception() is None]
        for future in started:
            future.result()  # one that did not start fails the tests (the other is stopped below)
        yield processes[0][1], processes[1][1]
    finally:
        for process, _ in processes:
            process.terminate()
        for process, _ in processes:
            process.wait(timeout=15)


@pytest.fixture
def pair(two_processes, redis_url, fake):
    redis.Redis.from_url(redis_url).flushall()
    return two_processes


def creates(fake):
    return fake.requests_to("/responses")


def counter(url, name):
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def test_a_retry_that_lands_on_another_process_follows_the_run(pair, fake):
    first, second = pair
    stream, response_id = slow_run()
    fake.script(stream)
    body = request("Prove it on two workers.")
    before = counter(second, "proxy_runs_reattached_total")
    async with httpx.AsyncClient(timeout=0.3) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(first + "/v1/chat/completions", json=body)
    async with httpx.AsyncClient(timeout=30) as http:  # sent at once: the first process may not have seen it go
        retry = await http.post(second + "/v1/chat/completions", json=body)
    assert retry.status_code == 200
    assert retry.headers["x-proxy-reattached"] == response_id
    assert retry.json()["choices"][0]["message"]["content"] == TEXT
    assert len(creates(fake)) == 1
    assert [r.query for r in fake.requests_to(f"/responses/{response_id}", "GET")] == [{"stream": "true"}]
    assert counter(second, "proxy_runs_reattached_total") == before + 1


async def test_a_retry_on_another_process_reports_what_was_changed_for_the_model(pair, fake):
    first, second = pair
    stream, response_id = slow_run()
    fake.script(Reply(400, json=EFFORT_REFUSED), stream)
    body = {**request("Adapted on one worker."), "reasoning_effort": "medium"}
    async with httpx.AsyncClient(timeout=0.3) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(first + "/v1/chat/completions", json=body)
    async with httpx.AsyncClient(timeout=30) as http:
        retry = await http.post(second + "/v1/chat/completions", json=body)
    assert retry.headers["x-proxy-reattached"] == response_id
    assert retry.headers["x-proxy-adjusted-params"] == "reasoning_effort=medium->high"
    assert retry.json()["choices"][0]["message"]["content"] == TEXT
    assert len(creates(fake)) == 2  # the refused request and the run


async def test_an_answer_delivered_by_one_process_is_not_given_again_by_the_other(pair, fake):
    first, second = pair
    body = request("Regenerate across workers.")
    async with httpx.AsyncClient(timeout=30) as http:
        delivered = await http.post(first + "/v1/chat/completions", json=body)
        again = await http.post(second + "/v1/chat/completions", json={**body, "stream": True})
    assert delivered.status_code == again.status_code == 200
    assert "x-proxy-reattached" not in again.headers
    assert len(creates(fake)) == 2
    assert [r for r in fake.requests if r.method == "GET" and "/responses/" in r.path] == []


async def test_an_idempotency_key_gets_the_same_answer_from_either_process(pair, fake):
    first, second = pair
    stream, response_id = slow_run(delay=0.005)
    fake.script(stream)
    body, keyed = request("Keyed across workers."), {"idempotency-key": "conv-7-turn-2"}
    async with httpx.AsyncClient(timeout=30) as http:
        answered = await http.post(first + "/v1/chat/completions", json=body, headers=keyed)
        again = await http.post(second + "/v1/chat/completions", json=body, headers=keyed)
        other = await http.post(second + "/v1/chat/completions", json=body, headers={"idempotency-key": "other"})
    assert answered.json()["choices"][0]["message"]["content"] == TEXT
    assert again.json()["choices"][0]["message"]["content"] == TEXT
    assert again.headers["x-proxy-reattached"] == response_id
    assert "x-proxy-reattached" not in other.headers
    assert len(creates(fake)) == 2


async def test_the_same_idempotency_key_at_both_processes_at_once_is_one_run(pair, fake):
    """The second request comes while the first process is still starting the run (its id not yet known)."""
    first, second = pair
    stream, response_id = slow_run(delay=0.005)
    stream.first_pause = 0.5  # the upstream is slow to begin
    fake.script(stream)
    body, keyed = request("Keyed at once."), {"idempotency-key": "conv-9-turn-1"}
    async with httpx.AsyncClient(timeout=30) as http:
        answered = asyncio.ensure_future(http.post(first + "/v1/chat/completions", json=body, headers=keyed))
        await until(lambda: creates(fake))  # the first process is starting the run
        again = await http.post(second + "/v1/chat/completions", json={**body, "stream": True}, headers=keyed)
        answered = await answered
    assert answered.json()["choices"][0]["message"]["content"] == TEXT
    assert again.headers["x-proxy-reattached"] == response_id
    assert "Echo" not in again.text and again.text.rstrip().endswith("data: [DONE]")
    assert len(creates(fake)) == 1


async def test_an_idempotency_key_whose_run_could_not_start_is_free_for_the_next_request(pair, fake):
    first, second = pair
    fake.script(Reply(400, json=error_body("Invalid 'input': the content is too long.", param="input")))
    body, keyed = request("Keyed, failed first."), {"idempotency-key": "conv-4-turn-8"}
    async with httpx.AsyncClient(timeout=5) as http:
        failed = await http.post(first + "/v1/chat/completions", json=body, headers=keyed)
        answered = await http.post(second + "/v1/chat/completions", json=body, headers=keyed)
    assert failed.status_code == 400
    assert answered.status_code == 200 and "x-proxy-reattached" not in answered.headers
    assert answered.json()["choices"][0]["message"]["content"] == "Echo: Keyed, failed first."


async def test_a_run_left_in_both_processes_is_cancelled_once_by_the_last_to_leave(pair, fake):
    """The first process's window ends while the other process's client still follows the run: it does not
    cancel it. The other process cancels it once its own window passed."""
    first, second = pair
    stream, response_id = slow_run(delay=0.02, text="word " * 200)  # 10 s: still running when it is cancelled
    fake.script(stream)
    body = request("Cancel me once.")
    before = [counter(url, "proxy_runs_cancelled_after_window_total") for url in pair]
    async with httpx.AsyncClient(timeout=0.3) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(first + "/v1/chat/completions", json=body)
    content = ""
    async with httpx.AsyncClient(timeout=30) as http:
        async with http.stream("POST", second + "/v1/chat/completions", json={**body, "stream": True}) as retry:
            assert retry.headers["x-proxy-reattached"] == response_id
            async for line in retry.aiter_lines():
                if line.startswith("data: {"):
                    content += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                if len(content) >= 200:  # 2 s into the run: past the first process's window (1.3 s)
                    break
    await until(lambda: fake.cancelled)
    assert fake.cancelled == [response_id]
    after = [counter(url, "proxy_runs_cancelled_after_window_total") for url in pair]
    assert [a - b for a, b in zip(after, before)] == [0, 1]
    assert len(creates(fake)) == 1


async def test_redis_that_is_down_costs_the_sharing_not_the_request(fake, caplog):
    """With nothing listening at the Redis URL, each process keeps its own runs: the retry still follows."""
    stream, response_id = slow_run()
    fake.script(stream)
    config = proxy_config(fake.base_url, models={"o3-pro*": {"background": True}},
                          background={"reattach_window": 30},
                          reasoning={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    body = request("Redis is down.")
    with running_proxy(config) as url:
        async with httpx.AsyncClient(timeout=0.3) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(url + "/v1/chat/completions", json=body)
        async with httpx.AsyncClient(timeout=30) as http:
            retry = await http.post(url + "/v1/chat/completions", json=body)
    assert retry.status_code == 200
    assert retry.json()["choices"][0]["message"]["content"] == TEXT
    assert retry.headers["x-proxy-reattached"] == response_id
    assert len(creates(fake)) == 1
    warned = [r for r in caplog.records if r.name == "proxy.reattach" and r.levelno == logging.WARNING]
    assert len(warned) == 1 and "each process keeps its own background runs" in warned[0].getMessage()


def test_the_registry_is_shared_where_redis_is_configured():
    config = proxy_config("http://127.0.0.1:9/v1", background={"reattach_window": 60},
                          reasoning={"redis_url": "redis://127.0.0.1:9/0"})
    from proxy.app import Proxy
    assert isinstance(Proxy(config).runs.shared, SharedRuns)
