"""The fault matrix: every way the upstream or the client can fail, through the real server.

Each case checks three things: the client gets a well-formed, truthful outcome
(the right status, or an error frame and no ``[DONE]`` for a stream), no
upstream request is left running, and the proxy goes on serving.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import socket
import time

import httpx
import pytest

import proxy.responses_calls
from fake_upstream import (
    Hang,
    Reply,
    Respond,
    Stream,
    build_response,
    error_body,
    message_item,
    reasoning_item,
    sse_bytes,
    stream_events,
)
from wire import (
    MESSAGES,
    http,
    address,
    check_error,
    closed_port,
    completion_of,
    dechunk,
    kernel_queued,
    post_chat,
    sse_payloads,
    stream_outcome,
    tcp_buffer_maximum,
    wait_until,
)

TRANSLATED, PASSED = "o3-pro", "gpt-4o"
BOTH = pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
ANSWER = "All good."


def still_serving(url, fake):
    """No upstream request is left open, and a plain request right after succeeds."""
    wait_until(lambda: fake.active == 0, 5, "the upstream to have no request in progress")
    fake.reset()
    answer = completion_of(post_chat(url, {"model": TRANSLATED, "messages": MESSAGES}))
    assert answer["choices"][0]["message"]["content"] == "Echo: Hi"


def ask(url, stream, model=TRANSLATED, **kwargs):
    return post_chat(url, {"model": model, "messages": MESSAGES}, stream=stream, **kwargs)


def answered(response, stream, content=ANSWER):
    """A successful answer with ``content``, streamed or not."""
    if stream:
        chunks, error = stream_outcome(response)
        assert error is None, error
        text = "".join(choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"])
    else:
        text = completion_of(response)["choices"][0]["message"]["content"]
    assert text == content


def failed(response, stream, status, code=None):
    """The error a client must see: a JSON error before streaming, else an error frame (status 200, no [DONE])."""
    if stream and response.status_code == 200:
        _, error = stream_outcome(response)
        assert error is not None, "a failure reported as a finished answer"
    else:
        error = check_error(response, status)
    if code is not None:
        assert error["code"] == code, error
    return error


def events_of(*output, **fields):
    return stream_events(build_response(None, list(output), **fields))


# ---------------------------------------------------------------- upstream status answers


@BOTH
def test_429_with_retry_after_is_honoured_then_served(proxy_url, fake, stream):
    fake.script(Reply(status=429, json=error_body("Slow down.", type="rate_limit_error"), headers={"retry-after": "0.4"}),
                Respond(output=[message_item(ANSWER)]))
    started = time.monotonic()
    answered(ask(proxy_url, stream), stream)
    assert time.monotonic() - started >= 0.4
    assert len(fake.requests_to("/responses")) == 2
    still_serving(proxy_url, fake)


@pytest.mark.parametrize("model", [TRANSLATED, PASSED])
@pytest.mark.parametrize("status, etype", [(429, "rate_limit_error"), (500, "server_error"), (503, "server_error")])
@BOTH
def test_upstream_error_status_after_retries_reaches_the_client(proxy_url, fake, status, etype, model, stream):
    fake.script(*[Reply(status=status, json=error_body(f"Upstream says {status}.", type=etype),
                        headers={"retry-after": "0"})] * 3)
    error = failed(ask(proxy_url, stream, model), stream, status)
    assert error["message"] == f"Upstream says {status}." and error["type"] == etype
    assert len(fake.requests_to("/chat/completions" if model == PASSED else "/responses")) == 3
    still_serving(proxy_url, fake)


# ---------------------------------------------------------------- connecting


@pytest.fixture
def full_backlog():
    """A loopback port whose listen queue is full: connecting hangs until the client gives up."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(server.getsockname())
        fillers.append(filler)
    yield server.getsockname()[1]
    for sock in fillers + [server]:
        sock.close()


@pytest.mark.parametrize("model", [TRANSLATED, PASSED])
@BOTH
def test_connection_refused_is_502(make_proxy, fake, model, stream):
    with make_proxy(f"http://127.0.0.1:{closed_port()}/v1") as url:
        failed(ask(url, stream, model), stream, 502, "upstream_unreachable")


@BOTH
def test_dns_failure_is_502(make_proxy, fake, stream):
    with make_proxy("http://nonexistent.invalid/v1", upstream={"max_attempts": 1}) as url:
        error = failed(ask(url, stream), stream, 502, "upstream_unreachable")
    assert "upstream" in error["message"].lower()


