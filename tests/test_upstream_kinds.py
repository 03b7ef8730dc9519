"""Upstreams beside OpenAI: any key scheme, aggregators' wordings for a Responses-only model, OpenRouter."""

from __future__ import annotations

import json

import httpx
import pytest

from conftest import UPSTREAM_KEY, sdk
from fake_upstream import Reply, build_response, message_item, sse_bytes, stream_events
from proxy import logs
from proxy.config import Config
from proxy.errors import UpstreamUnreachable
from proxy.translate import says_responses_only
from proxy.upstream import Upstream

QUERY_SECRET = "query-secret-91c2e4"
HEADER_SECRET = "header-secret-7f3a0b"


def said(payload: dict, model: str = "my-reasoner") -> bool:
    return says_responses_only(payload, json.dumps(payload), {"model": model, "messages": [
        {"role": "user", "content": "hi"}]})


# The wordings gateways answer a chat request for a Responses-only model with, from their source code and issue
# trackers. new-api and one-api relay the upstream's error object when they can parse it (new-api adds the
# request id), and wrap it otherwise; only wordings that say the Responses API is the way are recognised: for the
# others the docs say to list the model in translate.models.
GATEWAY_WORDINGS = [
    # one-api: the upstream's (OpenAI's) error object relayed with its status
    ({"error": {"message": "This model is only supported in v1/responses and not in v1/chat/completions.",
                "type": "invalid_request_error", "param": "model", "code": None}}, True),
    # new-api: the same, with its request id appended and the status made 500 by a channel error
    ({"error": {"message": "This model is only supported in v1/responses and not in v1/chat/completions. "
                           "(request id: 20251006123456789abcdefgh)", "type": "upstream_error", "param": "",
                "code": None}}, True),
    # LiteLLM, in front of OpenAI and of Azure
    ({"error": {"message": "litellm.NotFoundError: OpenAIException - This model is only supported in v1/responses "
                           "and not in v1/chat/completions.", "type": None, "param": None, "code": "404"}}, True),
    ({"error": {"message": "litellm.BadRequestError: AzureException BadRequestError - The chatCompletion operation "
                           "does not work with the specified model, my-reasoner. Please choose different model and "
                           "try again.", "type": None, "param": None, "code": "400"}}, True),
    # Azure OpenAI itself
    ({"error": {"code": "OperationNotSupported", "message": "The chatCompletion operation does not work with the "
                "specified model, my-reasoner. Please choose different model and try again. You can learn more "
                "about which models can be used with each operation here: "
                "https://go.microsoft.com/fwlink/?linkid=2197993."}}, True),
    # sub2api, whose OpenAI accounts serve the Responses API only
    ({"error": {"type": "invalid_request_error", "message": "Unsupported legacy protocol: /v1/chat/completions is "
                "not supported. Please use /v1/responses."}}, True),
    # one-api's wrapper for a body it could not parse, and new-api's for an upstream error: they do not say
    ({"error": {"message": "bad response status code 404", "type": "upstream_error", "param": "404",
                "code": "bad_response_status_code"}}, False),
    ({"error": {"message": "openai_error", "type": "bad_response_status_code", "param": "",
                "code": "bad_response_status_code"}}, False),
    # new-api and one-api without a channel for the model, and Copilot's gateway: about the model, not the API
    ({"error": {"message": "No available channel for model my-reasoner under group default (distributor)",
                "type": "new_api_error", "param": "", "code": "model_not_found"}}, False),
    ({"error": {"message": "The requested model is not supported.", "code": "model_not_supported", "param": "model",
                "type": "invalid_request_error"}}, False),
]


@pytest.mark.parametrize("payload, expected", GATEWAY_WORDINGS)
def test_gateway_wordings_are_recognised_where_they_say_so(payload, expected):
    assert said(payload) is expected


@pytest.mark.parametrize("status", [400, 500])
def test_a_gateways_wrapped_error_sends_the_model_to_the_responses_api(make_proxy, fake, status):
    fake.script(Reply(status, GATEWAY_WORDINGS[1][0]))
    with make_proxy(upstream={"max_attempts": 1}) as url:
        answer = sdk(url).chat.completions.create(model="my-reasoner", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Echo: hi"
    assert [r.path for r in fake.requests] == ["/v1/chat/completions", "/v1/responses"]


def test_the_key_goes_in_the_configured_header_with_the_configured_scheme(make_proxy, fake):
    with make_proxy(upstream={"auth_header": "x-api-key"}) as url:
        sdk(url).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with make_proxy(upstream={"auth_header": "Authorization", "auth_scheme": "Token"}) as url:
        sdk(url).chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "hi"}])
    first, second = fake.requests
    assert first.headers["x-api-key"] == UPSTREAM_KEY and "authorization" not in first.headers
    assert second.headers["authorization"] == f"Token {UPSTREAM_KEY}"


