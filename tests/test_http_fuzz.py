"""HTTP-level fuzzing of POST /v1/chat/completions on the real server.

Bodies are JSON of random shapes, mangled chat requests for translated and passed-through models,
random bytes, huge strings and deep nesting. The fake upstream only ever answers 200 or 4xx, so a
5xx can only come from the proxy itself: the proxy must answer every bad input with a 4xx in
OpenAI's error shape (or serve it), and keep running. A few hundred cases in CI; with
``PROXY_FUZZ_LONG=1`` as many as the profile says (20000 by default).
"""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spec_check import check_error_body
from strategies import chat_requests, json_values
from wire import MESSAGES, completion_of, http, post_chat, sse_payloads, wait_until

TRANSLATED = ["o3-pro", "gpt-5-pro", "o3-pro-high", "openai/o3-pro", "codex-mini-latest", "o4-mini-deep-research"]
PASSED = ["gpt-4o", "gpt-4o-mini", "o4-mini", "text-embedding-3-small", "brand-new-model"]
models = st.sampled_from(TRANSLATED + PASSED) | st.text(max_size=30)


def nested_text(depth: int, model: str) -> bytes:
    return (f'{{"model": "{model}", "messages": [{{"role": "user", "content": "hi"}}], "x": '
            + "[" * depth + "]" * depth + "}").encode()


bodies = st.one_of(
    st.builds(lambda chat, model: json.dumps({**chat, "model": model}).encode()
              if isinstance(chat, dict) else json.dumps(chat).encode(), chat_requests, models),
    st.builds(lambda value, model: json.dumps({"model": model, "messages": MESSAGES, "junk": value}).encode(),
              json_values, models),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.sampled_from(["model", "messages", "stream", "tools", "n", "stop", "max_tokens", "x"]),
                    json_values, max_size=5).map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
    st.builds(nested_text, st.integers(min_value=1, max_value=1200), st.sampled_from(TRANSLATED + PASSED)),
    st.builds(lambda size, model, stream: json.dumps({"model": model, "stream": stream, "messages": [
        {"role": "user", "content": "x" * size}]}).encode(),
        st.sampled_from([0, 1 << 16, 1 << 20, 10 << 20]), st.sampled_from(TRANSLATED + PASSED), st.booleans()),
)
headers = st.fixed_dictionaries({}, optional={
    "content-type": st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]),
    "x-proxy-reasoning-output": st.sampled_from(["think", "none", "reasoning_content", "sideways", ""]),
    "accept-encoding": st.sampled_from(["gzip", "identity", "br, zstd"]),
})


def check_answer(response: httpx.Response) -> None:
    """Whatever the input: no 5xx of the proxy's own, and a well-formed answer or error."""
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        body = response.json()
        check_error_body(body)
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        return
    if response.headers["content-type"].startswith("text/event-stream"):
        payloads = sse_payloads(response.text)
        assert payloads, "an empty stream"
        assert payloads[-1] == "[DONE]" or "error" in json.loads(payloads[-1])
    else:
        assert isinstance(response.json(), dict)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(body=bodies, extra=headers)
def test_no_input_makes_the_proxy_fail(proxy_url, fake, body, extra):
    fake.reset()
    check_answer(http.post(proxy_url + "/v1/chat/completions", content=body, headers=extra, timeout=60))
    assert not any(500 <= status for status in fake.statuses), "the fake upstream failed: fix the fake"


def test_the_proxy_is_healthy_after_the_fuzzing(proxy_url, fake):
    assert http.get(proxy_url + "/healthz").json() == {"status": "ok"}
    wait_until(lambda: fake.active == 0, 5, "the upstream to have no request in progress")
    answer = completion_of(post_chat(proxy_url, {"model": "o3-pro", "messages": MESSAGES}))
    assert answer["choices"][0]["message"]["content"] == "Echo: Hi"
