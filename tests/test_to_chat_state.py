"""What a Responses client carries from turn to turn when its model is served through chat: sealed reasoning
(`include: ["reasoning.encrypted_content"]`, as Codex CLI sends with `store: false`), and `item_reference` items
naming items of the stored chain; and what the proxy does around such a request as for a chat one: the model
learned chat-only once chat accepts it, aliases, effort variants and the fallback model.

The seal's own rules are tested on the core (`ReasoningSeal`, the mapping, the stream translator); the rest
through the real proxy against the fake chat-only upstream (DeepSeek's kind: with `needs_reasoning_back`, an
assistant message with tool calls must carry its `reasoning_content`, as DeepSeek's thinking mode with tools
demands).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import CLIENT_KEY, proxy_config
from fake_chat_upstream import Chat, FakeChatUpstream, ToolCall
from fake_upstream import Reply
from proxy.config import load_config
from proxy.errors import ProxyError
from proxy.translate import (ChatOptions, ReasoningSeal, ResponseStream, completion_to_response,
                             responses_request_to_chat)
from servers import running_proxy
from spec_check import check_error_body, check_response
from test_to_chat_served import chat_requests, events_of, post

MODEL = "deepseek-reasoner"
TOOLS = [{"type": "function", "name": "shell", "parameters": {"type": "object", "properties": {
    "command": {"type": "string"}}, "required": ["command"]}}]
KEY = "a server key of thirty-two chars"
CODEX = {"store": False, "include": ["reasoning.encrypted_content"], "tools": TOOLS, "stream": True}


@pytest.fixture
def chat_fake(chat_fake: FakeChatUpstream) -> FakeChatUpstream:
    chat_fake.needs_reasoning_back = True  # as DeepSeek's thinking mode with tools
    return chat_fake


def config(url: str, **sections: Any):
    """A proxy whose chat-only upstream takes its reasoning back (DeepSeek's thinking with tools)."""
    return proxy_config(url, **{"upstream": {"chat_only": True, "max_attempts": 1},
                                "models": {"deepseek-*": {"reasoning_history": True}}, **sections})


@pytest.fixture(scope="module")
def url(chat_server) -> Iterator[str]:
    with running_proxy(config(chat_server.base_url)) as url:
        yield url


# ---------------------------------------------------------------- the seal


def test_a_seal_opens_with_its_key_only_and_an_altered_one_is_told_apart():
    seal = ReasoningSeal(b"k" * 32)
    sealed = seal.seal(MODEL, "Je réfléchis. " * 200)
    assert sealed.startswith("rp1.") and len(sealed) < 600  # compressed
    assert seal.open(sealed) == ("reasoning", MODEL, "Je réfléchis. " * 200)
    assert ReasoningSeal(b"k" * 32).open(sealed).kind == "reasoning"  # the same key in another process
    assert ReasoningSeal(b"other key").open(sealed).kind == "foreign"
    assert seal.open("gAAAAABpPDIVOKrsHNZ0GwsoEKA").kind == "other"  # an OpenAI upstream's encrypted content
    middle = len(sealed) // 2
    flipped = sealed[:middle] + ("A" if sealed[middle] != "A" else "B") + sealed[middle + 1:]
    for altered in (flipped, sealed[:-3], sealed[:20], "rp1.", "rp1.***", sealed + "é"):
        assert seal.open(altered).kind == "altered", altered


def test_the_reasoning_item_carries_its_seal_streamed_and_whole():
    seal = ReasoningSeal(b"k" * 32)
    request = responses_request_to_chat({"model": MODEL, "input": "Go", "include": ["reasoning.encrypted_content"]},
                                        ChatOptions(reasoning_seal=seal))
    assert request.dropped == []
    stream = ResponseStream(request.state)
    events = stream.start()
    for delta in ({"reasoning_content": "Let me "}, {"reasoning_content": "think."}, {"content": "Done."}):
        events += stream.feed({"choices": [{"index": 0, "delta": delta}]})
    events += stream.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + stream.finish()
    (added,) = [e["item"] for e in events if e["type"] == "response.output_item.added" and e["output_index"] == 0]
    (done,) = [e["item"] for e in events if e["type"] == "response.output_item.done" and e["output_index"] == 0]
    assert "encrypted_content" not in added  # not known before the reasoning is whole
    assert seal.open(done["encrypted_content"]) == ("reasoning", MODEL, "Let me think.")
    assert stream.response["output"][0] == done
    whole = completion_to_response({"choices": [{"index": 0, "message": {
        "role": "assistant", "reasoning_content": "Let me think.", "content": "Done."}, "finish_reason": "stop"}]},
        request.state)
    check_response(whole)
    assert whole["output"][0]["encrypted_content"] == done["encrypted_content"]
    # Not asked for: no seal.
    plain = responses_request_to_chat({"model": MODEL, "input": "Go"}, ChatOptions(reasoning_seal=seal))
    assert "encrypted_content" not in completion_to_response({"choices": [{"index": 0, "message": {
        "role": "assistant", "reasoning_content": "Hm.", "content": "Done."}}]}, plain.state)["output"][0]


def replayed(sealed: str, summary: str = "", model: str = MODEL) -> dict[str, Any]:
    """A second turn's request, resending the first turn's reasoning item and call as Codex resends them."""
    reasoning = {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": summary}]
                 if summary else [], "encrypted_content": sealed}
    return {"model": model, "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List the files."}]},
        reasoning, {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{\"command\":\"ls\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"}]}


