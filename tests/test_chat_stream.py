"""Streamed chat requests for Responses-only models, end to end through the real server."""

from __future__ import annotations

import asyncio
import json
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
    function_call_item,
    message_item,
    reasoning_item,
    stream_events,
    url_citation,
)
from spec_check import check_chat_chunk, check_create_response

MESSAGES = [{"role": "user", "content": "Hi"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {
    "q": {"type": "string"}}}}}]


def sse_payloads(text):
    """The ``data:`` payloads of an SSE body, with comments counted separately."""
    payloads, comments = [], 0
    for block in text.split("\n\n"):
        for line in block.split("\n"):
            if line.startswith(":"):
                comments += 1
            elif line.startswith("data: "):
                payloads.append(line[6:])
    return payloads, comments


def raw_stream(url, body, timeout=30):
    with httpx.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}, timeout=timeout) as response:
        text = "".join(response.iter_text())
        return response, text


def test_stream_with_reasoning_text_and_usage(client, fake, proxy_url):
    fake.script(Respond(output=[reasoning_item(["First thought.", "Second thought."]),
                                message_item("Hello! How can I help you today?")]))
    stream = client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    reasoning = "".join(c.choices[0].delta.model_extra.get("reasoning_content") or "" for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert reasoning == "First thought.\n\nSecond thought."
    assert content == "Hello! How can I help you today?"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert len({c.id for c in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)
    (request,) = fake.requests_to("/responses")
    check_create_response(request.json)
    assert request.json["stream"] is True


def test_headers_chunks_and_done_on_the_wire(proxy_url, fake):
    fake.script(Respond(output=[reasoning_item(["Thinking."]), message_item("Answer.")]))
    response, text = raw_stream(proxy_url, {"model": "o3-pro", "messages": MESSAGES})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    payloads, _ = sse_payloads(text)
    assert payloads[-1] == "[DONE]"
    frames = [json.loads(p) for p in payloads[:-1]]
    for frame in frames:
        check_chat_chunk(frame)
        assert "type" not in frame
        delta = frame["choices"][0]["delta"]
        assert not ({"content", "reasoning_content"} <= delta.keys())
    assert frames[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert all("usage" not in frame for frame in frames)


def test_stream_helper_final_message_equals_the_non_streamed_answer(client, fake):
    output = [reasoning_item(["Plan the lookup."]), message_item("Let me look."),
              function_call_item("lookup", {"q": "weather"}, call_id="call_1"),
              function_call_item("lookup", {"q": "time"}, call_id="call_2")]
    fake.script(Respond(output=output))
    plain = client.chat.completions.create(model="o3-pro", messages=MESSAGES, tools=TOOLS).choices[0].message
    fake.script(Respond(output=output))
    with client.chat.completions.stream(model="o3-pro", messages=MESSAGES, tools=TOOLS) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion().choices[0]
    assert final.finish_reason == "tool_calls"
    assert final.message.content == plain.content
    assert [(c.id, c.function.name, c.function.arguments) for c in final.message.tool_calls] == \
        [(c.id, c.function.name, c.function.arguments) for c in plain.tool_calls]
    assert [c.id for c in plain.tool_calls] == ["call_1", "call_2"]


def test_streamed_tool_call_deltas(proxy_url, fake):
    fake.script(Respond(output=[function_call_item("lookup", {"q": "a long query to split"}, call_id="call_x")]))
    _, text = raw_stream(proxy_url, {"model": "o3-pro", "messages": MESSAGES, "tools": TOOLS})
    frames = [json.loads(p) for p in sse_payloads(text)[0][:-1]]
    calls = [c for f in frames for c in f["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0] == {"index": 0, "id": "call_x", "type": "function", "function": {"name": "lookup", "arguments": ""}}
    assert all(c["index"] == 0 for c in calls) and len(calls) > 2
    assert "".join(c["function"].get("arguments", "") for c in calls) == '{"q":"a long query to split"}'
    assert fold(frames)["finish_reasons"] == ["tool_calls"]


def test_streamed_citations_and_refusal(proxy_url, fake):
    text = "See the docs for details."
    fake.script(Respond(output=[message_item(text, annotations=[url_citation("https://docs.example/", "Docs", 4, 12)])]))
    _, body = raw_stream(proxy_url, {"model": "o3-pro", "messages": MESSAGES})
    folded = fold([json.loads(p) for p in sse_payloads(body)[0][:-1]])
    assert folded["message"]["annotations"] == [{"type": "url_citation", "url_citation": {
        "start_index": 4, "end_index": 12, "url": "https://docs.example/", "title": "Docs"}}]

    fake.script(Respond(output=[message_item(refusal="No.")]))
    _, body = raw_stream(proxy_url, {"model": "o3-pro", "messages": MESSAGES})
    assert fold([json.loads(p) for p in sse_payloads(body)[0][:-1]])["message"]["refusal"] == "No."


def test_incomplete_stream_finishes_with_length(client, fake):
    fake.script(Respond(output=[message_item("Partial answ")], status="incomplete",
                        incomplete_details={"reason": "max_output_tokens"}))
    chunks = list(client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["length"]


def test_rejection_before_streaming_is_a_json_error(client, fake, proxy_url):
    fake.script(Reply(status=400, json=error_body("Invalid 'input': too long.", param="input")))
    response, text = raw_stream(proxy_url, {"model": "o3-pro", "messages": MESSAGES})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    error = json.loads(text)["error"]  # named as the client knows it (see tests/test_error_params.py)
    assert (error["message"], error["param"]) == ("Invalid 'messages': too long.", "messages")

    fake.script(*[Reply(status=429, json=error_body("Slow down.", type="rate_limit_error"))] * 3)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True)


def failing_streams():
    response = build_response(None, [message_item("Half an ans")])
    events = stream_events(response)
    created, in_progress = events[0], events[1]
    return {
        "failed": [created, in_progress, {"type": "response.failed", "response": {
            **response, "status": "failed", "error": {"code": "server_error", "message": "Model crashed."}}}],
        "error-flat": [created, {"type": "error", "code": "server_error", "message": "Model crashed.", "param": None}],
        "error-nested": [created, {"type": "error", "error": {"type": "server_error", "code": "server_error",
                                                              "message": "Model crashed."}}],
        "no-terminal-event": events[:-1],
    }


@pytest.mark.parametrize("kind", list(failing_streams()))
def test_failure_mid_stream_is_an_error_never_a_stop(client, fake, proxy_url, kind):
    events = failing_streams()[kind]
    fake.script(Stream(events=events))
    response, text = raw_stream(proxy_url, {"model": "o3-pro", "messages": MESSAGES})
    payloads, _ = sse_payloads(text)
    assert payloads[-1] != "[DONE]"
    last = json.loads(payloads[-1])
    assert isinstance(last["error"]["message"], str) and last["error"]["message"]
    frames = [json.loads(p) for p in payloads[:-1]]
    assert not fold(frames)["finish_reasons"]
    if kind != "no-terminal-event":
        assert last["error"]["message"] == "Model crashed."

    fake.script(Stream(events=events))
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True))


def test_connection_cut_mid_stream_is_reported(client, fake, proxy_url):
    events = stream_events(build_response(None, [message_item("A long answer that will be cut short")]))
    fake.script(Stream(events=events, cut_after=6))
    _, text = raw_stream(proxy_url, {"model": "o3-pro", "messages": MESSAGES})
    payloads, _ = sse_payloads(text)
    error = json.loads(payloads[-1])["error"]
    assert error["code"] in ("upstream_disconnected", "upstream_stream_incomplete")
    fake.script(Stream(events=events, cut_after=6))
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True))


def test_heartbeats_during_silence(make_proxy, fake):
    events = stream_events(build_response(None, [message_item("Done thinking.")]))
    fake.script(Stream(events=events[:2] + [{"type": "response.queued_progress_nobody_knows"}] + events[2:],
                       delay=0.35))
    with make_proxy(stream={"heartbeat_interval": 0.1}) as url:
        _, text = raw_stream(url, {"model": "o3-pro", "messages": MESSAGES})
    payloads, comments = sse_payloads(text)
    assert ": keep-alive" in text and comments >= 5
    assert payloads[-1] == "[DONE]"
    assert fold([json.loads(p) for p in payloads[:-1]])["message"]["content"] == "Done thinking."


def test_idle_watchdog_ends_a_dead_stream(make_proxy, fake):
    events = stream_events(build_response(None, [message_item("never finished")]))
    fake.script(Stream(events=events, delay=3))
    with make_proxy(upstream={"idle_timeout": 0.5}, stream={"heartbeat_interval": 0.2}) as url:
        started = time.monotonic()
        _, text = raw_stream(url, {"model": "o3-pro", "messages": MESSAGES})
    assert time.monotonic() - started < 2.5
    error = json.loads(sse_payloads(text)[0][-1])["error"]
    assert error["code"] == "idle_timeout" and "0.5" in error["message"]


async def test_client_disconnect_closes_the_upstream_stream(proxy_url, fake):
    events = stream_events(build_response(None, [message_item("x" * 400)]), text_chunk=4)
    fake.script(Stream(events=events, delay=0.05))
    await read_first_content_then_leave(proxy_url, {"model": "o3-pro", "messages": MESSAGES})
    await asyncio.wait_for(fake.wait_for_disconnect(timeout=5), 6)
    assert fake.disconnects == 1


def test_upstream_ignoring_stream_true_is_replayed_as_a_stream(client, fake):
    fake.script(Reply(json=build_response(None, [reasoning_item(["Hmm."]), message_item("Whole answer.")])))
    chunks = list(client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Whole answer."
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]


async def test_async_sdk_stream(async_client, fake):
    fake.script(Respond(output=[message_item("async works")]))
    stream = await async_client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True)
    content = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert content == "async works"


def test_malformed_event_in_the_middle_is_skipped(proxy_url, fake):
    events = stream_events(build_response(None, [message_item("Survives bad lines.")]))
    raw = [b"event: response.created\ndata: " + json.dumps(events[0]).encode() + b"\n\n",
           b"data: {this is not json\n\n"] + \
          [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events[1:]]
    fake.script(Stream(raw=raw))
    _, text = raw_stream(proxy_url, {"model": "o3-pro", "messages": MESSAGES})
    payloads, _ = sse_payloads(text)
    assert payloads[-1] == "[DONE]"
    assert fold([json.loads(p) for p in payloads[:-1]])["message"]["content"] == "Survives bad lines."


def test_slow_trickle_arrives_event_by_event(make_proxy, fake):
    events = stream_events(build_response(None, [message_item("one two three four")]), text_chunk=4)
    fake.script(Stream(events=events, delay=0.1))
    arrivals = []
    with make_proxy() as url, sdk(url) as client:
        for chunk in client.chat.completions.create(model="o3-pro", messages=MESSAGES, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.monotonic())
    assert len(arrivals) >= 4
    assert arrivals[-1] - arrivals[0] >= 0.2  # relayed as they came, not buffered to the end