@BOTH
def test_connect_timeout_is_504_naming_it(make_proxy, fake, full_backlog, stream):
    with make_proxy(f"http://127.0.0.1:{full_backlog}/v1", upstream={"connect_timeout": 0.2}) as url:
        started = time.monotonic()
        error = failed(ask(url, stream), stream, 504, "connect_timeout")
        assert time.monotonic() - started < 5
        assert "connect timeout" in error["message"]


@BOTH
def test_no_first_byte_within_the_timeout_is_504_and_the_upstream_request_is_closed(make_proxy, fake, stream):
    fake.script(Hang(10))
    with make_proxy(upstream={"first_byte_timeout": 0.3}) as url:
        error = failed(ask(url, stream), stream, 504, "first_byte_timeout")
        assert "0.3" in error["message"]
        fake.wait_for_disconnect(timeout=3)
        assert len(fake.requests_to("/responses")) == 1  # never retried: the upstream may still be working
        still_serving(url, fake)


# ---------------------------------------------------------------- broken streams


def cut_events():
    return events_of(reasoning_item(["Thinking."]), message_item("A long answer that is cut short."))


@pytest.mark.parametrize("case", ["reset-mid-stream", "no-terminal-event", "response.failed", "error-flat",
                                  "error-nested"])
@BOTH
def test_broken_upstream_stream_is_an_error_never_a_finished_answer(proxy_url, fake, case, stream):
    events = cut_events()
    final = events[-1]["response"]
    behaviour = {
        "reset-mid-stream": Stream(events=events, cut_after=8),
        "no-terminal-event": Stream(events=events[:-1]),
        "response.failed": Stream(events=events[:-1] + [{"type": "response.failed", "response": {
            **final, "status": "failed", "error": {"code": "server_error", "message": "Model crashed."}}}]),
        "error-flat": Stream(events=events[:6] + [{"type": "error", "code": "server_error", "message": "Model crashed.",
                                                    "param": None}]),
        "error-nested": Stream(events=events[:6] + [{"type": "error", "error": {
            "type": "server_error", "code": "server_error", "message": "Model crashed."}}]),
    }[case]
    fake.script(behaviour)
    status = 500 if case in ("response.failed", "error-flat", "error-nested") else 502
    error = failed(ask(proxy_url, stream), stream, status)
    if status == 500:
        assert error["message"] == "Model crashed."
    else:
        assert error["code"] in ("upstream_disconnected", "upstream_stream_incomplete")
    still_serving(proxy_url, fake)


@pytest.mark.parametrize("case", ["malformed-line", "unknown-event"])
@BOTH
def test_noise_in_the_stream_is_skipped(proxy_url, fake, case, stream):
    events = events_of(message_item(ANSWER))
    frames = [sse_bytes(event) for event in events]
    noise = (b"data: {this is not json\n\n" if case == "malformed-line"
             else sse_bytes({"type": "response.brand_new_event", "sequence_number": 99, "payload": {"x": 1}}))
    fake.script(Stream(raw=frames[:3] + [noise] + frames[3:]))
    answered(ask(proxy_url, stream), stream)
    still_serving(proxy_url, fake)


@BOTH
def test_a_200_that_is_not_json_is_502(proxy_url, fake, stream):
    fake.script(Reply(body=b"<html><body>Gateway says hi</body></html>", content_type="text/html"))
    error = failed(ask(proxy_url, stream), stream, 502, "invalid_upstream_response")
    assert "Gateway says hi" in error["message"]
    still_serving(proxy_url, fake)


@BOTH
def test_a_stream_event_larger_than_a_whole_answer_may_be_is_502(proxy_url, fake, stream, monkeypatch):
    """An event is held until its blank line comes; an upstream that never sends one must not fill the memory."""
    monkeypatch.setattr(proxy.responses_calls, "MAX_ANSWER_BYTES", 100_000)
    endless = b"data: {\"type\": \"response.output_text.delta\", \"delta\": \"" + b"x" * 30_000
    fake.script(Stream(events=events_of(message_item(ANSWER))[:2], raw=[endless] * 5))
    error = failed(ask(proxy_url, stream), stream, 502, "invalid_upstream_response")
    assert "100,000 bytes" in error["message"]
    still_serving(proxy_url, fake)


