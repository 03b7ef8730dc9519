"""CPU cost of the stream translation alone, without any I/O.

    python bench/translator.py [--seconds 1.0] [--repeat 5]

Measured on every recorded real Responses stream in tests/fixtures/realdata
(plus the fake upstream's synthetic 200- and 2,000-event streams), one core:

- translate: StreamTranslator.feed() on parsed events + encode_frames() of the chunks it returns
- decode:    SSEDecoder + orjson of the upstream bytes (proxy.responses_calls.parse_events), one network chunk per event
- pipeline:  decode + translate, i.e. all the per-event work of the proxy's stream relay except socket I/O

Each figure is the best of ``--repeat`` runs of at least ``--seconds`` each,
since on a shared machine the fastest run is the one least disturbed.

    python bench/translator.py --instructions

counts instead the CPU instructions per event of each stage under valgrind (as ``instructions.py`` does for
whole requests: the difference between a run of few and of many rounds), which the machine's noise cannot
move: the fake's 200-event stream, its events in one network chunk and one per chunk, with the proxy's
garbage-collector settings. Stages: ``sse`` (the SSE reader alone), ``decode``, ``feed`` (the translator
without encoding), ``translate``, ``pipeline``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import COUNT_INSTRUCTIONS, ROOT, instructions_counted, python, require_valgrind  # noqa: E402

sys.path[1:1] = [str(ROOT)]
sys.path.append(str(ROOT / "tests"))  # after bench/, whose fake_upstream this script uses
import realdata  # noqa: E402
from fake_upstream import responses_events  # noqa: E402

from proxy.app import tune_garbage_collection  # noqa: E402
from proxy.responses_calls import parse_events  # noqa: E402
from proxy.translate import SSEDecoder, StreamTranslator, encode_event, encode_frames  # noqa: E402


def new_translator() -> StreamTranslator:
    return StreamTranslator("o3-pro", include_usage=True, completion_id="chatcmpl-bench", created=1)


def translate(streams: list[list[dict]]) -> int:
    frames = 0
    for events in streams:
        translator = new_translator()
        encode_frames(translator.start())
        for event in events:
            produced = translator.feed(event)
            encode_frames(produced)
            frames += len(produced)
    return frames


def decode(wires: list[list[bytes]]) -> int:
    count = 0
    for chunks in wires:
        decoder = SSEDecoder()
        for chunk in chunks:
            count += len(parse_events(decoder, chunk))
        count += len(parse_events(decoder, None))
    return count


def pipeline(wires: list[list[bytes]]) -> int:
    frames = 0
    for chunks in wires:
        translator = new_translator()
        decoder = SSEDecoder()
        out = [encode_frames(translator.start())]
        for chunk in chunks:  # as the proxy does it: the frames of one read are written together
            produced = [frame for event in parse_events(decoder, chunk) for frame in translator.feed(event)]
            frames += len(produced)
            out.append(encode_frames(produced))
        b"".join(out)
    return frames


def sse(wires: list[list[bytes]]) -> int:
    count = 0
    for chunks in wires:
        decoder = SSEDecoder()
        for chunk in chunks:
            count += len(decoder.feed(chunk))
    return count


def feed(streams: list[list[dict]]) -> int:
    frames = 0
    for events in streams:
        translator = new_translator()
        translator.start()
        for event in events:
            frames += len(translator.feed(event))
    return frames


STAGES = {work.__name__: work for work in (sse, decode, feed, translate, pipeline)}
PARSED_STAGES = ("feed", "translate")  # they take parsed events: how the bytes came in chunks does not apply
ROUNDS = (2, 12)


def stage_data(stage: str, layout: str) -> tuple[list, int]:
    """The fake's 200-event stream as ``stage`` takes it: parsed events, or its bytes in chunks."""
    events = responses_events(200)
    if stage in PARSED_STAGES:
        return [events], len(events)
    chunks = [encode_event(event["type"], event) for event in events]
    return [[b"".join(chunks)] if layout == "burst" else chunks], len(events)


def count_rounds(stage: str, layout: str, rounds: int) -> None:
    """The work valgrind counts: ``rounds`` runs of one stage (start-up cancels out between two round counts)."""
    data, _ = stage_data(stage, layout)
    tune_garbage_collection()
    for _ in range(rounds):
        STAGES[stage](data)


def instructions_per_event(stage: str, layout: str) -> int:
    counts = []
    for rounds in ROUNDS:
        done = subprocess.run([*COUNT_INSTRUCTIONS, *python(__file__, "--count-rounds", stage, layout, str(rounds))],
                              capture_output=True, text=True, errors="replace", check=True, cwd=ROOT)
        counts.append(instructions_counted(done.stderr))
    _, events = stage_data(stage, layout)
    return round((counts[1] - counts[0]) / ((ROUNDS[1] - ROUNDS[0]) * events))


def print_instructions() -> None:
    require_valgrind()
    print("| stage | instructions per event, stream in one chunk | one event per chunk |\n|---|---|---|")
    for stage in STAGES:
        burst = instructions_per_event(stage, "burst")
        apart = instructions_per_event(stage, "apart") if stage not in PARSED_STAGES else burst
        print(f"| {stage} | {burst:,} | {apart:,} |", flush=True)


def best_us_per_event(work, data, events: int, seconds: float, repeat: int) -> float:
    """Microseconds per event of the fastest of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        rounds, start = 0, time.perf_counter_ns()
        while True:
            work(data)
            rounds += 1
            elapsed = time.perf_counter_ns() - start
            if elapsed >= seconds * 1e9:
                break
        best = min(best, elapsed / 1e3 / (rounds * events))
    return best


def corpora() -> dict[str, list[list[dict]]]:
    recorded = [recording.events for recording in realdata.recordings(api="responses", kind="stream")]
    return {
        f"recorded ({len(recorded)} real streams)": recorded,
        "synthetic 200 events": [responses_events(200)],
        "synthetic 2,000 events": [responses_events(2000)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum duration of one run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="count instructions per event under valgrind")
    parser.add_argument("--count-rounds", nargs=3, metavar=("STAGE", "LAYOUT", "ROUNDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count_rounds:
        stage, layout, rounds = args.count_rounds
        count_rounds(stage, layout, int(rounds))
        return
    if args.instructions:
        print_instructions()
        return
    print("| stream set | events | mean event bytes | translate us/event | decode us/event "
          "| pipeline us/event | pipeline events/s (1 core) |")
    print("|---|---|---|---|---|---|---|")
    for name, streams in corpora().items():
        events = sum(len(s) for s in streams)
        wires = [[encode_event(event.get("type", "message"), event) for event in s] for s in streams]
        size = sum(len(chunk) for chunks in wires for chunk in chunks) / events
        assert decode(wires) == events, "the decoder lost events"
        cost = {work.__name__: best_us_per_event(work, wires if work is not translate else streams, events,
                                                 args.seconds, args.repeat)
                for work in (translate, decode, pipeline)}
        print(f"| {name} | {events:,} | {size:,.0f} | {cost['translate']:.2f} | {cost['decode']:.2f} "
              f"| {cost['pipeline']:.2f} | {1e6 / cost['pipeline']:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
