"""The benchmarks' fake upstream (bench/fake_upstream.py) sends what it is asked for: a stream of N events is N
events long, as the per-event figures in bench/README.md assume."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def bench_fake():
    """The benchmark's fake, loaded from its file: the tests' own fake_upstream module has the same name."""
    sys.path.insert(0, str(BENCH))  # it imports procs from beside it
    try:
        spec = importlib.util.spec_from_file_location("bench_fake_upstream", BENCH / "fake_upstream.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


@pytest.mark.parametrize("events", [15, 16, 40, 200, 2000])
def test_a_stream_of_n_events_has_n_events(bench_fake, events):
    sequence = bench_fake.responses_events(events)
    assert [event["sequence_number"] for event in sequence] == list(range(events))
    assert sequence[0]["type"] == "response.created" and sequence[-1]["type"] == "response.completed"
    assert len(bench_fake.chat_chunks(events)) == events


def test_shorter_streams_are_the_shortest_whole_one(bench_fake):
    shortest = bench_fake.responses_events(1)
    assert len(shortest) == bench_fake.MIN_EVENTS
    kinds = {event["type"] for event in shortest}
    assert {"response.reasoning_summary_text.delta", "response.output_text.delta"} <= kinds



@pytest.mark.parametrize("events", [15, 40, 200, 2000])
def test_the_chat_only_answer_is_the_same_answer_in_as_many_responses_events(bench_fake, events):
    """The chat-only reasoning model's stream, served to a Responses client, is the Responses upstream's answer:
    the same events, reasoning and text (the both-directions figures compare the two per event)."""
    from proxy.translate import ResponseStream, responses_request_to_chat

    chunks = bench_fake.reasoning_chat_chunks(events)
    assert len(chunks) == events - 10  # the role, a delta per word, the finish, the usage
    state = responses_request_to_chat({"model": bench_fake.CHAT_ONLY_MODEL, "input": "hi", "stream": True}).state
    stream = ResponseStream(state)
    translated = stream.start()
    for chunk in chunks:
        translated += stream.feed(chunk)
    translated += stream.finish()
    expected = bench_fake.responses_events(events)
    assert [event["type"] for event in translated] == [event["type"] for event in expected]
    final, upstream_final = translated[-1]["response"], expected[-1]["response"]
    assert [item["summary"] for item in final["output"][:1]] == [upstream_final["output"][0]["summary"]]
    assert final["output"][1]["content"][0]["text"] == upstream_final["output"][1]["content"][0]["text"]
    assert final["usage"]["output_tokens"] == upstream_final["usage"]["output_tokens"]


def test_the_chat_only_model_is_answered_with_its_reasoning(bench_fake):
    completion = bench_fake.reasoning_chat_completion()
    message = completion["choices"][0]["message"]
    assert message["reasoning_content"] and message["content"]
    assert bench_fake.answer("reasoning-chat", False, 0) != bench_fake.answer("chat", False, 0)