def test_static_headers_and_a_query_parameter_go_with_every_request_and_are_never_shown(make_proxy, fake):
    upstream = {"headers": {"HTTP-Referer": "https://chat.example", "X-Title": "Example Chat",
                            "X-Gateway-Token": HEADER_SECRET}, "query": {"key": QUERY_SECRET}}
    with make_proxy(upstream=upstream) as url:
        sdk(url).chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "hi"}])
        httpx.get(f"{url}/v1/models?limit=2", headers={"authorization": "Bearer client-key"})
        described = httpx.get(url + "/").text
    for request in fake.requests:
        assert request.headers["http-referer"] == "https://chat.example" and request.headers["x-title"] == "Example Chat"
        assert request.headers["x-gateway-token"] == HEADER_SECRET and request.query["key"] == QUERY_SECRET
    assert fake.requests[1].query == {"key": QUERY_SECRET, "limit": "2"}
    assert HEADER_SECRET not in described and QUERY_SECRET not in described
    assert logs.redact(f"sent {HEADER_SECRET} and {QUERY_SECRET}") == "sent *** and ***"


async def test_an_error_never_shows_the_query_parameter():
    config = Config.model_validate({"upstream": {"base_url": "http://127.0.0.1:9/v1", "query": {"key": QUERY_SECRET},
                                                 "connect_timeout": 2}})
    upstream = Upstream(config.upstream)
    try:
        with pytest.raises(UpstreamUnreachable) as caught:
            await upstream.send("GET", "/models", upstream.headers(()))
    finally:
        await upstream.aclose()
    assert QUERY_SECRET not in json.dumps(caught.value.body())


def test_openrouters_provider_prefixed_names_are_translated_as_named(make_proxy, fake):
    with make_proxy() as url:
        answer = sdk(url).chat.completions.create(model="openai/o3-pro", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Echo: hi"
    assert [(r.path, r.json["model"]) for r in fake.requests] == [("/v1/responses", "openai/o3-pro")]


def openrouter_stream(text: str) -> bytes:
    """A Responses stream as OpenRouter sends it: keep-alive comments before and between the events."""
    events = stream_events(build_response({"model": "openai/o3-pro"}, [message_item(text)]))
    keepalive = b": OPENROUTER PROCESSING\n\n"
    return keepalive + keepalive + b"".join(sse_bytes(event) + keepalive for event in events)


@pytest.mark.parametrize("stream", [True, False])
def test_openrouters_keepalive_comments_are_skipped(make_proxy, fake, stream):
    fake.script(Reply(200, body=openrouter_stream("through OpenRouter"), content_type="text/event-stream"))
    with make_proxy(stream={"upstream_stream": True}) as url:
        client = sdk(url)
        if stream:
            chunks = client.chat.completions.create(model="openai/o3-pro", stream=True,
                                                    messages=[{"role": "user", "content": "hi"}])
            text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        else:
            text = client.chat.completions.create(model="openai/o3-pro",
                                                  messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
    assert text == "through OpenRouter"



@pytest.mark.parametrize("upstream, sent", [
    ({"auth_header": "x-api-key"}, lambda r: r.headers["x-api-key"]),
    ({"auth_scheme": "Token"}, lambda r: r.headers["authorization"].removeprefix("Token ")),
])
def test_a_key_refused_in_its_own_header_rests(make_proxy, fake, upstream, sent):
    fake.script(Reply(429, json={"error": {"message": "Rate limit reached", "type": "requests", "param": None,
                                           "code": "rate_limit_exceeded"}}))
    with make_proxy(upstream={**upstream, "api_key": "key-aaaa", "api_keys": ["key-bbbb"]}) as url:
        for _ in range(3):
            sdk(url).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    # refused, then the other key at once; the refused one rests while the other serves
    assert [sent(r) for r in fake.requests] == ["key-aaaa", "key-bbbb", "key-bbbb", "key-bbbb"]
