"""CPU cost of the stream translation alone, without any I/O.

    python bench/translator.py [--seconds 1.0] [--repeat 5]

Measured on every recorded real Responses stream in tests/fixtures/realdata
(plus the fake upstream's synthetic 200- and 2,000-event streams), one core:

- translate: StreamTranslator.feed() on parsed events + encode_frames() of the chunks it returns
- decode:    SSEDecoder + orjson of the upstream bytes (proxy.calls.parse_events), one network chunk per event
- pipeline:  decode + translate, i.e. all the per-event work of the proxy's stream relay except socket I/O

Each figure is the best of ``--repeat`` runs of at least ``--seconds`` each,
since on a shared machine the fastest run is the one least disturbed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import ROOT  # noqa: E402

sys.path[1:1] = [str(ROOT)]
sys.path.append(str(ROOT / "tests"))  # after bench/, whose fake_upstream this script uses
import realdata  # noqa: E402
from fake_upstream import responses_events  # noqa: E402

from proxy.calls import parse_events  # noqa: E402
from proxy.sse import SSEDecoder, encode_event, encode_frames  # noqa: E402
from proxy.translate.stream import StreamTranslator  # noqa: E402


def translate(streams: list[list[dict]]) -> int:
    frames = 0
    for events in streams:
        translator = StreamTranslator("o3-pro", include_usage=True, completion_id="chatcmpl-bench", created=1)
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
        translator = StreamTranslator("o3-pro", include_usage=True, completion_id="chatcmpl-bench", created=1)
        decoder = SSEDecoder()
        out = [encode_frames(translator.start())]
        for chunk in chunks:  # as the proxy does it: the frames of one read are written together
            produced = [frame for event in parse_events(decoder, chunk) for frame in translator.feed(event)]
            frames += len(produced)
            out.append(encode_frames(produced))
        b"".join(out)
    return frames


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
    args = parser.parse_args()
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
