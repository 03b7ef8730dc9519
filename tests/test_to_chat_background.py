"""`background: true` for chat-only models: the chat call runs in the proxy, through the real proxy against the
fake chat-only upstream, with the openai-python SDK as the client (httpx where the raw stream is checked).

Polling until the run ends, the event stream followed from a sequence number, cancelling a run (the upstream
connection closed), a client that leaves while the run goes on, `store: false` refused, the bounds on runs and
kept events, and the shutdown. Every event and Response is checked against the spec.
"""

from __future__ import annotations

import asyncio

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from conftest import CLIENT_KEY, proxy_config, sdk
from fake_chat_upstream import Chat
from fake_upstream import Reply, Stream
from proxy.chat_runs import SHUTDOWN_MESSAGE
from proxy.memory import caller_key
from servers import running_proxy
from spec_check import check_error_body, check_response
from wire import responses_events

MODEL = "deepseek-chat"
HEADERS = {"authorization": f"Bearer {CLIENT_KEY}"}


@pytest.fixture(scope="module")
def url(chat_server) -> Iterator[str]:
    config = proxy_config(chat_server.base_url, upstream={"chat_only": True}, stream={"heartbeat_interval": 0.05})
    with running_proxy(config) as proxy_url:
        yield proxy_url


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def words(count: int, delay: float = 0.0, pause: float = 0.0) -> Stream:
    """A chat stream of ``count`` words, ``delay`` seconds apart (``pause``: a silence after the first two)."""
    return Stream(events=[chunk({"role": "assistant", "content": ""}),
                          *(chunk({"content": f"w{n} "}) for n in range(count)), chunk({}, "stop"),
                          {**chunk({}), "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": count,
                                                                 "total_tokens": 3 + count}}],
                  delay=delay, heartbeat_pause=pause)


def text_of(count: int) -> str:
    return "".join(f"w{n} " for n in range(count))


def poll(client: openai.OpenAI, response_id: str) -> Any:
    """Retrieve the response until it has ended, as the API's guide polls."""
    deadline = time.monotonic() + 20
    response = client.responses.retrieve(response_id)
    while response.status in ("queued", "in_progress"):
        assert time.monotonic() < deadline, "the background response never ended"
        time.sleep(0.02)
        response = client.responses.retrieve(response_id)
    return response


def raw(url: str, response_id: str, query: str = "") -> httpx.Response:
    return httpx.get(f"{url}/v1/responses/{response_id}{query}", headers=HEADERS, timeout=30)


def text_deltas(events: list[dict[str, Any]]) -> str:
    return "".join(event["delta"] for event in events if event["type"] == "response.output_text.delta")


# ---------------------------------------------------------------- polling


def test_a_background_response_is_polled_until_it_has_completed_and_then_continued(chat_fake, url):
    chat_fake.script(words(20, delay=0.01), Chat(content="Encore."))
    client = sdk(url)
    created = client.responses.create(model=MODEL, input="Write", background=True)
    assert created.status in ("queued", "in_progress") and created.background is True and created.output == []
    check_response(raw(url, created.id).json())
    response = poll(client, created.id)
    assert (response.status, response.output_text, response.usage.output_tokens) == ("completed", text_of(20), 20)
    check_response(raw(url, created.id).json())
    (request,) = [r.json for r in chat_fake.requests_to("/chat/completions")]
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}

    # Stored when done, as a foreground response is: the conversation continues from it.
    follow_up = client.responses.create(model=MODEL, input="Again", previous_response_id=created.id)
    assert follow_up.output_text == "Encore."
    history = chat_fake.requests_to("/chat/completions")[-1].json["messages"]
    assert [(m["role"], m["content"]) for m in history] == [("user", "Write"), ("assistant", text_of(20)),
                                                            ("user", "Again")]
    items = httpx.get(f"{url}/v1/responses/{created.id}/input_items", headers=HEADERS).json()
    assert [item["content"][0]["text"] for item in items["data"]] == ["Write"]


def test_a_running_response_is_another_callers_to_know_nothing_of(chat_fake, url):
    chat_fake.script(words(100, delay=0.1))
    client = sdk(url)
    created = client.responses.create(model=MODEL, input="Write", background=True)
    other = {"authorization": "Bearer another-callers-key"}
    for method, path in (("GET", ""), ("GET", "?stream=true"), ("GET", "/input_items"), ("POST", "/cancel"),
                         ("DELETE", "")):
        answer = httpx.request(method, f"{url}/v1/responses/{created.id}{path}", headers=other, timeout=10)
        assert answer.status_code == 404, (method, path)  # passed through: the upstream has no such response
    assert client.responses.retrieve(created.id).status == "in_progress"
    client.responses.cancel(created.id)


