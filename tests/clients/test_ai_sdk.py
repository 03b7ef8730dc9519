"""The Vercel AI SDK with @ai-sdk/openai-compatible against the proxy, through tests/clients/node/ai_sdk.mjs.

The provider turns `reasoning_content` deltas into reasoning parts and `content` into text parts;
these tests check that each lands on its own side, in order, as Cherry Studio shows them.
"""

from __future__ import annotations

from .scenarios import (
    ANSWER,
    CACHED_TOKENS,
    CALLS,
    COMPLETION_TOKENS,
    FAILURE,
    FINAL_ANSWER,
    PROMPT_TOKENS,
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

SCRIPT = "ai_sdk.mjs"
TOOL_CALLS = [{"id": call_id, "name": TOOL_NAME, "input": {"city": city}} for call_id, city in CALLS.items()]
TOOL_RESULTS = [{"id": call_id, "output": weather(city)} for call_id, city in CALLS.items()]


def assert_usage(usage: dict) -> None:
    assert (usage["inputTokens"], usage["outputTokens"], usage["totalTokens"]) == \
        (PROMPT_TOKENS, COMPLETION_TOKENS, TOTAL_TOKENS)
    assert usage["inputTokenDetails"]["cacheReadTokens"] == CACHED_TOKENS
    assert usage["outputTokenDetails"]["reasoningTokens"] == REASONING_TOKENS


def assert_tool_steps(steps: list[dict]) -> None:
    first, second = steps
    assert first["finishReason"] == "tool-calls"
    assert first["toolCalls"] == TOOL_CALLS and first["toolResults"] == TOOL_RESULTS
    assert first["text"] == ""
    assert (second["finishReason"], second["text"], second["toolCalls"]) == ("stop", FINAL_ANSWER, [])


def test_generate_text(run_node, fake):
    script_answer(fake)
    result = run_node(SCRIPT, "generate")
    assert (result["text"], result["reasoning"]) == (ANSWER, REASONING_TEXT)
    assert result["contentTypes"] == ["reasoning", "text"]
    assert result["finishReason"] == "stop"
    assert_usage(result["usage"])
    assert_answer_request(fake, stream=False)


def test_stream_text_keeps_reasoning_and_text_apart(run_node, fake):
    script_answer(fake)
    result = run_node(SCRIPT, "stream")
    assert result["runs"] == [{"kind": "reasoning", "text": REASONING_TEXT}, {"kind": "text", "text": ANSWER}]
    assert (result["errors"], result["finishReason"]) == ([], "stop")
    assert_usage(result["usage"])
    assert_answer_request(fake, stream=True)


def test_keep_alive_comments_during_silence_are_ignored(run_node, fake, quiet_proxy_url):
    script_silent_answer(fake)
    result = run_node(SCRIPT, "stream", url=quiet_proxy_url)
    assert result["runs"] == [{"kind": "reasoning", "text": REASONING_TEXT}, {"kind": "text", "text": ANSWER}]
    assert (result["errors"], result["finishReason"]) == ([], "stop")
    assert_usage(result["usage"])


def test_generate_text_with_a_tool(run_node, fake):
    script_tool_round_trip(fake)
    result = run_node(SCRIPT, "generate-tools")
    assert result["text"] == FINAL_ANSWER
    assert_tool_steps(result["steps"])
    assert result["steps"][0]["reasoning"] == "Two cities, two lookups."
    assert_tool_round_trip(fake)


def test_stream_text_with_a_tool(run_node, fake):
    script_tool_round_trip(fake)
    result = run_node(SCRIPT, "stream-tools")
    assert (result["toolCalls"], result["toolResults"]) == (TOOL_CALLS, TOOL_RESULTS)
    assert result["runs"] == [{"kind": "reasoning", "text": "Two cities, two lookups."},
                              {"kind": "text", "text": FINAL_ANSWER}]
    assert (result["errors"], result["finishReason"]) == ([], "stop")
    assert_tool_steps(result["steps"])
    assert_tool_round_trip(fake)


def test_failure_mid_stream_is_an_error(run_node, fake):
    partial = script_failure(fake)
    result = run_node(SCRIPT, "error")
    assert result["finishReason"] == "error"
    assert [error["message"] for error in result["errors"]] == [FAILURE]
    assert [error["message"] for error in result["reported"]] == [FAILURE]
    assert result["runs"] == [{"kind": "reasoning", "text": REASONING_TEXT}, {"kind": "text", "text": partial}]
