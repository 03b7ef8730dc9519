"""`POST /v1/responses` for chat-only models, through the real proxy against the fake chat-only upstream.

Which models go through chat (configured per upstream or per model, or detected from the upstream's answer to
`/v1/responses` and learned only once chat served them), the answer as the API writes it (every event checked
against the spec), the errors before and during a stream, and the responses the proxy stores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import CLIENT_KEY, proxy_config
from fake_chat_upstream import Chat, FakeChatUpstream, ToolCall
from fake_upstream import FakeUpstream, Reply, Stream, running_fake_upstream
from proxy.models import MODELS_REMEMBERED, NAME_REMEMBERED_CHARS, LearnedModels
from servers import running_proxy
from spec_check import check_error_body, check_response
from wire import responses_events

MODEL = "deepseek-reasoner"
TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {
    "city": {"type": "string"}}, "required": ["city"]}},
         {"type": "custom", "name": "apply_patch", "description": "Edit files.",
          "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
         {"type": "web_search"}]


@pytest.fixture(scope="module")
def detecting_url(chat_server) -> Iterator[str]:
    """A proxy configured with nothing but the chat-only upstream's URL: it finds out."""
    with running_proxy(proxy_config(chat_server.base_url)) as url:
        yield url


@pytest.fixture(scope="module")
def chat_only_url(chat_server) -> Iterator[str]:
    """A proxy whose upstream is marked chat-only."""
    with running_proxy(proxy_config(chat_server.base_url, upstream={"chat_only": True})) as url:
        yield url


def post(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(url + "/v1/responses", json=body, timeout=30,
                      headers={"authorization": f"Bearer {CLIENT_KEY}", **headers})


def events_of(response: httpx.Response) -> list[dict[str, Any]]:
    """The SSE events of a streamed answer, each checked (:func:`wire.responses_events`), numbered from 0."""
    assert response.headers["content-type"].startswith("text/event-stream")
    events = responses_events(response.text)
    assert not events or events[0]["sequence_number"] == 0
    return events


def chat_requests(fake: FakeUpstream) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests_to("/chat/completions")]


# ---------------------------------------------------------------- which models go through chat


@pytest.mark.parametrize("answer", ["not_found", "method_not_allowed", "not_supported"])
def test_an_upstream_without_the_responses_api_is_found_out_and_the_model_learned(chat_fake, answer):
    chat_fake.responses_answer = answer
    chat_fake.script(Chat(content="Bonjour."), Chat(content="Encore."))
    with running_proxy(proxy_config(chat_fake.base_url)) as url:
        first = post(url, {"model": MODEL, "input": "Salut"})
        second = post(url, {"model": MODEL, "input": "Encore"})
    assert (first.status_code, first.json()["output"][-1]["content"][0]["text"]) == (200, "Bonjour.")
    assert second.json()["output"][-1]["content"][0]["text"] == "Encore."
    assert len(chat_fake.requests_to("/responses")) == 1  # the second request went straight to chat
    assert first.headers["x-proxy-mode"] == "translated"


def test_a_model_is_not_learned_when_chat_fails_too(chat_fake):
    chat_fake.script(Reply(400, json=chat_fake.error_body(400, "Model Not Exist")), Chat(content="ok"))
    with running_proxy(proxy_config(chat_fake.base_url)) as url:
        failed = post(url, {"model": MODEL, "input": "Salut"})
        post(url, {"model": MODEL, "input": "Salut"})
    assert failed.status_code == 400 and failed.json()["error"]["message"] == "Model Not Exist"
    assert len(chat_fake.requests_to("/responses")) == 2  # asked again: nothing was learned


def test_words_of_the_client_echoed_in_an_error_are_not_read_as_the_upstreams(fake):
    """A Responses upstream's 400 that repeats the client's text ("... not supported ...") is relayed."""
    error = {"error": {"message": "Invalid 'input': 'this is not supported' is too short.", "type":
                       "invalid_request_error", "param": None, "code": None}}
    fake.script(Reply(400, json=error))
    with running_proxy(proxy_config(fake.base_url)) as url:
        answer = post(url, {"model": "gpt-4.1", "input": "this is not supported"})
    assert (answer.status_code, answer.json()) == (400, error)
    assert not fake.requests_to("/chat/completions")


