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

