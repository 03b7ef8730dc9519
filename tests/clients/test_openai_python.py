"""The official openai Python SDK (sync and async) against the proxy: create, stream helpers, parse."""

from __future__ import annotations

import json

import openai
import pytest
from pydantic import BaseModel

from conftest import sdk
from fake_upstream import Respond, message_item, reasoning_item

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
    REASONING,
    REASONING_TEXT,
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
    tool_calls_answer,
    weather,
)

MESSAGES = [{"role": "user", "content": QUESTION}]


def assert_usage(usage) -> None:
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == \
        (PROMPT_TOKENS, COMPLETION_TOKENS, TOTAL_TOKENS)
    assert usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS
    assert usage.completion_tokens_details.reasoning_tokens == REASONING_TOKENS


def tool_results(tool_calls) -> list[dict]:
    return [{"role": "tool", "tool_call_id": call.id,
             "content": json.dumps(weather(json.loads(call.function.arguments)["city"]))} for call in tool_calls]


class Streamed:
    """What a chat app keeps from ``create(stream=True)`` chunks."""

    def __init__(self) -> None:
        self.content, self.reasoning, self.finish_reasons = "", "", []
        self.calls: dict[int, dict] = {}
        self.usage = None
        self.mixed = 0  # chunks carrying both reasoning and content

    def add(self, chunk) -> None:
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            reasoning = (delta.model_extra or {}).get("reasoning_content")
            self.mixed += bool(reasoning and delta.content)
            self.content += delta.content or ""
            self.reasoning += reasoning or ""
            for call in delta.tool_calls or ():
                slot = self.calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = slot["id"] or call.id
                slot["name"] += call.function.name or ""
                slot["arguments"] += call.function.arguments or ""
            if choice.finish_reason:
                self.finish_reasons.append(choice.finish_reason)


# ---------------------------------------------------------------- plain answer


def test_plain_answer(client, fake):
    script_answer(fake)
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    choice = completion.choices[0]
    assert choice.message.content == ANSWER
    assert choice.message.model_extra["reasoning_content"] == REASONING_TEXT
    assert choice.finish_reason == "stop"
    assert_usage(completion.usage)
    assert_answer_request(fake, stream=False)


async def test_plain_answer_async(async_client, fake):
    script_answer(fake)
    completion = await async_client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.choices[0].message.content == ANSWER
    assert completion.choices[0].message.model_extra["reasoning_content"] == REASONING_TEXT
    assert_usage(completion.usage)


# ---------------------------------------------------------------- streamed answer with reasoning and usage


def test_streamed_answer_with_reasoning_and_usage(client, fake):
    script_answer(fake)
    streamed = Streamed()
    for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True,
                                                stream_options={"include_usage": True}):
        streamed.add(chunk)
    assert (streamed.reasoning, streamed.content) == (REASONING_TEXT, ANSWER)
    assert streamed.mixed == 0
    assert streamed.finish_reasons == ["stop"]
    assert_usage(streamed.usage)
    assert_answer_request(fake, stream=True)


def test_keep_alive_comments_during_silence_are_ignored(quiet_proxy_url, fake):
    script_silent_answer(fake)
    streamed = Streamed()
    with sdk(quiet_proxy_url) as client:
        for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True,
                                                    stream_options={"include_usage": True}):
            streamed.add(chunk)
    assert (streamed.reasoning, streamed.content, streamed.finish_reasons) == (REASONING_TEXT, ANSWER, ["stop"])
    assert_usage(streamed.usage)


async def test_streamed_answer_async(async_client, fake):
    script_answer(fake)
    streamed = Streamed()
    async for chunk in await async_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True,
                                                                  stream_options={"include_usage": True}):
        streamed.add(chunk)
    assert (streamed.reasoning, streamed.content, streamed.finish_reasons) == (REASONING_TEXT, ANSWER, ["stop"])
    assert_usage(streamed.usage)


def test_stream_helper_events_and_final_completion(client, fake):
    script_answer(fake)
    with client.chat.completions.stream(model=MODEL, messages=MESSAGES,
                                        stream_options={"include_usage": True}) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    deltas = "".join(event.delta for event in events if event.type == "content.delta")
    (done,) = [event for event in events if event.type == "content.done"]
    assert deltas == done.content == ANSWER
    assert final.choices[0].message.content == ANSWER
    assert final.choices[0].finish_reason == "stop"
    assert_usage(final.usage)
    chunks = [event.chunk for event in events if event.type == "chunk"]
    assert "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                   for c in chunks if c.choices) == REASONING_TEXT


async def test_stream_helper_async(async_client, fake):
    script_answer(fake)
    async with async_client.chat.completions.stream(model=MODEL, messages=MESSAGES) as stream:
        deltas = "".join([event.delta async for event in stream if event.type == "content.delta"])
        final = await stream.get_final_completion()
    assert deltas == final.choices[0].message.content == ANSWER


# ---------------------------------------------------------------- streamed tool call, then the tool result


