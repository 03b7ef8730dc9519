"""The official openai Node SDK (npm `openai`) against the proxy, through tests/clients/node/openai_sdk.mjs."""

from __future__ import annotations

from fake_upstream import Respond, message_item, reasoning_item

from .scenarios import (
    ANSWER,
    CACHED_TOKENS,
    CALLS,
    COMPLETION_TOKENS,
    FAILURE,
    FINAL_ANSWER,
    PROMPT_TOKENS,
    REASONING,
    REASONING_TEXT,
    REASONING_TOKENS,
    TOOL_NAME,
    TOTAL_TOKENS,
    assert_answer_request,
    assert_tool_round_trip,
    script_answer,
    script_failure,
    script_silent_answer,
    script_tool_round_trip,
    weather,
)

SCRIPT = "openai_sdk.mjs"


def assert_usage(usage: dict) -> None:
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == \
        (PROMPT_TOKENS, COMPLETION_TOKENS, TOTAL_TOKENS)
    assert usage["prompt_tokens_details"]["cached_tokens"] == CACHED_TOKENS
    assert usage["completion_tokens_details"]["reasoning_tokens"] == REASONING_TOKENS


def test_plain_answer(run_node, fake):
    script_answer(fake)
    result = run_node(SCRIPT, "plain")
    assert (result["content"], result["reasoning"], result["finish_reason"]) == (ANSWER, REASONING_TEXT, "stop")
    assert_usage(result["usage"])
    assert_answer_request(fake, stream=False)


def test_streamed_answer_with_reasoning_and_usage(run_node, fake):
    script_answer(fake)
    result = run_node(SCRIPT, "stream")
    assert (result["reasoning"], result["content"]) == (REASONING_TEXT, ANSWER)
    assert result["mixed"] == 0
    assert result["roles"] == ["assistant"]
    assert result["finish_reasons"] == ["stop"]
    assert_usage(result["usage"])
    assert_answer_request(fake, stream=True)


def test_keep_alive_comments_during_silence_are_ignored(run_node, fake, quiet_proxy_url):
    script_silent_answer(fake)
    result = run_node(SCRIPT, "stream", url=quiet_proxy_url)
    assert (result["reasoning"], result["content"], result["finish_reasons"]) == (REASONING_TEXT, ANSWER, ["stop"])
    assert_usage(result["usage"])


def test_stream_helper(run_node, fake):
    script_answer(fake)
    result = run_node(SCRIPT, "stream-helper")
    assert result["deltas"] == result["content"] == ANSWER
    assert result["finish_reason"] == "stop"
    assert_usage(result["usage"])


def test_run_tools_streams_the_calls_and_sends_the_results(run_node, fake):
    script_tool_round_trip(fake)
    result = run_node(SCRIPT, "tools")
    assert result["content"] == FINAL_ANSWER
    assert result["calls"] == [{"id": call_id, "name": TOOL_NAME, "arguments": {"city": city}}
                               for call_id, city in CALLS.items()]
    assert result["results"] == [{"tool_call_id": call_id, "content": weather(city)} for call_id, city in CALLS.items()]
    assert_tool_round_trip(fake)
    assert all(request.json["stream"] is True for request in fake.requests_to("/responses"))


def test_failure_mid_stream_is_an_error(run_node, fake):
    partial = script_failure(fake, times=2)
    result = run_node(SCRIPT, "error")
    assert result["stream"]["name"] == "APIError" and FAILURE in result["stream"]["message"]
    assert result["seen"] == {"content": partial, "reasoning": REASONING_TEXT, "finish_reasons": []}
    assert result["helper"] is not None and FAILURE in result["helper"]["message"]


def test_parse_zod_response_format(run_node, fake):
    forecast = {"city": "Paris", "sky": "ensoleillé", "temp_c": 24}
    fake.script(Respond(output=[reasoning_item(REASONING), message_item(
        '{"city":"Paris","sky":"ensoleillé","temp_c":24}')]))
    result = run_node(SCRIPT, "parse")
    assert result["parsed"] == forecast
    (request,) = fake.requests_to("/responses")
    text_format = request.json["text"]["format"]
    assert (text_format["type"], text_format["name"], text_format["strict"]) == ("json_schema", "Forecast", True)
    assert set(text_format["schema"]["properties"]) == set(forecast)
