"""The conversations every client suite drives through the proxy, scripted once on the fake upstream.

Each client runs the same scenarios, so when two clients disagree the difference is in how they
parse the proxy's output, not in what they were sent. The texts carry multi-byte characters so
that deltas split inside a UTF-8 sequence on the wire would show up as mangled text.
"""

from __future__ import annotations

import json
from typing import Any

from fake_upstream import (
    FakeUpstream,
    Respond,
    Stream,
    build_response,
    function_call_item,
    message_item,
    reasoning_item,
    stream_events,
)
from proxy.translate import REASONING_PART_SEPARATOR

MODEL = "o3-pro"
QUESTION = "Will it be sunny in Paris tomorrow?"
REASONING = ["**Reading the forecast**\n\nMétéo-France expects a high-pressure ridge.",
             "**Answering briefly**\n\nGive the temperature and the sky."]
REASONING_TEXT = REASONING_PART_SEPARATOR.join(REASONING)
ANSWER = "Oui : grand soleil à Paris ☀️, 24 °C l’après-midi."

USAGE = {"input_tokens": 1234, "input_tokens_details": {"cached_tokens": 1024},
         "output_tokens": 345, "output_tokens_details": {"reasoning_tokens": 256}}
PROMPT_TOKENS, COMPLETION_TOKENS, TOTAL_TOKENS = 1234, 345, 1579
CACHED_TOKENS, REASONING_TOKENS = 1024, 256

TOOL_NAME = "get_weather"
TOOL_PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}
TOOL = {"type": "function", "function": {"name": TOOL_NAME, "description": "Current weather in a city.",
                                         "parameters": TOOL_PARAMETERS}}
TOOL_QUESTION = "Compare the weather in Paris and Tokyo."
CALLS = {"call_paris": "Paris", "call_tokyo": "Tokyo"}
TEMPERATURES = {"Paris": 24, "Tokyo": 18}
FINAL_ANSWER = "Paris is warmer: 24 °C against 18 °C in Tokyo."

# With the proxy's keep-alive interval (conftest.HEARTBEAT), several comments fall in this silence.
SILENCE = 0.4

FAILURE = "The model failed while generating the answer."


def weather(city: str) -> dict[str, Any]:
    """What every client's tool returns; the Node scripts return the same object."""
    return {"city": city, "temp_c": TEMPERATURES[city]}


def node_data() -> dict[str, Any]:
    """What the Node scripts need to hold the same conversations (their third argument)."""
    return {"model": MODEL, "question": QUESTION, "tool_question": TOOL_QUESTION, "tool": TOOL,
            "temperatures": TEMPERATURES}


def script_answer(fake: FakeUpstream) -> None:
    """Reasoning summary then the answer, with known usage numbers."""
    fake.script(Respond(output=[reasoning_item(REASONING), message_item(ANSWER)], usage=USAGE))


def script_silent_answer(fake: FakeUpstream) -> None:
    """The answer streamed after a silence long enough for the proxy to send keep-alive comments."""
    response = build_response({"model": MODEL, "reasoning": {"summary": "auto"}},
                              [reasoning_item(REASONING), message_item(ANSWER)], usage=USAGE)
    fake.script(Stream(events=stream_events(response), heartbeat_pause=SILENCE))


def tool_calls_answer() -> Respond:
    """Reasoning, then two parallel calls of the weather tool."""
    calls = [function_call_item(TOOL_NAME, {"city": city}, call_id=call_id) for call_id, city in CALLS.items()]
    return Respond(output=[reasoning_item(["Two cities, two lookups."]), *calls])


def script_tool_round_trip(fake: FakeUpstream) -> None:
    """First leg: the tool calls; second leg: the answer built from their results."""
    fake.script(tool_calls_answer(), Respond(output=[message_item(FINAL_ANSWER)]))


def failing_stream() -> tuple[list[dict[str, Any]], str]:
    """A stream that fails after the reasoning and the first piece of text; returns it and that text."""
    events = stream_events(build_response({"model": MODEL}, [reasoning_item(REASONING), message_item(ANSWER)]))
    first_text = next(i for i, e in enumerate(events) if e["type"] == "response.output_text.delta")
    head = events[:first_text + 1]
    failed = build_response({"model": MODEL}, [], status="failed",
                            error={"code": "server_error", "message": FAILURE})
    error = {"type": "server_error", "code": "server_error", "message": FAILURE, "param": None}
    tail = [{"type": "error", **{k: v for k, v in error.items() if k != "type"}, "error": error},
            {"type": "response.failed", "response": failed}]
    return head + tail, events[first_text]["delta"]


def script_failure(fake: FakeUpstream, times: int = 1) -> str:
    """Script ``times`` failing streams; returns the text a client sees before the failure."""
    events, partial = failing_stream()
    fake.script(*[Stream(events=events) for _ in range(times)])
    return partial


def assert_answer_request(fake: FakeUpstream, stream: bool) -> dict[str, Any]:
    """The one Responses request an answer scenario made; returns its body."""
    (request,) = fake.requests_to("/responses")
    assert request.json["model"] == MODEL
    assert request.json.get("stream", False) is stream
    assert request.json["reasoning"]["summary"] == "auto"
    return request.json


def assert_tool_round_trip(fake: FakeUpstream) -> None:
    """The client sent the tool, then sent back each call and its result under the call's id."""
    first, second = fake.requests_to("/responses")
    assert [tool["name"] for tool in first.json["tools"]] == [TOOL_NAME]
    assert first.json["tools"][0]["parameters"]["properties"] == TOOL_PARAMETERS["properties"]
    items = second.json["input"]
    calls = {item["call_id"]: item for item in items if item.get("type") == "function_call"}
    outputs = {item["call_id"]: item["output"] for item in items if item.get("type") == "function_call_output"}
    assert set(calls) == set(CALLS) == set(outputs)
    for call_id, city in CALLS.items():
        assert calls[call_id]["name"] == TOOL_NAME
        assert json.loads(calls[call_id]["arguments"]) == {"city": city}
        assert json.loads(outputs[call_id]) == weather(city)
    kinds = [item.get("type", item.get("role")) for item in items]
    assert kinds.index("function_call") < kinds.index("function_call_output")
