"""The conversations the Responses clients hold through the proxy, scripted on either kind of upstream.

Each scenario of test_responses_clients.py takes an `Upstream`: the same answer scripted on the fake Responses
upstream (which the proxy passes `/v1/responses` through to) or on the fake chat-only upstream (which the
proxy translates to), and what the client sent back (tool results) read from either. The client-side
assertions are the same for both: a client must not see which kind of upstream served it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fake_chat_upstream import Chat, FakeChatUpstream, ToolCall
from fake_upstream import FakeUpstream, Respond, Stream, build_response, custom_tool_call_item, \
    function_call_item, message_item, reasoning_item, stream_events

MODEL = "deepseek-reasoner"
QUESTION = "Will it be sunny in Paris tomorrow?"
REASONING = "**Reading the forecast**\n\nMétéo-France expects a high-pressure ridge."
ANSWER = "Oui : grand soleil à Paris ☀️, 24 °C l’après-midi."
INPUT_TOKENS, OUTPUT_TOKENS, CACHED_TOKENS, REASONING_TOKENS = 1234, 345, 1024, 256

TOOL_NAME = "get_weather"
TOOL_DESCRIPTION = "Current weather in a city."
TOOL_PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}
TOOL_QUESTION = "Compare the weather in Paris and Tokyo."
CALLS = {"call_paris": "Paris", "call_tokyo": "Tokyo"}
TEMPERATURES = {"Paris": 24, "Tokyo": 18}
FINAL_ANSWER = "Paris is warmer: 24 °C against 18 °C in Tokyo."
FAILURE = "The model failed while generating the answer."


def weather(city: str) -> dict[str, Any]:
    """What every client's weather tool returns."""
    return {"city": city, "temp_c": TEMPERATURES[city]}


def client_data() -> dict[str, Any]:
    """What the scripts of other runtimes (Node, the Agents SDK's venv) need to hold the same conversations."""
    return {"model": MODEL, "question": QUESTION, "tool_question": TOOL_QUESTION, "temperatures": TEMPERATURES,
            "tool": {"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "parameters": TOOL_PARAMETERS}}


@dataclass
class Call:
    """A tool call the model makes: a function call (`arguments`) or a custom tool call (`input`)."""
    call_id: str
    name: str
    arguments: dict | None = None
    input: str | None = None


class ResponsesUpstream:
    """The fake Responses upstream, answering what the Responses API answers."""

    kind = "responses"

    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake

    def script_answer(self, text: str = ANSWER, reasoning: str = REASONING) -> None:
        usage = {"input_tokens": INPUT_TOKENS, "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
                 "output_tokens": OUTPUT_TOKENS, "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS}}
        self.fake.script(Respond(output=[reasoning_item([reasoning] if reasoning else []), message_item(text)],
                                 usage=usage))

    def script_calls(self, *calls: Call) -> None:
        self.fake.script(Respond(output=[
            function_call_item(c.name, c.arguments, call_id=c.call_id) if c.input is None
            else custom_tool_call_item(c.name, c.input, call_id=c.call_id) for c in calls]))

    def script_failure(self) -> str:
        """A stream that fails after its first piece of text (an `error` event, then `response.failed`), as the
        API fails; returns that piece."""
        events = stream_events(build_response({"model": MODEL}, [message_item(ANSWER)]))
        first_text = next(n for n, e in enumerate(events) if e["type"] == "response.output_text.delta")
        error = {"type": "server_error", "code": "server_error", "message": FAILURE, "param": None}
        failed = build_response({"model": MODEL}, [], status="failed", error={"code": "server_error",
                                                                               "message": FAILURE})
        self.fake.script(Stream(events=events[:first_text + 1] + [
            {"type": "error", "code": "server_error", "message": FAILURE, "param": None, "error": error},
            {"type": "response.failed", "response": failed}]))
        return events[first_text]["delta"]

    def requests(self) -> list[dict]:
        return [r.json for r in self.fake.requests_to("/responses")]

    def tools_offered(self, request: dict) -> dict[str, dict]:
        """Name -> tool of a request's tools (functions with their parameters, custom tools with their format)."""
        return {tool["name"]: tool for tool in request.get("tools") or [] if "name" in tool}

    def tool_results(self, request: dict) -> dict[str, str]:
        """call id -> the output the client sent back for it."""
        return {item["call_id"]: item["output"] for item in _items(request.get("input"))
                if item.get("type") in ("function_call_output", "custom_tool_call_output")}


class ChatUpstream:
    """The fake chat-only upstream, answering the chat request the proxy makes of a Responses request.

    A custom tool is expected to reach it as a function of one string argument, `input`.
    """

    kind = "chat"

    def __init__(self, fake: FakeChatUpstream) -> None:
        self.fake = fake

    def script_answer(self, text: str = ANSWER, reasoning: str = REASONING) -> None:
        self.fake.script(Chat(content=text, reasoning=reasoning, usage={
            "prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS, "cached_tokens": CACHED_TOKENS,
            "reasoning_tokens": REASONING_TOKENS}))

    def script_calls(self, *calls: Call) -> None:
        self.fake.script(Chat(interleave=True, tool_calls=[
            ToolCall(c.name, c.arguments if c.input is None else {"input": c.input}, id=c.call_id) for c in calls]))

    def script_failure(self) -> str:
        """A stream that fails after its first piece of text with an error chunk; returns that piece."""
        chat = Chat(content=ANSWER, error_after=2, error_message=FAILURE)
        self.fake.script(chat)
        return ANSWER[:chat.chunk]

    def requests(self) -> list[dict]:
        return [r.json for r in self.fake.requests_to("/chat/completions")]

    def tools_offered(self, request: dict) -> dict[str, dict]:
        return {tool["function"]["name"]: tool["function"] for tool in request.get("tools") or []}

    def tool_results(self, request: dict) -> dict[str, str]:
        return {m["tool_call_id"]: m["content"] for m in request["messages"] if m.get("role") == "tool"}


Upstream = ResponsesUpstream | ChatUpstream


def _items(value: Any) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def assert_weather_round_trip(upstream: Upstream) -> None:
    """The client offered the weather tool, then sent each call's result back under the call's id."""
    first, second = upstream.requests()[-2:]
    offered = upstream.tools_offered(first)
    assert offered[TOOL_NAME]["parameters"]["properties"]["city"]["type"] == "string"
    results = upstream.tool_results(second)
    assert set(results) == set(CALLS)
    for call_id, city in CALLS.items():
        assert json.loads(results[call_id]) == weather(city)


def weather_calls() -> list[Call]:
    return [Call(call_id, TOOL_NAME, {"city": city}) for call_id, city in CALLS.items()]
