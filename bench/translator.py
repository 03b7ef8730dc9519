"""CPU cost of the stream translation alone, without any I/O, in both directions.

    python bench/translator.py [--seconds 1.0] [--repeat 5] [--direction to-responses to-chat]

Each direction on its recorded real upstream streams in tests/fixtures/realdata and on the fake upstream's
synthetic 200- and 2,000-event answers, one core:

- ``to-responses`` (chat clients, a Responses upstream): Responses events in, chat chunks out
  (``StreamTranslator``, ``encode_frames``); the synthetic answers are ``fake_upstream.responses_events``.
- ``to-chat`` (Responses clients, a chat upstream): chat chunks in, Responses events out (``ResponseStream``,
  ``encode_events``: each event written as ``event:`` and ``data:``, as proxy/responses_answers.py writes them);
  the synthetic answers are the same answers as a chat-only reasoning model streams them
  (``fake_upstream.reasoning_chat_chunks``: 190 chunks for the 200 Responses events, 1,990 for 2,000).

Stages, per upstream event (a Responses event, or a chat chunk):

- translate: the translator's ``start``, ``feed`` on every parsed event and ``finish``, its output encoded
- decode:    SSEDecoder + orjson of the upstream bytes (proxy.responses_calls.parse_events), one network chunk per event
- pipeline:  decode + translate, i.e. all the per-event work of the proxy's stream relay except socket I/O

Each figure is the best of ``--repeat`` runs of at least ``--seconds`` each,
since on a shared machine the fastest run is the one least disturbed.

    python bench/translator.py --instructions

counts instead the CPU instructions per event of each stage under valgrind (as ``instructions.py`` does for
whole requests: the difference between a run of few and of many rounds), which the machine's noise cannot
move: the fake's 200-event answer, its events in one network chunk and one per chunk, with the proxy's
garbage-collector settings. Stages: ``sse`` (the SSE reader alone), ``decode``, ``feed`` (the translator
without encoding), ``translate``, ``pipeline``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import COUNT_INSTRUCTIONS, ROOT, instructions_counted, python, require_valgrind  # noqa: E402

sys.path[1:1] = [str(ROOT)]
sys.path.append(str(ROOT / "tests"))  # after bench/, whose fake_upstream this script uses
import realdata  # noqa: E402
from fake_upstream import CHAT_ONLY_MODEL, reasoning_chat_chunks, responses_events  # noqa: E402

from proxy.app import tune_garbage_collection  # noqa: E402
from proxy.responses_calls import parse_events  # noqa: E402
from proxy.translate import (DONE, ResponseStream, SSEDecoder, StreamTranslator, encode_data, encode_event,  # noqa: E402
                             encode_events, encode_frames, responses_request_to_chat)


class Direction(NamedTuple):
    """One direction's stream translation, as its relay runs it."""

    new: Callable[[], Any]  # a translator for one answer
    encode: Callable[[list[dict]], bytes]  # what one read's output becomes on the wire to the client
    wire: Callable[[dict], bytes]  # one upstream event as the upstream sends it
    end: bytes  # what the upstream sends after its last event
    recorded_api: str  # the API of its recorded upstream streams
    synthetic: Callable[[int], list[dict]]  # the fake upstream's answer, by its length in Responses events


def _response_stream() -> ResponseStream:
    return ResponseStream(CHAT_STATE)


CHAT_STATE = responses_request_to_chat({"model": CHAT_ONLY_MODEL, "input": "How do I cross the street safely?",
                                        "stream": True}).state
DIRECTIONS = {
    "to-responses": Direction(lambda: StreamTranslator("o3-pro", include_usage=True, completion_id="chatcmpl-bench",
                                                       created=1),
                              encode_frames, lambda event: encode_event(event.get("type", "message"), event), b"",
                              "responses", responses_events),
    "to-chat": Direction(_response_stream, encode_events, encode_data, DONE, "chat", reasoning_chat_chunks),
}


def translate(direction: Direction, streams: list[list[dict]]) -> int:
    frames = 0
    for events in streams:
        translator = direction.new()
        opening = translator.start()
        direction.encode(opening)
        frames += len(opening)
        for event in events:
            produced = translator.feed(event)
            direction.encode(produced)
            frames += len(produced)
        closing = translator.finish()
        direction.encode(closing)
        frames += len(closing)
    return frames


def decode(direction: Direction, wires: list[list[bytes]]) -> int:
    count = 0
    for chunks in wires:
        decoder = SSEDecoder()
        for chunk in chunks:
            count += len(parse_events(decoder, chunk))
        count += len(parse_events(decoder, None))
    return count


def pipeline(direction: Direction, wires: list[list[bytes]]) -> int:
    frames = 0
    for chunks in wires:
        translator = direction.new()
        decoder = SSEDecoder()
        out = [direction.encode(translator.start())]
        for chunk in chunks:  # as the proxy does it: the output of one read is written together
            produced = [frame for event in parse_events(decoder, chunk) for frame in translator.feed(event)]
            frames += len(produced)
            out.append(direction.encode(produced))
        out.append(direction.encode(translator.finish()))
        b"".join(out)
    return frames


