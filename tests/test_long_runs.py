"""Long reasoning runs: background mode, retries, timeouts, fallback, keepalive."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time

import httpx
import openai
import pytest

from chunks import fold, read_first_content_then_leave
from conftest import sdk
from fake_upstream import (
    Reply,
    Respond,
    Stream,
    build_response,
    error_body,
    message_item,
    reasoning_item,
    stream_events,
)
from spec_check import check_create_response

MESSAGES = [{"role": "user", "content": "Prove it."}]
BACKGROUND = {"models": {"o3-pro*": {"background": True}}}


async def until(condition, seconds=5.0):
    """Wait for something the proxy does in the background (a cancel call, a disconnect)."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)


def retrievals(fake):
    return [r for r in fake.requests if r.method == "GET" and "/responses/" in r.path]


def background_request(fake):
    created = fake.requests_to("/responses")[0]
    check_create_response(created.json)
    assert created.json["background"] is True and created.json["store"] is True
    return created


def test_background_stream_for_a_streaming_client(make_proxy, fake):
    fake.script(Respond(output=[reasoning_item(["Long thought."]), message_item("Q.E.D.")]))
    with make_proxy(**BACKGROUND) as url:
        chunks = list(sdk(url).chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Q.E.D."
    assert background_request(fake).json["stream"] is True
    assert fake.cancelled == []  # finished jobs are left alone


def test_non_streaming_client_follows_the_background_stream(make_proxy, fake):
    """Answered the moment the run is done: the background stream is followed, the response never polled."""
    fake.background_polls = 1000  # a poll would find it unfinished: polling could never answer this request
    fake.script(Respond(output=[reasoning_item(["Long thought."]), message_item("Q.E.D.")]))
    with make_proxy(**BACKGROUND) as url:
        completion = sdk(url).chat.completions.create(model="o3-pro", messages=MESSAGES)
    assert completion.choices[0].message.content == "Q.E.D."
    assert completion.choices[0].message.reasoning_content == "Long thought."
    assert background_request(fake).json["stream"] is True
    assert retrievals(fake) == []
    assert fake.cancelled == []


def test_background_poll_when_the_upstream_cannot_stream(make_proxy, fake):
    fake.background_polls = 3
    fake.script(Reply(status=400, json=error_body("Streaming is not supported for this model.", param="stream")))
    with make_proxy(**BACKGROUND) as url:
        client = sdk(url)
        streamed = list(client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in streamed).startswith("Echo: Prove it.")
        assert len(retrievals(fake)) >= 3
        first, second = fake.requests_to("/responses")
        assert first.json["stream"] is True and "stream" not in second.json and second.json["background"] is True

        fake.reset()  # remembered: the next streaming request does not try streaming upstream
        again = list(client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True))
        assert "stream" not in fake.requests_to("/responses")[0].json
        assert "".join(c.choices[0].delta.content or "" for c in again).startswith("Echo: Prove it.")

        fake.reset()  # a non-streaming client of a background model: created, then polled
        completion = client.chat.completions.create(model="o3-pro", messages=MESSAGES)
    assert completion.choices[0].message.content.startswith("Echo: Prove it.")
    assert len(retrievals(fake)) >= 2
    assert fake.cancelled == []


def test_cut_background_stream_is_resumed_without_duplicates(make_proxy, fake):
    text = "A careful proof in several steps, each one streamed."
    events = stream_events(build_response({"background": True, "store": True, "model": "o3-pro"},
                                          [reasoning_item(["Plan."]), message_item(text)]), text_chunk=5)
    fake.script(Stream(events=events, cut_after=12))
    with make_proxy(**BACKGROUND) as url:
        response = httpx.post(url + "/v1/chat/completions", timeout=30,
                              json={"model": "o3-pro", "messages": MESSAGES, "stream": True})
    payloads = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    folded = fold([json.loads(p) for p in payloads[:-1]])
    assert folded["message"]["content"] == text
    assert folded["message"]["reasoning_content"] == "Plan."
    assert fake.cancelled == []
    (resume,) = retrievals(fake)
    assert resume.query["stream"] == "true"
    assert int(resume.query["starting_after"]) == events[11]["sequence_number"]


async def test_client_disconnect_cancels_the_background_job(make_proxy, fake):
    events = stream_events(build_response({"background": True, "store": True, "model": "o3-pro"},
                                          [message_item("y" * 300)]), text_chunk=3)
    fake.script(Stream(events=events, delay=0.05))
    with make_proxy(**BACKGROUND) as url:
        await read_first_content_then_leave(url, {"model": "o3-pro", "messages": MESSAGES})
        await until(lambda: fake.cancelled)
    assert fake.cancelled == [events[0]["response"]["id"]]