def test_a_running_response_lists_its_input_and_cannot_be_continued_yet(chat_fake, url):
    chat_fake.script(words(100, delay=0.1))
    client = sdk(url)
    created = client.responses.create(model=MODEL, input="Write", background=True)
    running = client.responses.input_items.list(created.id)
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=MODEL, input="And?", previous_response_id=created.id)
    assert refused.value.body["param"] == "previous_response_id"
    client.responses.cancel(created.id)
    stored = client.responses.input_items.list(created.id)
    assert [item.id for item in running.data] == [item.id for item in stored.data] and len(stored.data) == 1
    assert len(chat_fake.requests_to("/chat/completions")) == 1


def test_a_run_that_fails_upstream_is_failed_and_an_upstream_refusal_before_it_is_the_answer(chat_fake, url):
    chat_fake.script(Chat(content="A long answer that breaks.", error_after=3),
                     Reply(400, json=chat_fake.error_body(400, "Model Not Exist")))
    client = sdk(url)
    failed = poll(client, client.responses.create(model=MODEL, input="Write", background=True).id)
    assert failed.status == "failed" and failed.error.message == "The model backend failed while generating."
    check_response(raw(url, failed.id).json())
    with pytest.raises(openai.BadRequestError, match="Model Not Exist"):  # the run never began
        client.responses.create(model=MODEL, input="Write", background=True)


def test_background_without_store_is_refused(chat_fake, url):
    answer = httpx.post(url + "/v1/responses", headers=HEADERS, json={
        "model": MODEL, "input": "Write", "background": True, "store": False})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "store"
    check_error_body(answer.json())
    with pytest.raises(openai.BadRequestError):
        sdk(url).responses.create(model=MODEL, input="Write", background=True, store=False)
    assert not chat_fake.requests_to("/chat/completions")


# ---------------------------------------------------------------- streams


def test_a_background_stream_is_resumed_after_a_sequence_number(chat_fake, url):
    chat_fake.script(words(30, delay=0.02))
    client = sdk(url)
    seen = []
    with client.responses.create(model=MODEL, input="Write", background=True, stream=True) as first:
        for event in first:
            seen.append(event)
            if event.type == "response.output_text.delta" and event.delta == "w2 ":
                break
    response_id, last = seen[0].response.id, seen[-1].sequence_number
    assert seen[0].response.background is True and [event.sequence_number for event in seen] == list(range(last + 1))

    resumed = list(client.responses.retrieve(response_id, stream=True, starting_after=last))
    assert resumed[0].sequence_number == last + 1 and resumed[-1].type == "response.completed"
    deltas = [event.delta for event in seen + resumed if event.type == "response.output_text.delta"]
    assert "".join(deltas) == text_of(30) == resumed[-1].response.output_text

    # The whole stream again, from its start, as the spec writes it; and from after its end: nothing.
    events = responses_events(raw(url, response_id, "?stream=true").text)
    assert events[0]["sequence_number"] == 0 and events[-1]["type"] == "response.completed"
    assert text_deltas(events) == text_of(30)
    assert responses_events(raw(url, response_id, f"?stream=true&starting_after={events[-1]['sequence_number']}").text) \
        == []


def test_a_client_that_leaves_a_background_stream_does_not_stop_the_run(chat_fake, url):
    chat_fake.script(words(30, delay=0.01))
    with httpx.stream("POST", url + "/v1/responses", headers=HEADERS, timeout=30, json={
            "model": MODEL, "input": "Write", "background": True, "stream": True}) as answer:
        lines = answer.iter_lines()
        for line in lines:
            if line.startswith("data: ") and "response.created" in line:
                response_id = json.loads(line[len("data: "):])["response"]["id"]
            if "response.output_text.delta" in line:
                break
    response = poll(sdk(url), response_id)
    assert (response.status, response.output_text) == ("completed", text_of(30))
    assert chat_fake.disconnects == 0


def test_a_followed_stream_gets_keep_alive_comments_while_the_upstream_is_silent(chat_fake, url):
    chat_fake.script(words(3, pause=0.4))
    created = sdk(url).responses.create(model=MODEL, input="Write", background=True)
    followed = raw(url, created.id, "?stream=true&starting_after=0")
    assert ": keep-alive" in followed.text
    events = responses_events(followed.text)
    assert events[0]["sequence_number"] == 1 and events[-1]["type"] == "response.completed"


def test_a_stream_of_a_response_that_was_not_run_in_the_background_is_refused(chat_fake, url):
    chat_fake.script(Chat(content="Bonjour."))
    created = sdk(url).responses.create(model=MODEL, input="Salut")
    answer = raw(url, created.id, "?stream=true")
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "stream"
    for query in ("?stream=yes", "?stream=true&starting_after=x"):
        chat_fake.script(words(1))
        background = sdk(url).responses.create(model=MODEL, input="Write", background=True)
        refused = raw(url, background.id, query)
        assert refused.status_code == 400
        check_error_body(refused.json())


