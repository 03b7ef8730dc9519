"""A value or an optional parameter the model refuses: the request is sent again as the model takes it, the change
reported, and remembered for the model (translate.adapt). The upstream's refusals are OpenAI's own wording."""

from __future__ import annotations

import fakeredis
import httpx
import pytest

from conftest import proxy_config, sdk
from fake_upstream import Reply, error_body
from proxy.errors import UpstreamStatusError
from proxy.memory import LearnedStore
from proxy.translate import adapted, nearest_value, refused_param, refused_value
from servers import running_proxy

MESSAGES = [{"role": "user", "content": "Prove it."}]
# OpenAI's answer to gpt-5-pro with reasoning.effort "medium".
EFFORT_REFUSED = error_body("Unsupported value: 'reasoning.effort' does not support 'medium' with this model. "
                            "Supported values are: 'high'.", param="reasoning.effort", code="unsupported_value")
VERBOSITY_REFUSED = error_body("Unsupported parameter: 'text.verbosity' is not supported with this model.",
                               param="text.verbosity", code="unsupported_parameter")
TOOLS_REFUSED = error_body("Unsupported parameter: 'tools' is not supported with this model.", param="tools",
                           code="unsupported_parameter")


def sent(fake):
    return [r.json for r in fake.requests_to("/responses")]


def post(url, body):
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=30)


def test_a_refused_effort_is_sent_again_as_the_nearest_supported_one_and_remembered(make_proxy, fake):
    fake.script(Reply(400, json=EFFORT_REFUSED))
    body = {"model": "gpt-5-pro", "messages": MESSAGES, "reasoning_effort": "medium"}
    with make_proxy() as url:
        first = post(url, body)
        assert first.status_code == 200, first.text
        assert first.json()["choices"][0]["message"]["content"] == "Echo: Prove it."
        assert first.headers["x-proxy-adjusted-params"] == "reasoning_effort=medium->high"
        assert [b["reasoning"]["effort"] for b in sent(fake)] == ["medium", "high"]

        fake.reset()  # learned: right the first time, and still reported
        second = sdk(url).chat.completions.with_raw_response.create(model="gpt-5-pro", messages=MESSAGES,
                                                                     reasoning_effort="medium", stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in second.parse()) == "Echo: Prove it."
        assert second.headers["x-proxy-adjusted-params"] == "reasoning_effort=medium->high"
        assert [b["reasoning"]["effort"] for b in sent(fake)] == ["high"]

        fake.reset()  # a value the model takes is left alone
        assert post(url, {**body, "reasoning_effort": "high"}).headers.get("x-proxy-adjusted-params") is None
        assert [b["reasoning"]["effort"] for b in sent(fake)] == ["high"]


def test_a_refused_optional_parameter_is_dropped_reported_and_remembered(make_proxy, fake):
    fake.script(Reply(400, json=VERBOSITY_REFUSED))
    body = {"model": "o3-pro", "messages": MESSAGES, "verbosity": "low", "temperature": 0.2}
    with make_proxy() as url:
        first = post(url, body)
        assert first.status_code == 200, first.text
        assert first.headers["x-proxy-dropped-params"] == "temperature, verbosity"
        assert [b.get("text", {}).get("verbosity") for b in sent(fake)] == ["low", None]

        fake.reset()
        second = post(url, body)
        assert second.status_code == 200 and second.headers["x-proxy-dropped-params"] == "temperature, verbosity"
        assert [b.get("text", {}).get("verbosity") for b in sent(fake)] == [None]


def test_what_defines_the_request_is_never_dropped(make_proxy, fake):
    fake.script(Reply(400, json=TOOLS_REFUSED))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with make_proxy() as url:
        answer = post(url, {"model": "o3-pro", "messages": MESSAGES, "tools": tools})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "tools"
    assert len(sent(fake)) == 1


