"""Non-streamed chat requests for Responses-only models, end to end through the real server."""

from __future__ import annotations

import httpx
import openai
import pytest

import realdata
from conftest import CLIENT_KEY, UPSTREAM_KEY
from fake_upstream import (
    Reply,
    Respond,
    error_body,
    function_call_item,
    message_item,
    reasoning_item,
    url_citation,
    web_search_call_item,
)
from spec_check import check_chat_completion, check_create_response, check_error_body


def sent_upstream(fake):
    (request,) = fake.requests_to("/responses")
    check_create_response(request.json)
    return request


def raw_completion(proxy_url, body, headers=None):
    response = httpx.post(f"{proxy_url}/v1/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {CLIENT_KEY}", **(headers or {})})
    return response


def test_plain_answer_with_reasoning_and_usage(client, fake, proxy_url):
    fake.script(Respond(output=[reasoning_item(["Thinking about greetings."]), message_item("Hello there!")]))
    completion = client.chat.completions.create(
        model="o3-pro", messages=[{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}],
        max_completion_tokens=2000, reasoning_effort="high")
    message = completion.choices[0].message
    assert message.content == "Hello there!"
    assert message.model_extra["reasoning_content"] == "Thinking about greetings."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model.startswith("o3-pro")
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion.usage.completion_tokens_details.reasoning_tokens is not None

    request = sent_upstream(fake)
    assert request.path == "/v1/responses"
    assert request.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert request.json["instructions"] == "Be kind."
    assert request.json["input"] == [{"role": "user", "content": "Hi"}]
    assert request.json["max_output_tokens"] == 2000
    assert request.json["reasoning"] == {"effort": "high", "summary": "auto"}
    assert request.json["store"] is False
    assert "stream" not in request.json


def test_body_validates_against_the_spec_and_leaks_no_key(proxy_url, fake):
    fake.script(Respond(output=[message_item("ok")]))
    response = raw_completion(proxy_url, {"model": "o3-pro", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200
    check_chat_completion(response.json())
    assert response.headers["x-proxy-mode"] == "translated"
    assert UPSTREAM_KEY not in response.text and UPSTREAM_KEY not in str(response.headers)


def test_tool_call_round_trip(client, fake):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}},
                                                              "required": ["city"]}}}]
    fake.script(Respond(output=[reasoning_item(["Need the weather."]),
                                function_call_item("get_weather", {"city": "Paris"}, call_id="call_abc")]))
    first = client.chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "Weather?"}],
                                           tools=tools, tool_choice="auto")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.id == "call_abc" and call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"Paris"}'
    outbound = sent_upstream(fake).json
    assert outbound["tools"][0] == {"type": "function", "name": "get_weather", "description": "Weather for a city.",
                                    "parameters": tools[0]["function"]["parameters"], "strict": False}
    assert outbound["tool_choice"] == "auto"

    fake.reset()
    fake.script(Respond(output=[message_item("It is sunny in Paris.")]))
    second = client.chat.completions.create(model="o3-pro", tools=tools, messages=[
        {"role": "user", "content": "Weather?"},
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ])
    assert second.choices[0].message.content == "It is sunny in Paris."
    items = sent_upstream(fake).json["input"]
    assert items[1]["type"] == "reasoning" and items[1]["encrypted_content"]  # the first step's thinking, kept
    assert items[2:] == [
        {"type": "function_call", "call_id": "call_abc", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "call_abc", "output": "sunny, 21C"},
    ]


def test_web_search_citations(client, fake):
    text = "Paris is the capital of France."
    fake.script(Respond(output=[web_search_call_item("capital of France"), message_item(
        text, annotations=[url_citation("https://en.wikipedia.org/wiki/Paris", "Paris", 0, 5)])]))
    completion = client.chat.completions.create(
        model="o3-pro", messages=[{"role": "user", "content": "Capital of France?"}],
        web_search_options={"search_context_size": "low"})
    (annotation,) = completion.choices[0].message.annotations
    assert annotation.type == "url_citation"
    assert annotation.url_citation.url == "https://en.wikipedia.org/wiki/Paris"
    assert (annotation.url_citation.start_index, annotation.url_citation.end_index) == (0, 5)
    assert sent_upstream(fake).json["tools"] == [{"type": "web_search", "search_context_size": "low"}]


def test_refusal(client, fake):
    fake.script(Respond(output=[message_item(refusal="I can't help with that.")]))
    message = client.chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "x"}]).choices[0].message
    assert message.refusal == "I can't help with that." and message.content is None


def test_incomplete_answer_keeps_partial_content(client, fake):
    fake.script(Respond(output=[message_item("The beginning of")], status="incomplete",
                        incomplete_details={"reason": "max_output_tokens"}))
    completion = client.chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "x"}],
                                                max_tokens=20)
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "The beginning of"
    assert completion.usage.completion_tokens > 0


def test_failed_generation_is_an_error_with_the_upstream_message(client, fake):
    fake.script(Respond(status="failed", error={"code": "server_error", "message": "The model crashed."}))
    with pytest.raises(openai.InternalServerError) as error:
        client.chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "x"}])
    assert error.value.status_code == 500
    assert error.value.body["message"] == "The model crashed."


