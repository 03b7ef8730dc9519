"""CPU instructions per request, counted by valgrind: a figure the shared machine's noise cannot move.

Wall-clock and CPU-time figures on a shared VM swing by a quarter between identical runs (steal time,
a neighbour's cache use). The instructions a server executes per request do not: each target runs
under ``valgrind --tool=cachegrind --cache-sim=no`` twice, once for a small and once for a large
number of requests, and the difference divided by the difference in requests is its cost per request
(start-up, warm-up and shutdown cancel out). Repeated runs agree to within 1%.

What it cannot see: time in the kernel (socket reads and writes, waking the other processes), which
the throughput benchmarks (``run.py``) include. It needs valgrind (Debian: ``apt install valgrind``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import (COUNT_INSTRUCTIONS, HOST, free_port, instructions_counted, python, require_valgrind,  # noqa: E402
                   start, stop, wait_port)
from run import BENCH, http_json, load, proxy_config  # noqa: E402

# name: (target in run.py, stream, events per stream, ms between events: 0 sends a stream in one write)
CASES = {
    "raw-json": ("raw-responses", False, 0, 0),
    "translate-json": ("proxy-translate", False, 0, 0),
    "passthrough-json": ("proxy-passthrough", False, 0, 0),
    "raw-stream200": ("raw-responses", True, 200, 0),
    "translate-stream200": ("proxy-translate", True, 200, 0),
    # Events one at a time, as a model streams them: every event is an upstream read and a client write.
    "raw-apart40": ("raw-responses", True, 40, 20),
    "translate-apart40": ("proxy-translate", True, 40, 20),
    # Responses clients, a chat-only upstream: the same answers (the chat stream of 200 events' answer has 190
    # chunks; per event is per Responses event the client gets, 200 as in raw-stream200).
    "raw-responses-json": ("raw-responses-reasoner", False, 0, 0),
    "to-chat-json": ("proxy-to-chat", False, 0, 0),
    "responses-passthrough-json": ("proxy-responses-passthrough", False, 0, 0),
    "to-chat-stream200": ("proxy-to-chat", True, 200, 0),
    "to-chat-apart40": ("proxy-to-chat", True, 40, 20),
}
# Proxy settings of a case beyond the upstream. o3-pro runs in background mode by default, and a background run
# is followed by its event stream for non-streaming clients too: the JSON case measures a translated JSON answer.
# More entries of the proxy's ``models`` section (run.proxy_config ends with it).
CASE_SETTINGS = {"translate-json": '  "o3-pro*":\n    background: false\n'}


def counted(case: str, requests: int, concurrency: int, upstream_port: int, workdir: Path,
            extra: list[str]) -> int:
    """Instructions the target's server process executed while serving ``requests`` requests."""
    target, stream, _, _ = CASES[case]
    port = free_port()
    report = workdir / f"valgrind-{case}-{requests}.txt"
    upstream = f"http://{HOST}:{upstream_port}"
    config = workdir / f"proxy-{case}.yaml"
    config.write_text(proxy_config(upstream) + CASE_SETTINGS.get(case, ""))
    server = (python(str(BENCH / "raw_passthrough.py"), "--port", str(port), "--upstream", upstream)
              if target.startswith("raw") else
              python("-m", "proxy", "--host", HOST, "--port", str(port), "--config", str(config), *extra))
    process = start([*COUNT_INSTRUCTIONS, f"--log-file={report}", *server], log=workdir / f"server-{case}.log")
    try:
        wait_port(port, process, timeout=180)
        result = load(port, target, stream, concurrency, requests, 0, 600, workdir)
        if result["ok"] != requests:
            raise RuntimeError(f"{case}: {result['ok']} of {requests} answers were complete: {result['error_samples']}")
    finally:
        stop(process)
    for _ in range(50):  # valgrind writes its summary as the process exits
        found = instructions_counted(report.read_text()) if report.exists() else None
        if found is not None:
            return found
        time.sleep(0.1)
    raise RuntimeError(f"no instruction count in {report}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--requests", nargs=2, type=int, default=(100, 400), metavar=("FEW", "MANY"))
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--proxy-args", default="", help="extra command-line options for the proxy, "
                                                         "e.g. '--log-level warning'")
    parser.add_argument("--name", help="also save the results as bench/results/<name>.json")
    args = parser.parse_args()
    require_valgrind()
    few, many = args.requests
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        workdir = Path(tmp)
        upstream_port = free_port()
        fake = start(python(str(BENCH / "fake_upstream.py"), "--port", str(upstream_port)),
                     log=workdir / "fake.log")
        try:
            wait_port(upstream_port, fake)
            for case in args.cases:
                _, _, events, gap_ms = CASES[case]
                if events:
                    http_json(upstream_port, "/bench/config", {"events": events, "gap_ms": gap_ms})
                small = counted(case, few, args.concurrency, upstream_port, workdir, args.proxy_args.split())
                large = counted(case, many, args.concurrency, upstream_port, workdir, args.proxy_args.split())
                per_request = (large - small) / (many - few)
                rows.append({"case": case, "instructions_per_request": round(per_request),
                             "per_event": round(per_request / events) if events else None})
                print(f"{case:22s} {per_request / 1e6:8.3f} M instructions per request"
                      + (f"  ({per_request / events / 1e3:.1f} k per event)" if events else ""), flush=True)
        finally:
            stop(fake)
    print("\n| case | instructions per request | per event |\n|---|---|---|")
    for row in rows:
        per_event = f"{row['per_event']:,}" if row["per_event"] else ""
        print(f"| {row['case']} | {row['instructions_per_request']:,} | {per_event} |")
    if args.name:
        out = BENCH / "results" / f"{args.name}.json"
        out.write_text(json.dumps({"requests": [few, many], "concurrency": args.concurrency,
                                   "proxy_args": args.proxy_args, "rows": rows}, indent=2) + "\n")
        print(f"\nresults: {out}")



if __name__ == "__main__":
    main()