@pytest.mark.parametrize("body", ["json", "sse"])
@BOTH
def test_gzip_encoded_upstream_answers_are_decoded(proxy_url, fake, body, stream):
    response = build_response(None, [message_item(ANSWER)])
    if body == "json":
        reply = Reply(body=gzip.compress(json.dumps(response).encode()), headers={"content-encoding": "gzip"})
    else:
        reply = Reply(body=gzip.compress(b"".join(sse_bytes(event) for event in stream_events(response))),
                      content_type="text/event-stream", headers={"content-encoding": "gzip"})
    fake.script(reply)
    answered(ask(proxy_url, stream), stream)
    still_serving(proxy_url, fake)


@BOTH
def test_gzip_encoded_pass_through_answer_reaches_the_client_intact(proxy_url, fake, stream):
    chat = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": PASSED, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": ANSWER, "refusal": None}, "logprobs": None,
         "finish_reason": "stop"}]}
    if stream:
        chunk = {**chat, "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": {"content": ANSWER}, "logprobs": None, "finish_reason": "stop"}]}
        body, kind = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode(), "text/event-stream"
    else:
        body, kind = json.dumps(chat).encode(), "application/json"
    fake.script(Reply(body=gzip.compress(body), content_type=kind, headers={"content-encoding": "gzip"}))
    answered(ask(proxy_url, stream, PASSED), stream)
    assert "gzip" in fake.requests[0].headers["accept-encoding"]  # what the client (httpx) accepts
    still_serving(proxy_url, fake)


def test_a_pass_through_error_too_large_to_relay_is_its_gist(proxy_url, fake):
    """A pass-through error body is relayed as it came, unless it is larger than the proxy reads: never cut."""
    bomb = gzip.compress(b" " * 20_000_000 + json.dumps(error_body("Too long.", "invalid_request_error")).encode())
    fake.script(Reply(status=400, body=bomb, headers={"content-encoding": "gzip", "x-request-id": "req_big"}))
    response = ask(proxy_url, False, PASSED)
    error = failed(response, False, 400)
    assert error["message"] == "The upstream answered HTTP 400."  # its first MiB is blank: no JSON to read
    assert response.headers["x-upstream-request-id"] == "req_big"
    still_serving(proxy_url, fake)


def test_a_whole_answer_larger_than_the_proxy_reads_is_502(proxy_url, fake, monkeypatch):
    monkeypatch.setattr(proxy.responses_calls, "MAX_ANSWER_BYTES", 10_000)
    fake.script(Respond(output=[message_item("x" * 20_000)]))
    error = failed(ask(proxy_url, False), False, 502, "invalid_upstream_response")
    assert "10,000 bytes" in error["message"]
    still_serving(proxy_url, fake)


@BOTH
def test_a_very_slow_trickle_is_served_in_full(make_proxy, fake, stream):
    events = stream_events(build_response(None, [message_item(ANSWER)]), text_chunk=3)
    fake.script(Stream(events=events, delay=0.06))  # about 1 s in all, far longer than the idle timeout below
    with make_proxy(upstream={"idle_timeout": 0.5}, stream={"heartbeat_interval": 0.05}) as url:
        started = time.monotonic()
        response = ask(url, stream)
        answered(response, stream)
        assert time.monotonic() - started >= 0.06 * (len(events) - 1)
        if stream:
            assert ": keep-alive" in response.text
        still_serving(url, fake)


@pytest.mark.parametrize("model", [TRANSLATED, PASSED])
@pytest.mark.parametrize("stream", [True, False])
def test_client_gone_before_headers_closes_the_upstream_request(proxy_url, fake, model, stream):
    fake.script(Hang(30))
    with pytest.raises(httpx.ReadTimeout):
        post_chat(proxy_url, {"model": model, "messages": MESSAGES}, stream=stream, timeout=0.5)
    fake.wait_for_disconnect(timeout=3)
    still_serving(proxy_url, fake)


def nested_body(model, levels):
    """A chat request whose tool schema nests ``levels`` objects (built as text: encoders stop far earlier)."""
    schema = '{"properties": {"x": ' * (levels - 1) + "{}" + "}}" * (levels - 1)
    return (f'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hi"}}], '
            f'"tools": [{{"type": "function", "function": {{"name": "f", "parameters": {schema}}}}}]}}').encode()


