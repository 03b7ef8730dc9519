"""Clients that speak only the Responses API, through the proxy's `/v1/responses`.

openai-python (`responses.create`, streamed and not, `responses.stream()`, `responses.parse()`), openai-node
(`responses.stream`), the AI SDK's `openai.responses()` (`generateText`, `streamText`) and the OpenAI Agents SDK
running an agent with a function tool. Codex CLI has its own module (test_codex_cli.py).

Every scenario runs against each upstream of conftest.UPSTREAMS (see responses_upstreams.py): the fake
Responses upstream, which the proxy passes `/v1/responses` through to, and the fake chat-only upstream, which
the proxy serves `/v1/responses` through.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from conftest import CLIENT_KEY

from .conftest import CLIENTS, NODE_TIMEOUT
from .responses_upstreams import (
    ANSWER,
    CACHED_TOKENS,
    CALLS,
    FAILURE,
    FINAL_ANSWER,
    INPUT_TOKENS,
    MODEL,
    OUTPUT_TOKENS,
    QUESTION,
    REASONING,
    REASONING_TOKENS,
    TOOL_NAME,
    assert_weather_round_trip,
    client_data,
    weather,
    weather_calls,
)

AGENTS_PYTHON = CLIENTS.parent.parent / ".agents-venv" / "bin" / "python"


@pytest.fixture
def client(served, upstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=served[1] + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)


def assert_usage(usage) -> None:
    assert (usage.input_tokens, usage.output_tokens) == (INPUT_TOKENS, OUTPUT_TOKENS)
    assert usage.input_tokens_details.cached_tokens == CACHED_TOKENS
    assert usage.output_tokens_details.reasoning_tokens == REASONING_TOKENS


def summary_text(response) -> str:
    return "".join(part.text for item in response.output if item.type == "reasoning" for part in item.summary)


def assert_event_sequence(events) -> None:
    """Numbered from 0 without gaps, one terminal event at the end, every item added then done."""
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    added = [e.output_index for e in events if e.type == "response.output_item.added"]
    done = [e.output_index for e in events if e.type == "response.output_item.done"]
    assert added == done == sorted(added)


# ---------------------------------------------------------------- openai-python


def test_python_create(client, upstream):
    upstream.script_answer()
    response = client.responses.create(model=MODEL, input=QUESTION, reasoning={"summary": "auto"})
    assert (response.status, response.output_text, summary_text(response)) == ("completed", ANSWER, REASONING)
    assert response.id.startswith("resp_")
    assert_usage(response.usage)


def test_python_create_streamed(client, upstream):
    upstream.script_answer()
    events = list(client.responses.create(model=MODEL, input=QUESTION, reasoning={"summary": "auto"}, stream=True))
    assert_event_sequence(events)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    reasoning = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert (text, reasoning) == (ANSWER, REASONING)
    final = events[-1].response
    assert (final.output_text, summary_text(final)) == (ANSWER, REASONING)
    assert_usage(final.usage)


def test_python_stream_helper_and_its_final_response(client, upstream):
    upstream.script_answer()
    with client.responses.stream(model=MODEL, input=QUESTION, reasoning={"summary": "auto"}) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert_event_sequence(events)
    done = [e.text for e in events if e.type == "response.output_text.done"]
    assert done == [ANSWER] and final.output_text == ANSWER and summary_text(final) == REASONING
    assert_usage(final.usage)
    assert upstream.requests()[0]["stream"] is True


def test_python_failure_mid_stream_is_an_error_not_a_completion(client, upstream):
    partial = upstream.script_failure()
    events = []
    with pytest.raises(openai.APIError, match=FAILURE):
        for event in client.responses.create(model=MODEL, input=QUESTION, stream=True):
            events.append(event)
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == partial
    assert "response.completed" not in [e.type for e in events]


class Forecast(BaseModel):
    city: str
    sky: str
    temp_c: int


def test_python_parse_into_a_pydantic_model(client, upstream):
    forecast = Forecast(city="Paris", sky="ensoleillé", temp_c=24)
    upstream.script_answer(forecast.model_dump_json(), reasoning="")
    response = client.responses.parse(model=MODEL, input=QUESTION, text_format=Forecast)
    assert response.output_parsed == forecast
    (request,) = upstream.requests()
    fmt = request["text"]["format"] if upstream.kind == "responses" else request["response_format"]["json_schema"]
    assert (fmt["name"], fmt["strict"]) == ("Forecast", True)
    assert set(fmt["schema"]["properties"]) == set(Forecast.model_fields)


# ---------------------------------------------------------------- Node: openai-node and the AI SDK


class NodeClients:
    """One Node process for the module, running scenarios of node/responses.mjs one JSON line at a time."""

    def __init__(self, node: str) -> None:
        self.errors = tempfile.TemporaryFile("w+")  # a file, not a pipe: warnings must never block Node
        self.process = subprocess.Popen([node, str(CLIENTS / "node" / "responses.mjs"), json.dumps(client_data())],
                                        cwd=CLIENTS, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.errors, text=True)

    def run(self, url: str, scenario: str) -> dict[str, Any]:
        self.process.stdin.write(json.dumps({"baseURL": url + "/v1", "scenario": scenario}) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], NODE_TIMEOUT)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.process.kill()
            self.errors.seek(0)
            pytest.fail(f"responses.mjs {scenario} gave no answer:\n{self.errors.read()}")
        result = json.loads(line)
        assert "failure" not in result, result["failure"]
        return result

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.errors.close()


@pytest.fixture(scope="module")
def node_clients(node_bin) -> Iterator[NodeClients]:
    clients = NodeClients(node_bin)
    yield clients
    clients.close()


@pytest.fixture
def run_node(node_clients, served, upstream):
    return lambda scenario: node_clients.run(served[1], scenario)


def assert_node_usage(usage: dict) -> None:
    assert (usage["input_tokens"], usage["output_tokens"]) == (INPUT_TOKENS, OUTPUT_TOKENS)
    assert usage["input_tokens_details"]["cached_tokens"] == CACHED_TOKENS
    assert usage["output_tokens_details"]["reasoning_tokens"] == REASONING_TOKENS


def test_node_responses_stream(run_node, upstream):
    upstream.script_answer()
    result = run_node("openai-stream")
    assert (result["deltas"], result["reasoning"], result["status"]) == (ANSWER, REASONING, "completed")
    assert result["output_text"] == ANSWER and result["sequence"] == list(range(len(result["sequence"])))
    assert_node_usage(result["usage"])


def test_ai_sdk_generate_text(run_node, upstream):
    upstream.script_answer()
    result = run_node("ai-generate")
    assert (result["text"], result["reasoning"], result["finishReason"]) == (ANSWER, REASONING, "stop")
    assert (result["usage"]["inputTokens"], result["usage"]["outputTokens"]) == (INPUT_TOKENS, OUTPUT_TOKENS)
    assert upstream.requests()[0].get("stream") in (None, False)


def test_ai_sdk_stream_text_with_a_tool(run_node, upstream):
    upstream.script_calls(*weather_calls())
    upstream.script_answer(FINAL_ANSWER)
    result = run_node("ai-stream-tools")
    assert result["text"] == FINAL_ANSWER and result["finishReason"] == "stop"
    assert sorted((c["id"], c["input"]["city"]) for c in result["toolCalls"]) == sorted(CALLS.items())
    assert {r["id"]: r["output"] for r in result["toolResults"]} == {i: weather(c) for i, c in CALLS.items()}
    assert_weather_round_trip(upstream)


# ---------------------------------------------------------------- the OpenAI Agents SDK


@pytest.fixture(scope="module")
def agents_python() -> Path:
    if not AGENTS_PYTHON.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{AGENTS_PYTHON} is missing: .ci/run installs tests/clients/requirements-agents.lock there")
        pytest.skip("the OpenAI Agents SDK's venv .agents-venv is missing: python3 -m venv .agents-venv && "
                    ".agents-venv/bin/pip install -r tests/clients/requirements-agents.lock")
    return AGENTS_PYTHON


def test_agents_sdk_runs_an_agent_with_a_function_tool(agents_python, served, upstream):
    for _ in ("run", "run_streamed"):
        upstream.script_calls(*weather_calls())
        upstream.script_answer(FINAL_ANSWER)
    done = subprocess.run([str(agents_python), str(CLIENTS / "agents_client.py"), served[1] + "/v1",
                           json.dumps(client_data())], capture_output=True, text=True, timeout=NODE_TIMEOUT,
                          env={"PATH": os.environ["PATH"], "OPENAI_AGENTS_DISABLE_TRACING": "1"})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for run in ("run", "run_streamed"):
        assert result[run]["final_output"] == FINAL_ANSWER
        assert sorted((c["call_id"], json.loads(c["arguments"])["city"]) for c in result[run]["calls"]) == \
            sorted(CALLS.items())
        assert {o["call_id"]: o["output"] for o in result[run]["outputs"]} == \
            {i: json.dumps(weather(c)) for i, c in CALLS.items()}
    assert result["run_streamed"]["text_deltas"] == FINAL_ANSWER
    requests = upstream.requests()
    assert len(requests) == 4 and [r.get("stream", False) for r in requests] == [False, False, True, True]
    assert all(r["model"] == MODEL for r in requests)
    assert_weather_round_trip(upstream)
    assert TOOL_NAME in upstream.tools_offered(requests[0])
