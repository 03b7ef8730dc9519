"""The fault matrix: every way the upstream or the client can fail, through the real server.

Each case checks three things: the client gets a well-formed, truthful outcome
(the right status, or an error frame and no ``[DONE]`` for a stream), no
upstream request is left running, and the proxy goes on serving.
"""

from __future__ import annotations

import httpx
import pytest

from fake_upstream import Hang, Stream, build_response, message_item, reasoning_item
from wire import MESSAGES, check_error, completion_of, post_chat, stream_outcome, wait_until

TRANSLATED, PASSED = "o3-pro", "gpt-4o"


def still_serving(url, fake):
    """No upstream request is left open, and a plain request right after succeeds."""
    wait_until(lambda: fake.active == 0, 5, "the upstream to have no request in progress")
    fake.reset()
    answer = completion_of(post_chat(url, {"model": TRANSLATED, "messages": MESSAGES}))
    assert answer["choices"][0]["message"]["content"] == "Echo: Hi"


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
    response = httpx.post(proxy_url + "/v1/chat/completions", content=nested_body(model, levels), timeout=30,
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