@pytest.mark.parametrize("status, exception", [
    (400, openai.BadRequestError), (401, openai.AuthenticationError), (404, openai.NotFoundError),
    (429, openai.RateLimitError),
])
def test_upstream_errors_keep_their_status_and_body(client, fake, status, exception):
    fake.script(*[Reply(status=status, json=error_body("Upstream says no.", param="model", code="nope"))] * 3)
    with pytest.raises(exception) as error:
        client.chat.completions.create(model="o3-pro", messages=[{"role": "user", "content": "x"}])
    assert error.value.status_code == status
    assert error.value.body == {"message": "Upstream says no.", "type": "invalid_request_error", "param": "model",
                                "code": "nope"}


def test_upstream_error_that_is_not_json(proxy_url, fake):
    fake.script(*[Reply(status=503, body=b"<html>Service Unavailable</html>", content_type="text/html")] * 3)
    response = raw_completion(proxy_url, {"model": "o3-pro", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 503
    check_error_body(response.json())
    assert "Service Unavailable" in response.json()["error"]["message"]


def test_200_with_a_body_that_is_not_json_is_a_502(proxy_url, fake):
    fake.script(Reply(status=200, body=b"definitely not json", content_type="text/plain"))
    response = raw_completion(proxy_url, {"model": "o3-pro", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 502
    check_error_body(response.json())


def test_dropped_and_adjusted_parameters_are_reported(proxy_url, fake):
    fake.script(Respond(output=[message_item("ok")]))
    response = raw_completion(proxy_url, {"model": "o3-pro", "messages": [{"role": "user", "content": "x"}],
                                          "temperature": 0.3, "keep_alive": "5m", "max_tokens": 4})
    assert response.status_code == 200
    assert response.headers["x-proxy-dropped-params"] == "temperature, keep_alive"
    assert response.headers["x-proxy-adjusted-params"] == "max_tokens=4->16"
    outbound = sent_upstream(fake).json
    assert "temperature" not in outbound and "keep_alive" not in outbound
    assert outbound["max_output_tokens"] == 16


@pytest.mark.parametrize("path", [
    "/chat/completions", "//chat/completions", "/v1/v1/chat/completions", "/v1/chat/completions/chat/completions",
    "/v1/responses/chat/completions", "/api/v1/chat/completions", "/v1/chat/completions/", "/chat/completions/",
])
def test_chat_endpoint_on_any_path_ending_in_chat_completions(proxy_url, fake, path):
    fake.script(Respond(output=[message_item("ok")]))
    response = httpx.post(proxy_url + path, json={"model": "o3-pro", "messages": [{"role": "user", "content": "x"}]},
                          timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "chat.completion"
    assert response.json()["choices"][0]["message"]["content"] == "ok"
    assert sent_upstream(fake).path == "/v1/responses"


def test_client_key_is_forwarded_when_the_proxy_has_none(make_proxy, fake):
    with make_proxy(upstream={"api_key": None}) as url:
        fake.script(Respond(output=[message_item("ok")]))
        response = httpx.post(url + "/v1/chat/completions", timeout=30, headers={"authorization": "Bearer sk-user"},
                              json={"model": "o3-pro", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200
    assert sent_upstream(fake).headers["authorization"] == "Bearer sk-user"


def test_translate_all_models(make_proxy, fake):
    with make_proxy(translate={"all_models": True}) as url:
        fake.script(Respond(output=[message_item("via responses")]))
        response = httpx.post(url + "/v1/chat/completions", timeout=30,
                              json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})
    assert response.json()["choices"][0]["message"]["content"] == "via responses"
    assert fake.requests_to("/chat/completions") == []


BODIES = [r for r in realdata.recordings(api="responses", kind="body") if r.body.get("object") == "response"]


@pytest.mark.parametrize("recording", BODIES, ids=[r.name for r in BODIES])
def test_recorded_bodies_through_the_server(proxy_url, fake, recording):
    """Real Responses bodies, served by the upstream, come out as valid chat completions with all they hold."""
    fake.script(Reply(json=recording.body))
    response = raw_completion(proxy_url, {"model": "o3-pro", "messages": [{"role": "user", "content": "x"}]})
    body = recording.body
    if body.get("status") == "failed":
        assert response.status_code >= 400
        return
    assert response.status_code == 200, response.text
    completion = response.json()
    check_chat_completion(completion)
    message = completion["choices"][0]["message"]
    texts = [part["text"] for item in body["output"] if item["type"] == "message"
             for part in item["content"] if part["type"] == "output_text"]
    assert (message["content"] or "") == "".join(texts)
    calls = [item for item in body["output"] if item["type"] == "function_call"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls", [])] == \
        [(c["call_id"], c["name"], c["arguments"]) for c in calls]
    summaries = [part["text"] for item in body["output"] if item["type"] == "reasoning"
                 for part in item.get("summary", [])]
    assert message.get("reasoning_content", "") == "\n\n".join(summaries)
    citations = [a for item in body["output"] if item["type"] == "message" for part in item["content"]
                 for a in part.get("annotations", []) if a["type"] == "url_citation"]
    assert len(message.get("annotations", [])) == len(citations)
    if body.get("usage"):
        assert completion["usage"]["prompt_tokens"] == body["usage"]["input_tokens"]
        assert completion["usage"]["completion_tokens"] == body["usage"]["output_tokens"]
        assert completion["usage"]["completion_tokens_details"]["reasoning_tokens"] == \
            body["usage"]["output_tokens_details"]["reasoning_tokens"]


def test_rate_limit_keeps_the_retry_hint(proxy_url, fake):
    fake.script(*[Reply(status=429, json=error_body("Slow down.", type="rate_limit_error"),
                        headers={"retry-after": "0"})] * 3)
    response = raw_completion(proxy_url, {"model": "o3-pro", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "0"
    check_error_body(response.json())