@pytest.mark.parametrize("model", [TRANSLATED, PASSED])
@pytest.mark.parametrize("levels", [300, 2000])
def test_deeply_nested_request_is_400(proxy_url, fake, model, levels):
    response = http.post(proxy_url + "/v1/chat/completions", content=nested_body(model, levels), timeout=30,
                          headers={"content-type": "application/json"})
    assert check_error(response, 400)["type"] == "invalid_request_error"
    assert fake.requests == []
    still_serving(proxy_url, fake)


@pytest.mark.parametrize("stream", [True, False])
def test_malformed_items_in_the_final_response_do_not_break_the_answer(proxy_url, fake, stream):
    """The reasoning memory reads the whole final response: a call without call_id or a message without
    content must not turn a finished answer into a cut connection."""
    final = build_response({"include": ["reasoning.encrypted_content"]},
                           [reasoning_item(["Thought."], encrypted_content="gAAAAB-opaque"), message_item("Fine.")])
    final["output"] += [{"type": "function_call", "id": "fc_1", "name": "f", "arguments": "{}"},
                        {"type": "message", "id": "msg_2"}, {"type": "reasoning", "id": "rs_2", "summary": "x",
                                                            "encrypted_content": ["not", "a", "string"]}]
    fake.script(Stream(events=[{"type": "response.created", "response": {**final, "status": "in_progress", "output": []}},
                               {"type": "response.completed", "response": final}]))
    response = post_chat(proxy_url, {"model": TRANSLATED, "messages": MESSAGES}, stream=stream)
    if stream:
        chunks, error = stream_outcome(response)
        assert error is None
    else:
        assert completion_of(response)["choices"][0]["message"]["content"] == "Fine."
    still_serving(proxy_url, fake)


# ---------------------------------------------------------------- clients that go away


def slow_answer_events():
    """Reasoning, then content, each in many small deltas."""
    return stream_events(build_response(None, [reasoning_item(["r" * 120]), message_item("c" * 120)]), text_chunk=2)


@pytest.mark.parametrize("phase", ["reasoning_content", "content"])
def test_streaming_client_gone_mid_answer_closes_the_upstream_stream(proxy_url, fake, phase):
    fake.script(Stream(events=slow_answer_events(), delay=0.02))
    with http.stream("POST", proxy_url + "/v1/chat/completions", timeout=30,
                      json={"model": TRANSLATED, "messages": MESSAGES, "stream": True}) as response:
        for line in response.iter_lines():
            if f'"{phase}"' in line:
                break
        else:
            pytest.fail(f"no {phase} before the end")
    fake.wait_for_disconnect(timeout=3)
    still_serving(proxy_url, fake)