def test_streamed_tool_calls_then_tool_results(client, fake):
    script_tool_round_trip(fake)
    messages = [{"role": "user", "content": TOOL_QUESTION}]
    with client.chat.completions.stream(model=MODEL, messages=messages, tools=[TOOL]) as stream:
        done = [event for event in stream if event.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion().choices[0]
    assert final.finish_reason == "tool_calls"
    assert [(event.index, event.name, json.loads(event.arguments)) for event in done] == \
        [(index, TOOL_NAME, {"city": city}) for index, city in enumerate(CALLS.values())]
    calls = final.message.tool_calls
    assert [call.id for call in calls] == list(CALLS)
    messages += [final.message.model_dump(exclude_none=True), *tool_results(calls)]
    answer = client.chat.completions.create(model=MODEL, messages=messages, tools=[TOOL])
    assert answer.choices[0].message.content == FINAL_ANSWER
    assert_tool_round_trip(fake)


async def test_streamed_tool_calls_then_tool_results_async(async_client, fake):
    script_tool_round_trip(fake)
    messages = [{"role": "user", "content": TOOL_QUESTION}]
    streamed = Streamed()
    async for chunk in await async_client.chat.completions.create(model=MODEL, messages=messages, tools=[TOOL],
                                                                  stream=True):
        streamed.add(chunk)
    assert streamed.finish_reasons == ["tool_calls"]
    calls = [streamed.calls[index] for index in sorted(streamed.calls)]
    assert [(call["id"], call["name"]) for call in calls] == [(call_id, TOOL_NAME) for call_id in CALLS]
    messages.append({"role": "assistant", "content": streamed.content or None, "tool_calls": [
        {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
        for call in calls]})
    messages += [{"role": "tool", "tool_call_id": call["id"],
                  "content": json.dumps(weather(json.loads(call["arguments"])["city"]))} for call in calls]
    second = Streamed()
    async for chunk in await async_client.chat.completions.create(model=MODEL, messages=messages, tools=[TOOL],
                                                                  stream=True):
        second.add(chunk)
    assert (second.content, second.finish_reasons) == (FINAL_ANSWER, ["stop"])
    assert_tool_round_trip(fake)


# ---------------------------------------------------------------- upstream failure mid-stream


def test_failure_mid_stream_raises(client, fake):
    partial = script_failure(fake)
    streamed = Streamed()
    with pytest.raises(openai.APIError, match=FAILURE):
        for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            streamed.add(chunk)
    assert (streamed.reasoning, streamed.content) == (REASONING_TEXT, partial)
    assert streamed.finish_reasons == []


async def test_failure_mid_stream_raises_async(async_client, fake):
    script_failure(fake, times=2)
    with pytest.raises(openai.APIError, match=FAILURE):
        async for _ in await async_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            pass
    with pytest.raises(openai.APIError, match=FAILURE):
        async with async_client.chat.completions.stream(model=MODEL, messages=MESSAGES) as stream:
            async for _ in stream:
                pass


def test_stream_helper_failure_gives_no_final_completion(client, fake):
    script_failure(fake)
    with pytest.raises(openai.APIError, match=FAILURE):
        with client.chat.completions.stream(model=MODEL, messages=MESSAGES) as stream:
            stream.until_done()


# ---------------------------------------------------------------- structured output


class Forecast(BaseModel):
    city: str
    sky: str
    temp_c: int


class GetWeather(BaseModel):
    """Current weather in a city."""
    city: str


FORECAST = Forecast(city="Paris", sky="ensoleillé", temp_c=24)


def assert_json_schema_format(fake) -> None:
    (request,) = fake.requests_to("/responses")
    text_format = request.json["text"]["format"]
    assert text_format["type"] == "json_schema" and text_format["name"] == "Forecast"
    assert text_format["strict"] is True
    assert text_format["schema"]["required"] == ["city", "sky", "temp_c"]
    assert text_format["schema"]["additionalProperties"] is False


def test_parse_pydantic_response_format(client, fake):
    fake.script(Respond(output=[reasoning_item(REASONING), message_item(FORECAST.model_dump_json())]))
    completion = client.chat.completions.parse(model=MODEL, messages=MESSAGES, response_format=Forecast)
    message = completion.choices[0].message
    assert message.parsed == FORECAST
    assert_json_schema_format(fake)


async def test_parse_pydantic_response_format_async(async_client, fake):
    fake.script(Respond(output=[message_item(FORECAST.model_dump_json())]))
    completion = await async_client.chat.completions.parse(model=MODEL, messages=MESSAGES, response_format=Forecast)
    assert completion.choices[0].message.parsed == FORECAST
    assert_json_schema_format(fake)


def test_streamed_parse_pydantic_response_format(client, fake):
    fake.script(Respond(output=[reasoning_item(REASONING), message_item(FORECAST.model_dump_json())]))
    with client.chat.completions.stream(model=MODEL, messages=MESSAGES, response_format=Forecast) as stream:
        partial = [event.parsed for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == FORECAST
    assert partial[-1] == FORECAST.model_dump()
    assert_json_schema_format(fake)


def test_parse_strict_pydantic_tool(client, fake):
    fake.script(tool_calls_answer())
    completion = client.chat.completions.parse(model=MODEL, messages=[{"role": "user", "content": TOOL_QUESTION}],
                                               tools=[openai.pydantic_function_tool(GetWeather, name=TOOL_NAME)])
    calls = completion.choices[0].message.tool_calls
    assert [call.function.parsed_arguments for call in calls] == [GetWeather(city=city) for city in CALLS.values()]
    (request,) = fake.requests_to("/responses")
    assert request.json["tools"][0]["strict"] is True