def sse(direction: Direction, wires: list[list[bytes]]) -> int:
    count = 0
    for chunks in wires:
        decoder = SSEDecoder()
        for chunk in chunks:
            count += len(decoder.feed(chunk))
    return count


def feed(direction: Direction, streams: list[list[dict]]) -> int:
    frames = 0
    for events in streams:
        translator = direction.new()
        translator.start()
        for event in events:
            frames += len(translator.feed(event))
        translator.finish()
    return frames


STAGES = {work.__name__: work for work in (sse, decode, feed, translate, pipeline)}
PARSED_STAGES = ("feed", "translate")  # they take parsed events: how the bytes came in chunks does not apply
ROUNDS = (2, 12)


def wire(direction: Direction, events: list[dict]) -> list[bytes]:
    """An answer's bytes as the upstream sends them, one network chunk per event (the end with the last)."""
    chunks = [direction.wire(event) for event in events]
    chunks[-1] += direction.end
    return chunks


def stage_data(direction: str, stage: str, layout: str) -> tuple[list, int]:
    """The fake's 200-event answer as ``stage`` takes it: parsed events, or its bytes in chunks."""
    events = DIRECTIONS[direction].synthetic(200)
    if stage in PARSED_STAGES:
        return [events], len(events)
    chunks = wire(DIRECTIONS[direction], events)
    return [[b"".join(chunks)] if layout == "burst" else chunks], len(events)


def count_rounds(direction: str, stage: str, layout: str, rounds: int) -> None:
    """The work valgrind counts: ``rounds`` runs of one stage (start-up cancels out between two round counts)."""
    data, _ = stage_data(direction, stage, layout)
    tune_garbage_collection()
    for _ in range(rounds):
        STAGES[stage](DIRECTIONS[direction], data)


def instructions_per_event(direction: str, stage: str, layout: str) -> int:
    counts = []
    for rounds in ROUNDS:
        done = subprocess.run([*COUNT_INSTRUCTIONS, *python(__file__, "--count-rounds", direction, stage, layout,
                                                            str(rounds))],
                              capture_output=True, text=True, errors="replace", check=True, cwd=ROOT)
        counts.append(instructions_counted(done.stderr))
    _, events = stage_data(direction, stage, layout)
    return round((counts[1] - counts[0]) / ((ROUNDS[1] - ROUNDS[0]) * events))


def print_instructions(directions: list[str]) -> None:
    require_valgrind()
    print("| direction | stage | instructions per event, answer in one chunk | one event per chunk |\n"
          "|---|---|---|---|")
    for direction in directions:
        for stage in STAGES:
            burst = instructions_per_event(direction, stage, "burst")
            apart = instructions_per_event(direction, stage, "apart") if stage not in PARSED_STAGES else burst
            print(f"| {direction} | {stage} | {burst:,} | {apart:,} |", flush=True)


def best_us_per_event(work, direction: Direction, data, events: int, seconds: float, repeat: int) -> float:
    """Microseconds per event of the fastest of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        rounds, start = 0, time.perf_counter_ns()
        while True:
            work(direction, data)
            rounds += 1
            elapsed = time.perf_counter_ns() - start
            if elapsed >= seconds * 1e9:
                break
        best = min(best, elapsed / 1e3 / (rounds * events))
    return best


def corpora(direction: Direction) -> dict[str, list[list[dict]]]:
    recorded = [recording.events for recording in realdata.recordings(api=direction.recorded_api, kind="stream")]
    return {
        f"recorded ({len(recorded)} real streams)": recorded,
        "synthetic 200 events": [direction.synthetic(200)],
        "synthetic 2,000 events": [direction.synthetic(2000)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum duration of one run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--direction", nargs="+", choices=list(DIRECTIONS), default=list(DIRECTIONS))
    parser.add_argument("--instructions", action="store_true", help="count instructions per event under valgrind")
    parser.add_argument("--count-rounds", nargs=4, metavar=("DIRECTION", "STAGE", "LAYOUT", "ROUNDS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count_rounds:
        direction, stage, layout, rounds = args.count_rounds
        count_rounds(direction, stage, layout, int(rounds))
        return
    if args.instructions:
        print_instructions(args.direction)
        return
    print("| direction | upstream answers | upstream events | mean event bytes | events or chunks out | translate us/event "
          "| decode us/event | pipeline us/event | pipeline events/s (1 core) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.direction:
        direction = DIRECTIONS[name]
        for label, streams in corpora(direction).items():
            events = sum(len(s) for s in streams)
            wires = [wire(direction, s) for s in streams]
            size = sum(len(chunk) for chunks in wires for chunk in chunks) / events
            assert decode(direction, wires) == events, "the decoder lost events"
            produced = translate(direction, streams)
            cost = {work.__name__: best_us_per_event(work, direction, wires if work is not translate else streams,
                                                     events, args.seconds, args.repeat)
                    for work in (translate, decode, pipeline)}
            print(f"| {name} | {label} | {events:,} | {size:,.0f} | {produced:,} | {cost['translate']:.2f} "
                  f"| {cost['decode']:.2f} | {cost['pipeline']:.2f} | {1e6 / cost['pipeline']:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