@pytest.mark.parametrize("leave_after", [0.3, 2.0], ids=["during-reasoning", "during-content"])
def test_waiting_client_gone_mid_answer_closes_the_upstream_stream(proxy_url, fake, leave_after):
    """A non-streaming client sees nothing until the end; when it leaves, the upstream stream is closed too."""
    events = slow_answer_events()  # about 4 s: reasoning for the first half, content for the second
    fake.script(Stream(events=events, delay=0.03))
    with pytest.raises(httpx.ReadTimeout):
        ask(proxy_url, False, timeout=leave_after)
    fake.wait_for_disconnect(timeout=3)
    assert fake.streamed_bytes < sum(len(sse_bytes(event)) for event in events)
    still_serving(proxy_url, fake)


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads the kernel's socket queues from /proc")
def test_slow_reader_throttles_the_upstream_instead_of_filling_memory(proxy_url, fake):
    """A client that stops reading holds the upstream back (bounded buffers all the way), one that reads slowly
    lets it advance only as fast as it reads, and in the end it gets everything.

    What the proxy holds is what the upstream sent, less what the client read and what the kernel queues on
    the two connections (its buffers grow with use, up to limits that differ from machine to machine).
    """
    client_buffer = 1 << 18
    piece = "x" * 65536
    # More than the kernel can queue (the client's fixed receive buffer, which it doubles, the proxy's send buffer
    # to the client, and the send and receive buffers of the upstream connection), with room for the proxy's own.
    kernel = client_buffer * 2 + 2 * tcp_buffer_maximum("wmem") + tcp_buffer_maximum("rmem")
    pieces = (kernel + (16 << 20)) // len(piece)
    events = [{"type": "response.created", "response": {"id": "resp_big", "status": "in_progress", "output": []}}]
    events += [{"type": "response.output_text.delta", "item_id": "msg_big", "output_index": 0, "content_index": 0,
                "delta": piece} for _ in range(pieces)]
    events.append({"type": "response.completed", "response": {"id": "resp_big", "status": "completed", "output": []}})
    fake.script(Stream(events=events))
    total = len(sse_bytes(events[1])) * pieces
    proxy_limit = 8 << 20  # a few upstream reads in flight between the two connections

    with socket.socket() as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, client_buffer)
        conn.settimeout(30)
        conn.connect(address(proxy_url))
        ports = conn.getsockname()[1], httpx.URL(fake.base_url).port

        def held_by_proxy() -> int:
            return fake.streamed_bytes - len(received) - kernel_queued(*ports)

        body = json.dumps({"model": TRANSLATED, "messages": MESSAGES, "stream": True}).encode()
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: p\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        received = bytearray(conn.recv(4096))
        wait_until(lambda: fake.streamed_bytes > 0, 5, "the upstream to start streaming")
        time.sleep(1.0)  # the client reads nothing: every buffer on the way fills, then the upstream must wait
        stalled = fake.streamed_bytes
        time.sleep(0.5)
        assert fake.streamed_bytes == stalled, "the upstream kept sending to a client that reads nothing"
        assert stalled < total and held_by_proxy() < proxy_limit, (stalled, held_by_proxy(), total)
        steps_after_release = 10
        while steps_after_release:  # now a slow reader, about 2.5 MB/s: the upstream may only advance as fast
            received += conn.recv(131072)
            time.sleep(0.05)
            assert held_by_proxy() < proxy_limit, (held_by_proxy(), total)
            steps_after_release -= fake.streamed_bytes > stalled
        assert len(received) < total / 2, "the upstream was released only after most of the answer was read"
        deadline = time.monotonic() + 60
        while chunk := conn.recv(1 << 20):
            received += chunk
            assert time.monotonic() < deadline
    text = dechunk(bytes(received).partition(b"\r\n\r\n")[2]).decode()
    payloads = sse_payloads(text)
    assert payloads[-1] == "[DONE]"
    content = "".join(choice["delta"].get("content") or "" for payload in payloads[:-1]
                      for choice in json.loads(payload)["choices"])
    assert len(content) == len(piece) * pieces
    still_serving(proxy_url, fake)


# ---------------------------------------------------------------- bad requests


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@BOTH
def test_huge_body_is_413_before_the_upstream_is_asked(make_proxy, fake, stream, chunked):
    body = json.dumps({"model": TRANSLATED, "messages": [{"role": "user", "content": "x" * 200_000}],
                       "stream": stream}).encode()
    content = iter([body[i:i + 8192] for i in range(0, len(body), 8192)]) if chunked else body
    with make_proxy(server={"max_body_bytes": 100_000}) as url:
        response = http.post(url + "/v1/chat/completions", content=content, timeout=30,
                              headers={"content-type": "application/json"})
        assert check_error(response, 413)["code"] == "request_too_large"
        assert fake.requests == []
        still_serving(url, fake)


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe{}", b'{"model": "o3-pro", "messages": [}',
                                 b'{"model": "o3-pro", "messages": []} trailing', b'{"model": NaN}',
                                 b"\xef\xbb\xbf{\"model\": \"o3-pro\"}", b'"just a string"', b"null",
                                 b'{"model": "o3-pro", "messages": [{"role": "user", "content": "\\ud800"}]}'])
def test_malformed_json_is_400(proxy_url, fake, raw):
    response = http.post(proxy_url + "/v1/chat/completions", content=raw, timeout=30,
                          headers={"content-type": "application/json"})
    check_error(response, 400)
    assert fake.requests == []
    still_serving(proxy_url, fake)