async def test_non_streaming_client_disconnect_cancels_too(make_proxy, fake):
    events = stream_events(build_response({"background": True, "store": True, "model": "o3-pro"},
                                          [message_item("z" * 300)]), text_chunk=3)
    fake.script(Stream(events=events, delay=0.05))
    with make_proxy(**BACKGROUND) as url:
        async with httpx.AsyncClient(timeout=0.5) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(url + "/v1/chat/completions", json={"model": "o3-pro", "messages": MESSAGES})
        await until(lambda: fake.cancelled)
    assert fake.cancelled == [events[0]["response"]["id"]]


def test_upstream_without_background_mode_gets_plain_requests(make_proxy, fake):
    fake.script(Reply(status=400, json=error_body("Unknown parameter: 'background'.", param="background")))
    with make_proxy(**BACKGROUND) as url:
        client = sdk(url)
        first = client.chat.completions.create(model="o3-pro", messages=MESSAGES)
        second = client.chat.completions.create(model="o3-pro", messages=MESSAGES)
    assert first.choices[0].message.content == second.choices[0].message.content
    bodies = [r.json for r in fake.requests_to("/responses")]
    assert [body.get("background") for body in bodies] == [True, None, None]
    assert bodies[1]["store"] is False


def test_429_with_retry_after_then_success(client, fake):
    fake.script(Reply(status=429, json=error_body("Rate limited.", type="rate_limit_error"),
                      headers={"retry-after-ms": "400"}))
    started = time.monotonic()
    completion = client.chat.completions.create(model="o3-pro", messages=MESSAGES)
    assert time.monotonic() - started >= 0.4
    assert completion.choices[0].message.content.startswith("Echo:")
    assert len(fake.requests_to("/responses")) == 2


def test_503_twice_then_success(client, fake):
    fake.script(*[Reply(status=503, json=error_body("Overloaded.", type="server_error"))] * 2)
    completion = client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=False)
    assert completion.choices[0].message.content.startswith("Echo:")
    assert len(fake.requests_to("/responses")) == 3


def test_500_until_the_attempts_are_spent(client, fake):
    fake.script(*[Reply(status=500, json=error_body("Internal error.", type="server_error"))] * 5)
    with pytest.raises(openai.InternalServerError) as error:
        client.chat.completions.create(model="o3-pro", messages=MESSAGES)
    assert error.value.body["message"] == "Internal error."
    assert len(fake.requests_to("/responses")) == 3


def test_retry_budget_stops_retries_early(make_proxy, fake):
    fake.script(*[Reply(status=503, json=error_body("Busy.", type="server_error"), headers={"retry-after": "30"})] * 3)
    with make_proxy(upstream={"retry_budget": 1}) as url:
        started = time.monotonic()
        response = httpx.post(url + "/v1/chat/completions", json={"model": "o3-pro", "messages": MESSAGES}, timeout=30)
    assert response.status_code == 503 and time.monotonic() - started < 5
    assert len(fake.requests_to("/responses")) == 1


def test_4xx_is_never_retried(client, fake):
    fake.script(Reply(status=400, json=error_body("Bad input.")))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="o3-pro", messages=MESSAGES)
    assert len(fake.requests_to("/responses")) == 1


def test_connection_refused_is_retried_then_502(make_proxy):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with make_proxy(f"http://127.0.0.1:{port}/v1", upstream={"backoff_initial": 0.2, "backoff_max": 0.2}) as url:
        started = time.monotonic()
        response = httpx.post(url + "/v1/chat/completions", json={"model": "o3-pro", "messages": MESSAGES}, timeout=30)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unreachable"
    assert time.monotonic() - started >= 0.2  # two waits of 0.1-0.2 s between three attempts


def test_per_model_first_byte_timeout(make_proxy, fake):
    from fake_upstream import Hang
    fake.script(Hang(3))
    with make_proxy(models={"o3-pro*": {"background": False, "first_byte_timeout": 0.3}}) as url:
        response = httpx.post(url + "/v1/chat/completions", json={"model": "o3-pro", "messages": MESSAGES}, timeout=30)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "first_byte_timeout"
    assert "0.3 s" in response.json()["error"]["message"]