def test_a_sealed_reasoning_goes_back_to_its_model_only_and_an_altered_one_is_a_400():
    seal = ReasoningSeal(b"k" * 32)
    options = ChatOptions(reasoning_history=True, reasoning_seal=seal)
    sealed = seal.seal(MODEL, "I should run ls.")
    messages = responses_request_to_chat(replayed(sealed, summary="a shown summary"), options).body["messages"]
    assert messages[1]["reasoning_content"] == "I should run ls."  # the seal, not the summary
    # Another model's reasoning is not given to this one as its own.
    other = responses_request_to_chat(replayed(seal.seal("qwen3", "Hm."), summary="Hm."), options)
    assert "reasoning_content" not in other.body["messages"][1]
    # Sealed under another key: the item's own text serves, and the caller learns where.
    foreign = responses_request_to_chat(replayed(ReasoningSeal(b"other").seal(MODEL, "x"), summary="shown"), options)
    assert foreign.body["messages"][1]["reasoning_content"] == "shown" and foreign.unopened == ["input[1]"]
    # Not taken back by this model: the item, seal and all, is left out.
    assert "reasoning_content" not in responses_request_to_chat(
        replayed(sealed), ChatOptions(reasoning_seal=seal)).body["messages"][1]
    with pytest.raises(ProxyError) as caught:
        responses_request_to_chat(replayed(sealed[:-2] + "xx"), options)
    assert (caught.value.status, caught.value.code, caught.value.param) == \
        (400, "invalid_encrypted_content", "input[1].encrypted_content")
    assert caught.value.message.endswith("could not be verified.")


# ---------------------------------------------------------------- two turns, as Codex CLI takes them


def first_turn(fake: FakeChatUpstream, url: str, stream: bool = True) -> list[dict[str, Any]]:
    """Turn one: the model thinks, then calls the shell; the output items the client keeps."""
    fake.script(Chat(reasoning="I should run ls.", tool_calls=[ToolCall("shell", {"command": "ls"}, id="call_1")]))
    body = {"model": MODEL, "input": "List the files.", **CODEX, "stream": stream}
    answer = post(url, body)
    if not stream:
        check_response(answer.json())
        return answer.json()["output"]
    events = events_of(answer)
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done == events[-1]["response"]["output"]
    return done