TEN_MB = "x" * (10 * 1024 * 1024)
WRONG_SHAPES = {
    "model": [None, 42, ["o3-pro"], {"id": "o3-pro"}, ""],
    "messages": [None, "hi", {"role": "user"}, [], ["hi"], [None], TEN_MB],
    "messages[0].role": ["wizard", 5, None],
    "messages[0].content": [5, {"text": "hi"}, True],
    "messages[0].content[0]": ["hi", 5, None],
    "messages[0].content[0].type": ["video", None, 5],
    "messages[0].content[0].text": [5, None, ["a"]],
    "messages[0].content[0].image_url": [5, None, ["u"]],
    "tools": ["all", {"type": "function"}, 5],
    "tools[0]": ["f", 5],
    "tools[0].type": ["retrieval", 5],
    "tools[0].function": [None, "f", 5],
    "tools[0].function.name": [None, 5, ["f"]],
    "tools[0].function.parameters": ["{}", 5, ["p"]],
    "tools[0].function.strict": ["yes", 1],
    "tool_choice": ["sometimes", 5, {"type": "function"}, ["auto"]],
    "response_format": ["json", 5, {"type": "yaml"}],
    "max_tokens": [-1, 0, "100", 1.5, True],
    "max_completion_tokens": [-5, "lots"],
    "n": [0, -1, 99, "2", 1.0],
    "stop": [5, ["a", 5], ["a", "b", "c", "d", "e"]],
    "stream": ["yes", 1],
    "stream_options": ["usage", 5],
    "reasoning_effort": ["extreme", 5],
    "verbosity": ["loud", 5],
    "logprobs": ["yes"],
    "top_logprobs": [-1, 21, "5"],
    "metadata": [5, [], {"k": 1}],
    "user": [5, ["u"]],
    "service_tier": ["turbo", 5],
    "store": ["no"],
    "web_search_options": ["on", 5],
    "modalities": [["audio"]],
    "audio": [{"voice": "alloy"}],
}
CASES = [(field, value) for field, values in WRONG_SHAPES.items() for value in values]


def with_value(field, value):
    """A valid translated request with ``value`` placed at ``field``."""
    chat = {"model": TRANSLATED, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi"}, {"type": "image_url", "image_url": "https://img.example/a.png"}]}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}
    if field == "messages[0].content[0].image_url":
        chat["messages"][0]["content"][0] = {"type": "image_url", "image_url": value}
        return chat
    path = field.replace("]", "").replace("[", ".").split(".")
    target = chat
    for key in path[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = path[-1]
    target[int(last) if last.isdigit() else last] = value
    return chat


@pytest.mark.parametrize("field, value", CASES, ids=[f"{field}={str(value)[:20]}" for field, value in CASES])
def test_wrong_shape_of_any_field_is_400_naming_it(proxy_url, fake, field, value):
    response = post_chat(proxy_url, with_value(field, value))
    error = check_error(response, 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] and (field.startswith(error["param"]) or error["param"].startswith(field.split(".")[0])), \
        (field, error)
    assert fake.requests == []
    still_serving(proxy_url, fake)


@BOTH
def test_ten_megabyte_message_is_served(proxy_url, fake, stream):
    fake.script(Respond(output=[message_item(ANSWER)]))
    response = post_chat(proxy_url, {"model": TRANSLATED, "messages": [{"role": "user", "content": TEN_MB}]},
                         stream=stream)
    answered(response, stream)
    assert len(fake.requests_to("/responses")[0].json["input"][0]["content"]) == len(TEN_MB)
    still_serving(proxy_url, fake)


def test_numeric_upstream_error_code_reaches_the_client_as_a_string(proxy_url, fake):
    """Some gateways send numeric codes; a translated answer carries OpenAI's shape (pass-through relays bytes)."""
    fake.script(Reply(status=400, json={"error": {"message": "Bad thing.", "type": "invalid_request_error", "code": 1234}}))
    assert check_error(ask(proxy_url, False), 400)["code"] == "1234"
    still_serving(proxy_url, fake)



class _RequestLines(logging.Handler):
    """Collects the proxy's request lines (one per answered request) during a test."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(dict(getattr(record, "fields", {})))


@pytest.fixture(autouse=True)
def outcomes_are_logged(fake):
    """Every fault's outcome reaches the request log: a line per answer, and every failure explained.

    A failed answer names the proxy's error code, or the upstream status it relayed; a stream that
    failed after its 200 names its error code too.
    """
    collector = _RequestLines()
    access = logging.getLogger("proxy.access")
    old_level = access.level
    access.setLevel(logging.INFO)
    access.addHandler(collector)
    try:
        yield
        wait_until(lambda: collector.lines, 5, "a request line")
        time.sleep(0.2)  # lines of answers that end after the test body (a client that left) land too
    finally:
        access.removeHandler(collector)
        access.setLevel(old_level)
    for line in collector.lines:
        assert isinstance(line.get("status"), int), line
        if line["status"] >= 400:
            assert line.get("error") or line.get("upstream_status"), f"an unexplained failure: {line}"