# ---------------------------------------------------------------- cancelling


def test_a_running_response_is_cancelled_and_its_upstream_let_go(chat_fake, url):
    chat_fake.script(words(100, delay=0.1))
    client = sdk(url)
    created = client.responses.create(model=MODEL, input="Write", background=True)
    with client.responses.retrieve(created.id, stream=True) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                break
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled" and cancelled.output[0].status == "incomplete"
    chat_fake.wait_for_disconnect()
    check_response(raw(url, created.id).json())
    assert client.responses.retrieve(created.id).status == "cancelled"
    assert client.responses.cancel(created.id).model_dump() == cancelled.model_dump()  # idempotent

    # Its stream ends with what was open closed, and no terminal event: the API has none for a cancelled response.
    events = responses_events(raw(url, created.id, "?stream=true").text)
    assert events[-1]["type"] == "response.output_item.done" and events[-1]["item"]["status"] == "incomplete"
    assert not {"response.completed", "response.failed"} & {event["type"] for event in events}


def test_cancelling_an_ended_response_answers_it_and_a_foreground_one_is_refused(chat_fake, url):
    chat_fake.script(words(2), Chat(content="Bonjour."))
    client = sdk(url)
    background = client.responses.create(model=MODEL, input="Write", background=True)
    completed = poll(client, background.id)
    assert client.responses.cancel(background.id).model_dump() == completed.model_dump()
    foreground = client.responses.create(model=MODEL, input="Salut")
    with pytest.raises(openai.BadRequestError, match="Cannot cancel a synchronous response"):
        client.responses.cancel(foreground.id)


def test_cancelling_an_unknown_response_passes_through(chat_fake, url):
    with pytest.raises(openai.NotFoundError):
        sdk(url).responses.cancel("resp_elsewhere")
    assert [r.path for r in chat_fake.requests_to("/cancel")] == ["/v1/responses/resp_elsewhere/cancel"]


def test_deleting_a_running_response_ends_it(chat_fake, url):
    chat_fake.script(words(100, delay=0.1))
    client = sdk(url)
    created = client.responses.create(model=MODEL, input="Write", background=True)
    assert client.responses.delete(created.id) is None
    chat_fake.wait_for_disconnect()
    with pytest.raises(openai.NotFoundError):  # no longer ours: asked of the upstream, which has none
        client.responses.retrieve(created.id)


# ---------------------------------------------------------------- bounds, shutdown


def test_runs_are_bounded_in_number_and_their_events_in_bytes(chat_fake):
    config = proxy_config(chat_fake.base_url, upstream={"chat_only": True},
                          to_chat={"background_runs": 1, "background_event_bytes": 64 * 1024})
    with running_proxy(config) as url:
        client = sdk(url)
        chat_fake.script(words(100, delay=0.1))
        running = client.responses.create(model=MODEL, input="Write", background=True)
        with pytest.raises(openai.RateLimitError):  # every run kept is running
            client.responses.create(model=MODEL, input="Write", background=True)
        assert len(chat_fake.requests_to("/chat/completions")) == 1
        client.responses.cancel(running.id)

        chat_fake.script(words(400))  # the ended run makes room; this one's events outgrow what is kept
        long = client.responses.create(model=MODEL, input="Write " + "x" * 200, background=True)
        completed = poll(client, long.id)
        assert completed.output_text == text_of(400)
        whole = raw(url, long.id, "?stream=true")
        assert whole.status_code == 400 and whole.json()["error"]["param"] == "starting_after"
        last = completed.model_dump()
        tail = responses_events(raw(url, long.id, "?stream=true&starting_after=400").text)
        assert tail[0]["sequence_number"] == 401 and tail[-1]["response"]["id"] == last["id"]
        # The run forgotten for another, the response is still stored.
        chat_fake.script(words(1))
        poll(client, client.responses.create(model=MODEL, input="Write", background=True).id)
        assert client.responses.retrieve(long.id).output_text == text_of(400)


def test_runs_still_running_fail_on_shutdown_and_let_the_upstream_go(chat_fake):
    apps = []
    config = proxy_config(chat_fake.base_url, upstream={"chat_only": True})
    with running_proxy(config, prepare=apps.append) as url:
        chat_fake.script(words(100, delay=0.1))
        created = sdk(url).responses.create(model=MODEL, input="Write", background=True)
    chat_fake.wait_for_disconnect()
    owner = caller_key({"authorization": f"Bearer {CLIENT_KEY}"})  # the SDK's credentials
    stored = asyncio.run(apps[0].state.proxy.stored_responses.get(created.id, owner)).response  # the memory store
    assert (stored["status"], stored["error"]["message"]) == ("failed", SHUTDOWN_MESSAGE)
    check_response(stored)
