"""LangChain's ChatOpenAI (langchain-openai) against the proxy: invoke, stream, bind_tools.

ChatOpenAI would send Responses-only models to /v1/responses itself; apps that reach them through a
Chat Completions endpoint (as through this proxy) set ``use_responses_api=False``, as here.
ChatOpenAI reads only the official Chat Completions fields, so the reasoning summary is not part of
what it returns: the tests check that it does not leak into the content either.
"""

from __future__ import annotations

import json
from functools import reduce
from operator import add

import openai
import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI

from conftest import CLIENT_KEY

from .scenarios import (
    ANSWER,
    CACHED_TOKENS,
    CALLS,
    COMPLETION_TOKENS,
    FAILURE,
    FINAL_ANSWER,
    MODEL,
    PROMPT_TOKENS,
    QUESTION,
    REASONING_TOKENS,
    TOOL,
    TOOL_NAME,
    TOOL_QUESTION,
    TOTAL_TOKENS,
    assert_answer_request,
    assert_tool_round_trip,
    script_answer,
    script_failure,
    script_silent_answer,
    script_tool_round_trip,
    weather,
)


def chat_model(url: str) -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, base_url=url + "/v1", api_key=CLIENT_KEY, use_responses_api=False,
                      stream_usage=True, max_retries=0, timeout=30)


@pytest.fixture
def chat(proxy_url, fake) -> ChatOpenAI:
    return chat_model(proxy_url)


def assert_usage(usage_metadata) -> None:
    assert usage_metadata["input_tokens"] == PROMPT_TOKENS
    assert usage_metadata["output_tokens"] == COMPLETION_TOKENS
    assert usage_metadata["total_tokens"] == TOTAL_TOKENS
    assert usage_metadata["input_token_details"]["cache_read"] == CACHED_TOKENS
    assert usage_metadata["output_token_details"]["reasoning"] == REASONING_TOKENS


def test_invoke(chat, fake):
    script_answer(fake)
    message = chat.invoke(QUESTION)
    assert message.content == ANSWER
    assert message.response_metadata["finish_reason"] == "stop"
    assert_usage(message.usage_metadata)
    assert_answer_request(fake, stream=False)


def test_stream(chat, fake):
    script_answer(fake)
    chunks = list(chat.stream(QUESTION))
    merged = reduce(add, chunks)
    assert merged.content == ANSWER
    assert merged.response_metadata["finish_reason"] == "stop"
    assert_usage(merged.usage_metadata)
    assert_answer_request(fake, stream=True)


def test_keep_alive_comments_during_silence_are_ignored(quiet_proxy_url, fake):
    script_silent_answer(fake)
    merged = reduce(add, chat_model(quiet_proxy_url).stream(QUESTION))
    assert merged.content == ANSWER
    assert_usage(merged.usage_metadata)


async def test_astream(chat, fake):
    script_answer(fake)
    chunks = [chunk async for chunk in chat.astream(QUESTION)]
    assert reduce(add, chunks).content == ANSWER


def test_bind_tools_call_then_result(chat, fake):
    script_tool_round_trip(fake)
    with_tools = chat.bind_tools([TOOL])
    messages = [HumanMessage(TOOL_QUESTION)]
    call_message = reduce(add, with_tools.stream(messages))
    assert isinstance(call_message, AIMessageChunk)
    assert [(call["id"], call["name"], call["args"]) for call in call_message.tool_calls] == \
        [(call_id, TOOL_NAME, {"city": city}) for call_id, city in CALLS.items()]
    assert call_message.response_metadata["finish_reason"] == "tool_calls"
    messages += [call_message, *(ToolMessage(json.dumps(weather(call["args"]["city"])), tool_call_id=call["id"])
                                 for call in call_message.tool_calls)]
    answer = with_tools.invoke(messages)
    assert answer.content == FINAL_ANSWER
    assert answer.tool_calls == []
    assert_tool_round_trip(fake)


def test_failure_mid_stream_raises(chat, fake):
    partial = script_failure(fake)
    received = []
    with pytest.raises(openai.APIError, match=FAILURE):
        for chunk in chat.stream(QUESTION):
            received.append(chunk)
    assert "".join(chunk.content for chunk in received) == partial
    assert all("finish_reason" not in chunk.response_metadata for chunk in received)