def second_turn(url: str, output: list[dict[str, Any]], stream: bool = True) -> httpx.Response:
    """Turn two: the whole conversation sent again, the reasoning item as it came but for its summary (which
    clients may leave out), and the command's output."""
    items = [{**item, "summary": []} if item["type"] == "reasoning" else item for item in output]
    return post(url, {"model": MODEL, **CODEX, "stream": stream, "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List the files."}]},
        *items, {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"}]})


@pytest.mark.parametrize("stream", [True, False])
def test_reasoning_round_trips_without_state(chat_fake, url, stream):
    output = first_turn(chat_fake, url, stream)
    assert [item["type"] for item in output] == ["reasoning", "function_call"]
    assert output[0]["encrypted_content"].startswith("rp1.")
    chat_fake.script(Chat(content="a.txt is there."))
    answer = second_turn(url, output, stream)
    assert answer.status_code == 200, answer.text
    assistant = chat_requests(chat_fake)[-1]["messages"][1]
    assert assistant["reasoning_content"] == "I should run ls." and assistant["tool_calls"][0]["id"] == "call_1"


def test_without_the_seal_deepseek_refuses_the_second_turn(chat_fake, url):
    """What the seal is for: the same second turn, its reasoning item without encrypted_content."""
    output = first_turn(chat_fake, url)
    answer = second_turn(url, [{k: v for k, v in item.items() if k != "encrypted_content"} for item in output])
    assert answer.status_code == 400 and "reasoning_content" in answer.json()["error"]["message"]


def test_an_altered_seal_is_a_400_before_any_upstream_call(chat_fake, url):
    output = first_turn(chat_fake, url)
    sealed = output[0]["encrypted_content"]
    output[0] = {**output[0], "encrypted_content": sealed[:-6] + ("AAAAAA" if not sealed.endswith("AAAAAA")
                                                                   else "BBBBBB")}
    answer = second_turn(url, output)
    assert answer.status_code == 400
    check_error_body(answer.json())
    assert answer.json()["error"]["code"] == "invalid_encrypted_content"
    assert answer.json()["error"]["param"] == "input[1].encrypted_content"
    assert len(chat_requests(chat_fake)) == 1


def test_a_seal_of_another_process_is_ignored_and_a_shared_key_opens_it(chat_fake, url, caplog):
    output = first_turn(chat_fake, url)
    with running_proxy(config(chat_fake.base_url)) as other:  # a random key of its own
        chat_fake.script(Chat(content="ok"))
        with caplog.at_level(logging.DEBUG, logger="proxy.plan"):
            answer = second_turn(other, output)
    # Not an error: the turn goes on without the reasoning (the client left out the summary), which DeepSeek
    # refuses here, as it would any turn missing it.
    assert "could not be verified" not in answer.text
    assert "reasoning_content" not in chat_requests(chat_fake)[-1]["messages"][1]
    assert "reasoning sealed under another key" in caplog.text and "input[1]" in caplog.text

    with running_proxy(config(chat_fake.base_url, to_chat={"reasoning_key": KEY})) as first, \
            running_proxy(config(chat_fake.base_url, to_chat={"reasoning_key": KEY})) as second:
        output = first_turn(chat_fake, first)
        chat_fake.script(Chat(content="ok"))
        assert second_turn(second, output).status_code == 200
    assert chat_requests(chat_fake)[-1]["messages"][1]["reasoning_content"] == "I should run ls."


def test_the_key_is_configured_or_taken_from_the_environment():
    assert load_config(env={"PROXY_REASONING_KEY": KEY}).to_chat.reasoning_key == KEY
    assert KEY not in repr(load_config(env={"PROXY_REASONING_KEY": KEY}))
    with pytest.raises(Exception, match="reasoning_key"):
        load_config(env={}, overrides={"to_chat": {"reasoning_key": "short"}})


# ---------------------------------------------------------------- item_reference


def test_an_item_reference_names_an_item_of_the_stored_chain(chat_fake):
    chat_fake.needs_reasoning_back = False
    with running_proxy(config(chat_fake.base_url)) as url:
        chat_fake.script(Chat(content="Paris."), Chat(content="About 2 million."))
        first = post(url, {"model": MODEL, "input": "Capital of France?"}).json()
        message_id = first["output"][0]["id"]
        second = post(url, {"model": MODEL, "previous_response_id": first["id"], "input": [
            {"type": "item_reference", "id": message_id},
            {"type": "message", "role": "user", "content": "Its population?"}]})
        assert second.status_code == 200, second.text
        unknown = post(url, {"model": MODEL, "previous_response_id": first["id"], "input": [
            {"type": "item_reference", "id": "msg_nowhere"}]})
        listed = httpx.get(f"{url}/v1/responses/{second.json()['id']}/input_items?order=asc",
                           headers={"authorization": f"Bearer {CLIENT_KEY}"}).json()
    assert [(m["role"], m["content"]) for m in chat_requests(chat_fake)[-1]["messages"]] == [
        ("user", "Capital of France?"), ("assistant", "Paris."), ("assistant", "Paris."),
        ("user", "Its population?")]
    assert unknown.status_code == 404 and unknown.json()["error"] == {
        "message": "Item with id 'msg_nowhere' not found.", "type": "invalid_request_error", "param": "input",
        "code": None}
    assert listed["data"][0]["id"] == message_id and listed["data"][0]["role"] == "assistant"
    assert len(chat_requests(chat_fake)) == 2


# ---------------------------------------------------------------- learned once chat accepts


@pytest.mark.parametrize("stream", [True, False])
def test_a_model_is_learned_once_chat_accepts_it_however_the_answer_ends(chat_fake, stream):
    chat_fake.needs_reasoning_back = False
    chat_fake.script(Chat(content="A long answer that breaks.", error_after=3), Chat(content="ok"))
    with running_proxy(proxy_config(chat_fake.base_url, stream={"upstream_stream": True})) as url:
        broken = post(url, {"model": MODEL, "input": "Go", "stream": stream})
        again = post(url, {"model": MODEL, "input": "Go"})
    if stream:
        assert events_of(broken)[-1]["type"] == "response.failed"
    else:
        assert broken.status_code == 502
    assert again.status_code == 200
    assert len(chat_fake.requests_to("/responses")) == 1  # the second request went straight to chat


# ---------------------------------------------------------------- aliases, effort variants, fallback


def test_an_alias_is_resolved_for_a_chat_only_model(chat_fake):
    chat_fake.needs_reasoning_back = False
    chat_fake.script(Chat(content="ok"))
    aliases = {"thinker": {"model": MODEL, "reasoning_effort": "high", "params": {"max_completion_tokens": 99}}}
    with running_proxy(config(chat_fake.base_url, aliases=aliases)) as url:
        answer = post(url, {"model": "thinker", "input": "Go", "reasoning": {"summary": "auto"}})
    (request,) = chat_requests(chat_fake)
    assert (request["model"], request["reasoning_effort"], request["max_completion_tokens"]) == (MODEL, "high", 99)
    assert answer.json()["model"] == MODEL and answer.json()["reasoning"] == {"effort": "high", "summary": "auto"}


def test_a_models_default_effort_is_sent_when_the_client_names_none(chat_fake):
    chat_fake.needs_reasoning_back = False
    chat_fake.script(Chat(content="ok"), Chat(content="ok"))
    models = {"deepseek-*": {"reasoning_history": True, "reasoning_effort": "high"}}
    with running_proxy(config(chat_fake.base_url, models=models)) as url:
        defaulted = post(url, {"model": MODEL, "input": "Go", "reasoning": {"summary": "auto"}})
        chosen = post(url, {"model": MODEL, "input": "Go", "reasoning": {"effort": "low"}})
    assert [request["reasoning_effort"] for request in chat_requests(chat_fake)] == ["high", "low"]
    assert defaulted.json()["reasoning"] == {"effort": "high", "summary": "auto"}
    assert chosen.json()["reasoning"]["effort"] == "low"


def test_an_alias_and_an_effort_variant_are_resolved_when_passed_through(fake, make_proxy):
    aliases = {"quick": {"model": "gpt-4.1", "params": {"temperature": 0.2, "max_tokens": 50}}}
    with make_proxy(aliases=aliases) as url:
        assert post(url, {"model": "quick", "input": "Go", "temperature": 1}).status_code == 200
        assert post(url, {"model": "o3-pro-high", "input": "Go"}).status_code == 200
    quick, variant = [r.json for r in fake.requests_to("/responses")]
    assert (quick["model"], quick["temperature"], quick["max_output_tokens"]) == ("gpt-4.1", 0.2, 50)
    assert (variant["model"], variant["reasoning"]) == ("o3-pro", {"effort": "high"})


def test_the_fallback_model_serves_a_chat_only_model_that_fails_before_its_answer(chat_fake):
    chat_fake.needs_reasoning_back = False
    chat_fake.script(Reply(503, json=chat_fake.error_body(503, "Server busy")), Chat(content="From the other."))
    with running_proxy(config(chat_fake.base_url, models={MODEL: {"fallback": "deepseek-chat"}})) as url:
        answer = post(url, {"model": MODEL, "input": "Go", "stream": True})
    assert answer.headers["x-proxy-fallback"] == "deepseek-chat"
    assert events_of(answer)[-1]["response"]["model"] == "deepseek-chat"
    assert [r["model"] for r in chat_requests(chat_fake)] == [MODEL, "deepseek-chat"]


def test_no_fallback_once_the_stream_has_begun(chat_fake):
    chat_fake.needs_reasoning_back = False
    chat_fake.script(Chat(content="A long answer that breaks.", error_after=3), Chat(content="never"))
    with running_proxy(config(chat_fake.base_url, models={MODEL: {"fallback": "deepseek-chat"}})) as url:
        answer = post(url, {"model": MODEL, "input": "Go", "stream": True})
    assert events_of(answer)[-1]["type"] == "response.failed" and "x-proxy-fallback" not in answer.headers
    assert [r["model"] for r in chat_requests(chat_fake)] == [MODEL]


def test_the_fallback_model_serves_a_passed_through_model_that_fails(fake, make_proxy):
    fake.script(Reply(503, json={"error": {"message": "overloaded", "type": "server_error", "param": None,
                                           "code": None}}))
    with make_proxy(upstream={"max_attempts": 1}, models={"gpt-4.1": {"fallback": "gpt-4o"}}) as url:
        answer = post(url, {"model": "gpt-4.1", "input": "Go"})
    assert answer.status_code == 200 and answer.headers["x-proxy-fallback"] == "gpt-4o"
    assert [r.json["model"] for r in fake.requests_to("/responses")] == ["gpt-4.1", "gpt-4o"]
    assert json.loads(answer.text)["object"] == "response"
