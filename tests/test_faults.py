"""The fault matrix: every way the upstream or the client can fail, through the real server.

Each case checks three things: the client gets a well-formed, truthful outcome
(the right status, or an error frame and no ``[DONE]`` for a stream), no
upstream request is left running, and the proxy goes on serving.
"""

from __future__ import annotations

import httpx
import pytest

from fake_upstream import Hang
from wire import MESSAGES, completion_of, post_chat, wait_until

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