def test_adapt_off_relays_the_refusal(make_proxy, fake):
    fake.script(Reply(400, json=EFFORT_REFUSED))
    with make_proxy(translate={"adapt": False}) as url:
        answer = post(url, {"model": "gpt-5-pro", "messages": MESSAGES, "reasoning_effort": "medium"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "reasoning_effort" and error["code"] == "unsupported_value"
    assert "x-proxy-adjusted-params" not in answer.headers
    assert len(sent(fake)) == 1


def test_a_refusal_that_names_no_supported_value_reaches_the_client(make_proxy, fake):
    fake.script(Reply(400, json=error_body("Unsupported value: 'reasoning.effort' does not support 'medium' with "
                                           "this model.", param="reasoning.effort", code="unsupported_value")))
    with make_proxy() as url:
        answer = post(url, {"model": "gpt-5-pro", "messages": MESSAGES, "reasoning_effort": "medium"})
    assert answer.status_code == 400 and len(sent(fake)) == 1


def test_two_processes_share_what_was_learned_through_redis(fake):
    """With Redis configured, what one worker or replica learned, the other knows: right the first time."""
    shared = fakeredis.FakeServer()

    def use_redis(app):
        app.state.proxy.models.share(LearnedStore(fakeredis.FakeAsyncRedis(server=shared), ttl=60))

    body = {"model": "gpt-5-pro", "messages": MESSAGES, "reasoning_effort": "medium"}
    config = proxy_config(fake.base_url)
    with running_proxy(config, use_redis) as first, running_proxy(config, use_redis) as second:
        fake.script(Reply(400, json=EFFORT_REFUSED))
        assert post(first, body).headers["x-proxy-adjusted-params"] == "reasoning_effort=medium->high"
        fake.reset()
        answer = post(second, body)
    assert answer.status_code == 200 and answer.headers["x-proxy-adjusted-params"] == "reasoning_effort=medium->high"
    assert [b["reasoning"]["effort"] for b in sent(fake)] == ["high"]


def test_without_redis_each_process_learns_for_itself(fake):
    body = {"model": "gpt-5-pro", "messages": MESSAGES, "reasoning_effort": "medium"}
    config = proxy_config(fake.base_url)
    with running_proxy(config) as first, running_proxy(config) as second:
        fake.script(Reply(400, json=EFFORT_REFUSED))
        assert post(first, body).status_code == 200
        fake.reset()
        fake.script(Reply(400, json=EFFORT_REFUSED))
        assert post(second, body).status_code == 200
    assert [b["reasoning"]["effort"] for b in sent(fake)] == ["medium", "high"]


# ---------------------------------------------------------------- the core's part


def refusal(body: dict) -> UpstreamStatusError:
    return UpstreamStatusError.of_answer(400, body, b"", {})


@pytest.mark.core
@pytest.mark.parametrize(("param", "value", "supported", "nearest"), [
    ("reasoning.effort", "medium", ("high",), "high"),
    ("reasoning.effort", "minimal", ("low", "medium", "high"), "low"),  # the next higher
    ("reasoning.effort", "xhigh", ("low", "medium"), "medium"),  # else the nearest below
    ("text.verbosity", "low", ("medium", "high"), "medium"),
    ("reasoning.summary", "concise", ("detailed", "auto"), "detailed"),  # unordered: the first named
])
def test_nearest_value(param, value, supported, nearest):
    assert nearest_value(param, value, supported) == nearest


@pytest.mark.core
def test_refused_value_reads_openais_wording():
    body = {"model": "gpt-5-pro", "reasoning": {"effort": "medium"}}
    found = refused_value(refusal(EFFORT_REFUSED), body)
    assert found == ("reasoning.effort", "medium", ("high",))
    listed = error_body("Unsupported value: 'text.verbosity' does not support 'low' with this model. Supported "
                        "values are: 'medium', and 'high'.", param="text.verbosity", code="unsupported_value")
    assert refused_value(refusal(listed), {"text": {"verbosity": "low"}}).supported == ("medium", "high")
    # Not the value sent, or a value of what defines the request: not adapted.
    assert refused_value(refusal(EFFORT_REFUSED), {"reasoning": {"effort": "low"}}) is None
    fmt = error_body("Unsupported value: 'text.format.type' does not support 'json_schema' with this model. "
                     "Supported values are: 'text'.", param="text.format.type", code="unsupported_value")
    assert refused_value(refusal(fmt), {"text": {"format": {"type": "json_schema"}}}) is None


@pytest.mark.core
def test_refused_param_leaves_what_defines_the_request():
    assert refused_param(refusal(VERBOSITY_REFUSED), {"text": {"verbosity": "low"}}) == "text.verbosity"
    assert refused_param(refusal(VERBOSITY_REFUSED), {"text": {"format": {"type": "text"}}}) is None  # not sent
    assert refused_param(refusal(TOOLS_REFUSED), {"tools": []}) is None
    unnamed = error_body("Unsupported parameter: 'top_logprobs' is not supported with this model.")
    assert refused_param(refusal(unnamed), {"top_logprobs": 2}) == "top_logprobs"
    fmt = error_body("Unsupported parameter: 'text.format' is not supported with this model.", param="text.format")
    assert refused_param(refusal(fmt), {"text": {"format": {"type": "json_object"}}}) is None


@pytest.mark.core
def test_adapted_applies_what_was_learned():
    body = {"model": "m", "reasoning": {"effort": "low", "summary": "auto"}, "text": {"verbosity": "low"}}
    changed, changes = adapted(body, {"reasoning.effort": ("high",), "text.verbosity": None, "top_p": None})
    assert changed == {"model": "m", "reasoning": {"effort": "high", "summary": "auto"}}
    assert [(c.param, c.was, c.now) for c in changes] == [("reasoning.effort", "low", "high"),
                                                         ("text.verbosity", "low", None)]
    assert body["text"] == {"verbosity": "low"}  # a copy
