"""The fault matrix: every way the upstream or the client can fail, through the real server.

Each case checks three things: the client gets a well-formed, truthful outcome
(the right status, or an error frame and no ``[DONE]`` for a stream), no
upstream request is left running, and the proxy goes on serving.
"""

from __future__ import annotations

import httpx
import pytest

from fake_upstream import Hang
from wire import MESSAGES, check_error, completion_of, post_chat, wait_until

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