def test_per_model_first_byte_timeout_applies_to_passed_through_chat_requests_too(make_proxy, fake):
    from fake_upstream import Hang
    fake.script(Hang(3))
    with make_proxy(upstream={"first_byte_timeout": 60}, models={"gpt-4o*": {"first_byte_timeout": 0.3}}) as url:
        started = time.monotonic()
        response = httpx.post(url + "/v1/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES}, timeout=30)
    assert response.status_code == 504 and response.json()["error"]["code"] == "first_byte_timeout"
    assert "0.3 s" in response.json()["error"]["message"] and time.monotonic() - started < 2.5
    assert [request.path for request in fake.requests] == ["/v1/chat/completions"]


def test_fallback_model_serves_the_request_and_says_so(make_proxy, fake):
    fake.script(*[Reply(status=503, json=error_body("The model is overloaded.", type="server_error"))] * 3)
    with make_proxy(models={"o3-pro*": {"background": False, "fallback": "gpt-4o"}}) as url:
        response = httpx.post(url + "/v1/chat/completions", json={"model": "o3-pro", "messages": MESSAGES}, timeout=30)
    assert response.status_code == 200
    assert response.headers["x-proxy-fallback"] == "gpt-4o"
    assert response.json()["model"].startswith("gpt-4o")
    (chat,) = fake.requests_to("/chat/completions")
    assert chat.json["model"] == "gpt-4o" and chat.json["messages"] == MESSAGES


def test_no_fallback_for_client_errors(make_proxy, fake):
    fake.script(Reply(status=400, json=error_body("Invalid 'input'.", param="input")))
    with make_proxy(models={"o3-pro*": {"background": False, "fallback": "gpt-4o"}}) as url:
        response = httpx.post(url + "/v1/chat/completions", json={"model": "o3-pro", "messages": MESSAGES}, timeout=30)
    assert response.status_code == 400 and "x-proxy-fallback" not in response.headers
    assert fake.requests_to("/chat/completions") == []


def test_non_streaming_keepalive_whitespace(make_proxy, fake):
    events = stream_events(build_response(None, [message_item("Worth the wait.")]))
    fake.script(Stream(events=events, delay=0.15))
    with make_proxy(stream={"heartbeat_interval": 0.1, "non_stream_keepalive": True}) as url:
        raw = httpx.post(url + "/v1/chat/completions", json={"model": "o3-pro", "messages": MESSAGES}, timeout=30)
        assert raw.content.startswith(b"  ")
        assert json.loads(raw.content)["choices"][0]["message"]["content"] == "Worth the wait."
        fake.script(Stream(events=events, delay=0.15))
        parsed = sdk(url).chat.completions.create(model="o3-pro", messages=MESSAGES)
    assert parsed.choices[0].message.content == "Worth the wait."


SILENCE, CLIENT_IDLE = (60, 20) if os.environ.get("PROXY_SLOW_TESTS") else (6, 2)


def test_silent_upstream_survives_a_client_idle_timeout_thanks_to_heartbeats(make_proxy, fake):
    """A client that gives up after CLIENT_IDLE s without a byte survives SILENCE s of upstream silence."""
    events = stream_events(build_response(None, [message_item("Finally.")]))
    fake.script(Stream(events=events, heartbeat_pause=SILENCE))
    with make_proxy(stream={"heartbeat_interval": CLIENT_IDLE / 4}) as url:
        client = sdk(url, timeout=CLIENT_IDLE)
        chunks = list(client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Finally."


def test_finished_background_jobs_are_not_cancelled(make_proxy, fake):
    with make_proxy(**BACKGROUND) as url:
        client = sdk(url)
        client.chat.completions.create(model="o3-pro", messages=MESSAGES)
        list(client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True))
    assert len(fake.requests_to("/responses")) == 2
    assert fake.cancelled == []


def test_background_jobs_are_counted_while_they_run(make_proxy, fake):
    events = stream_events(build_response({"background": True, "store": True, "model": "o3-pro"},
                                          [message_item("slow " * 20)]), text_chunk=4)
    fake.script(Stream(events=events, delay=0.05))
    with make_proxy(**BACKGROUND) as url:
        with httpx.stream("POST", url + "/v1/chat/completions", timeout=30,
                          json={"model": "o3-pro", "messages": MESSAGES, "stream": True}) as response:
            lines = response.iter_lines()
            next(lines)
            during = httpx.get(url + "/metrics", timeout=30).text
            assert "[DONE]" in "".join(lines)
        after = httpx.get(url + "/metrics", timeout=30).text
    assert gauge(during, "proxy_background_jobs") == 1
    assert gauge(after, "proxy_background_jobs") == 0


def gauge(page, name):
    return sum(float(line.split()[-1]) for line in page.splitlines() if line.startswith(name) and " " in line)


def test_idle_timeout_for_a_non_streaming_client(make_proxy, fake):
    events = stream_events(build_response(None, [message_item("never finished")]))
    fake.script(Stream(events=events, heartbeat_pause=5))
    with make_proxy(upstream={"idle_timeout": 0.5}) as url:
        started = time.monotonic()
        response = httpx.post(url + "/v1/chat/completions", json={"model": "o3-pro", "messages": MESSAGES}, timeout=30)
    assert time.monotonic() - started < 3
    assert response.status_code == 504 and response.json()["error"]["code"] == "idle_timeout"


def test_non_streaming_clients_can_be_served_from_an_upstream_stream(make_proxy, fake):
    fake.script(Respond(output=[reasoning_item(["Quick."]), message_item("One piece.")]))
    with make_proxy(stream={"upstream_stream": True}) as url:
        completion = sdk(url).chat.completions.create(model="o3-pro", messages=MESSAGES)
    assert completion.choices[0].message.content == "One piece."
    assert completion.choices[0].message.model_extra["reasoning_content"] == "Quick."
    assert fake.requests_to("/responses")[0].json["stream"] is True