@pytest.mark.parametrize("error", [
    {"error": {"message": "Previous response with id 'resp_1' not found.", "type": "invalid_request_error",
               "param": "previous_response_id", "code": "previous_response_not_found"}},
    {"error": {"message": "The model `gpt-9` does not exist or you do not have access to it.",
               "type": "invalid_request_error", "param": None, "code": "model_not_found"}},
])
def test_a_404_about_something_else_is_relayed(fake, error):
    fake.script(Reply(404, json=error))
    with running_proxy(proxy_config(fake.base_url)) as url:
        answer = post(url, {"model": "gpt-9", "input": "Hi", "previous_response_id": "resp_1"})
    assert (answer.status_code, answer.json()) == (404, error)
    assert not fake.requests_to("/chat/completions")


def test_an_upstream_marked_chat_only_is_never_asked_for_responses(chat_fake, chat_only_url):
    chat_fake.script(Chat(content="Bonjour."))
    assert post(chat_only_url, {"model": MODEL, "input": "Salut"}).status_code == 200
    assert not chat_fake.requests_to("/responses") and len(chat_requests(chat_fake)) == 1


def test_models_marked_chat_only_by_glob_go_through_chat_and_others_pass(chat_fake):
    chat_fake.script(Chat(content="Bonjour."))
    config = proxy_config(chat_fake.base_url, models={"deepseek-*": {"chat_only": True}},
                          to_chat={"auto_detect": False})
    with running_proxy(config) as url:
        chat = post(url, {"model": MODEL, "input": "Salut"})
        passed = post(url, {"model": "gpt-4.1", "input": "Salut"})
    assert chat.headers["x-proxy-mode"] == "translated" and chat.json()["object"] == "response"
    assert [r["model"] for r in chat_requests(chat_fake)] == [MODEL]
    assert passed.status_code == 404 and [r.json["model"] for r in chat_fake.requests_to("/responses")] == ["gpt-4.1"]


def test_auto_detection_can_be_turned_off(chat_fake):
    with running_proxy(proxy_config(chat_fake.base_url, to_chat={"auto_detect": False})) as url:
        answer = post(url, {"model": MODEL, "input": "Salut"})
    assert answer.status_code == 404 and not chat_requests(chat_fake)


# ---------------------------------------------------------------- the answer


def test_a_streamed_answer_is_the_responses_event_sequence(chat_fake, chat_only_url):
    chat_fake.script(Chat(reasoning="Let me think.", content="Two calls.", interleave=True, tool_calls=[
        ToolCall("get_weather", {"city": "Paris"}, id="call_1"),
        ToolCall("apply_patch", {"input": "*** Begin Patch\n*** End Patch\n"}, id="call_2")]))
    answer = post(chat_only_url, {"model": MODEL, "input": "Go", "tools": TOOLS, "stream": True, "store": False,
                                  "include": ["reasoning.encrypted_content"]})
    events = events_of(answer)
    assert events[-1]["type"] == "response.completed"
    output = events[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["reasoning", "message", "function_call", "custom_tool_call"]
    assert (output[2]["call_id"], json.loads(output[2]["arguments"])) == ("call_1", {"city": "Paris"})
    assert (output[3]["call_id"], output[3]["input"]) == ("call_2", "*** Begin Patch\n*** End Patch\n")
    assert set(answer.headers["x-proxy-dropped-params"].split(", ")) >= {"tools%5B2%5D.web_search", "store"}
    assert "include" not in answer.headers["x-proxy-dropped-params"]  # reasoning.encrypted_content is honoured
    assert output[0]["encrypted_content"].startswith("rp1.")
    (request,) = chat_requests(chat_fake)
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
    assert [tool["function"]["name"] for tool in request["tools"]] == ["get_weather", "apply_patch"]


def test_a_whole_answer_is_a_response_and_a_cut_one_is_incomplete(chat_fake, chat_only_url):
    chat_fake.script(Chat(content="Trop long", finish_reason="length"))
    answer = post(chat_only_url, {"model": MODEL, "input": "Go", "max_output_tokens": 16})
    response = answer.json()
    check_response(response)
    assert (response["status"], response["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})
    (request,) = chat_requests(chat_fake)
    assert request["max_completion_tokens"] == 16 and "stream" not in request


def test_max_tokens_param_per_model(chat_fake):
    chat_fake.script(Chat(content="ok"))
    config = proxy_config(chat_fake.base_url, upstream={"chat_only": True},
                          models={"deepseek-*": {"max_tokens_param": "max_tokens"}})
    with running_proxy(config) as url:
        post(url, {"model": MODEL, "input": "Go", "max_output_tokens": 16})
    (request,) = chat_requests(chat_fake)
    assert request["max_tokens"] == 16 and "max_completion_tokens" not in request


def test_an_upstream_error_before_the_stream_keeps_its_status_and_names_the_clients_parameter(chat_fake,
                                                                                             chat_only_url):
    error = {"error": {"message": "max_completion_tokens is too large", "type": "invalid_request_error",
                       "param": "max_completion_tokens", "code": "invalid_value"}}
    chat_fake.script(Reply(400, json=error))
    answer = post(chat_only_url, {"model": MODEL, "input": "Go", "max_output_tokens": 10 ** 9, "stream": True})
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("application/json")
    check_error_body(answer.json())
    assert answer.json()["error"]["param"] == "max_output_tokens"


def test_retries_before_the_first_byte(chat_fake, chat_only_url):
    chat_fake.script(Reply(503, json=chat_fake.error_body(503, "busy")), Chat(content="ok"))
    answer = post(chat_only_url, {"model": MODEL, "input": "Go", "stream": True})
    assert events_of(answer)[-1]["type"] == "response.completed"
    assert len(chat_requests(chat_fake)) == 2


@pytest.mark.parametrize("failure", [{"error_after": 3}, {"cut_after": 3}])
def test_a_failure_mid_stream_is_response_failed_never_completed(chat_fake, chat_only_url, failure):
    chat_fake.script(Chat(content="A long answer that breaks.", **failure))
    events = events_of(post(chat_only_url, {"model": MODEL, "input": "Go", "stream": True}))
    kinds = [event["type"] for event in events]
    assert kinds[-2:] == ["error", "response.failed"] and "response.completed" not in kinds
    assert events[-1]["response"]["status"] == "failed" and events[-1]["response"]["error"]["message"]


def test_a_failure_of_a_whole_answer_is_an_error(chat_fake):
    chat_fake.script(Chat(content="A long answer that breaks.", error_after=3))
    with running_proxy(proxy_config(chat_fake.base_url, upstream={"chat_only": True},
                                    stream={"upstream_stream": True})) as url:
        answer = post(url, {"model": MODEL, "input": "Go"})
    assert answer.status_code == 502
    check_error_body(answer.json())


def test_a_bad_request_is_a_400_naming_the_parameter(chat_fake, chat_only_url):
    answer = post(chat_only_url, {"model": MODEL, "input": "Go", "temperature": 7})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "temperature"
    assert post(chat_only_url, {"input": "Go"}).json()["error"]["param"] == "model"
    assert not chat_requests(chat_fake)


# ---------------------------------------------------------------- stored responses


def test_a_stored_response_continues_the_conversation_and_can_be_read_and_deleted(chat_fake, detecting_url):
    chat_fake.script(Chat(content="Paris."), Chat(content="About 2 million."))
    first = post(detecting_url, {"model": MODEL, "input": "Capital of France?", "instructions": "Be brief."})
    response_id = first.json()["id"]
    second = post(detecting_url, {"model": MODEL, "input": "Its population?", "previous_response_id": response_id,
                                  "stream": True})
    assert events_of(second)[-1]["response"]["previous_response_id"] == response_id
    history = chat_requests(chat_fake)[-1]["messages"]
    assert [(m["role"], m["content"]) for m in history] == [
        ("user", "Capital of France?"), ("assistant", "Paris."), ("user", "Its population?")]

    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    got = httpx.get(f"{detecting_url}/v1/responses/{response_id}", headers=headers)
    assert got.json() == first.json()
    items = httpx.get(f"{detecting_url}/v1/responses/{response_id}/input_items", headers=headers).json()
    assert items["object"] == "list" and [item["content"][0]["text"] for item in items["data"]] == \
        ["Capital of France?"]
    assert items["data"][0]["id"] == items["first_id"] == items["last_id"] and items["has_more"] is False
    deleted = httpx.delete(f"{detecting_url}/v1/responses/{response_id}", headers=headers)
    assert deleted.json() == {"id": response_id, "object": "response", "deleted": True}
    # Gone: the id is no longer ours, so the request passes through to the upstream, which has none.
    assert httpx.get(f"{detecting_url}/v1/responses/{response_id}", headers=headers).status_code == 404


def test_store_false_keeps_nothing(chat_fake, chat_only_url):
    chat_fake.script(Chat(content="Paris."))
    first = post(chat_only_url, {"model": MODEL, "input": "Capital of France?", "store": False}).json()
    assert first["store"] is False
    again = post(chat_only_url, {"model": MODEL, "input": "And?", "previous_response_id": first["id"]})
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "previous_response_not_found"
    assert len(chat_requests(chat_fake)) == 1


def test_learned_chat_only_models_are_bounded():
    learned = LearnedModels("served only by the chat endpoint")
    for n in range(MODELS_REMEMBERED + 5):
        learned.learn(f"model-{n}")
    learned.learn("x" * (NAME_REMEMBERED_CHARS + 1))
    assert "model-0" in learned and "MODEL-1" in learned and f"model-{MODELS_REMEMBERED}" not in learned
    assert "x" * (NAME_REMEMBERED_CHARS + 1) not in learned


def chat_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_a_silent_stream_gets_keep_alive_comments(chat_fake):
    chat_fake.script(Stream(events=[chat_chunk({"role": "assistant", "content": ""}), chat_chunk({"content": "A"}),
                                    chat_chunk({"content": "B"}), chat_chunk({}, "stop")], heartbeat_pause=0.4))
    with running_proxy(proxy_config(chat_fake.base_url, upstream={"chat_only": True},
                                    stream={"heartbeat_interval": 0.05})) as url:
        answer = post(url, {"model": MODEL, "input": "Go", "stream": True})
    assert ": keep-alive" in answer.text
    assert events_of(answer)[-1]["response"]["output"][0]["content"][0]["text"] == "AB"


def test_a_client_that_leaves_mid_stream_lets_the_upstream_go(chat_fake, chat_only_url):
    chat_fake.script(Stream(events=[chat_chunk({"content": str(n)}) for n in range(50)], delay=0.2))
    with httpx.stream("POST", chat_only_url + "/v1/responses", json={"model": MODEL, "input": "Go", "stream": True},
                      headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=30) as answer:
        for line in answer.iter_lines():
            if "response.output_text.delta" in line:
                break
    chat_fake.wait_for_disconnect()


def test_a_whole_answer_behind_keep_alive_whitespace(chat_fake):
    chat_fake.script(Stream(events=[chat_chunk({"role": "assistant", "content": "A"}), chat_chunk({"content": "B"}),
                                    chat_chunk({}, "stop")], heartbeat_pause=0.4))
    config = proxy_config(chat_fake.base_url, upstream={"chat_only": True},
                          stream={"heartbeat_interval": 0.05, "non_stream_keepalive": True, "upstream_stream": True})
    with running_proxy(config) as url:
        answer = post(url, {"model": MODEL, "input": "Go"})
    assert answer.text.startswith(" ")
    check_response(answer.json())
    assert answer.json()["output"][0]["content"][0]["text"] == "AB"


def test_a_stream_asked_for_and_answered_in_one_piece_is_still_a_stream(chat_fake, chat_only_url):
    completion = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": MODEL, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Entier."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    chat_fake.script(Reply(200, json=completion))
    events = events_of(post(chat_only_url, {"model": MODEL, "input": "Go", "stream": True}))
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Entier."
    assert events[-1]["response"]["usage"]["total_tokens"] == 5


def test_what_was_adjusted_is_said_in_a_header(chat_fake, chat_only_url):
    chat_fake.script(Chat(content="ok"))
    answer = post(chat_only_url, {"model": MODEL, "input": "Go", "tools": TOOLS, "tool_choice": {
        "type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_weather"}]}})
    assert answer.headers["x-proxy-adjusted-params"] == "tool_choice=allowed_tools->required"
    (request,) = chat_requests(chat_fake)
    assert [tool["function"]["name"] for tool in request["tools"]] == ["get_weather"]


@pytest.mark.parametrize("flavour, field", [("deepseek", "reasoning_content"), ("vllm", "reasoning"),
                                            ("llamacpp", "reasoning_content")])
def test_each_servers_flavour_is_found_out_and_answered(flavour, field):
    with running_fake_upstream(FakeChatUpstream(flavour, field)) as fake, \
            running_proxy(proxy_config(fake.base_url)) as url:
        fake.script(Chat(reasoning="Hmm.", content="Voilà.", tool_calls=[ToolCall("get_weather", {"city": "Nice"})]),
                    Reply(400, json=fake.error_body(400, "Bad things")))
        events = events_of(post(url, {"model": MODEL, "input": "Go", "tools": TOOLS[:1], "stream": True}))
        failed = post(url, {"model": MODEL, "input": "Go"})
    output = events[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["reasoning", "message", "function_call"]
    assert output[0]["summary"][0]["text"] == "Hmm." and output[2]["call_id"]
    assert failed.status_code == 400 and failed.json()["error"]["message"] == "Bad things"
    check_error_body(failed.json())
