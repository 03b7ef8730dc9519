"""The time from a background run's completion upstream to the client's last byte, through the proxy.

A pro model's run takes minutes; what the proxy adds is how long the client waits after the answer exists. One
request at a time for ``o3-pro`` (background mode, the built-in default), answered by bench/fake_upstream.py: its
stream goes silent after its first two events, as a reasoning model does while it thinks, then sends the rest.
The fake notes when the run was complete (the last event written, or for a polled run the moment it finished,
on ``time.monotonic()``, one clock for every process on the machine); the client notes its last byte. Modes:

- ``stream``: a streaming client (the proxy relays the background stream);
- ``json``: a non-streaming client (the proxy follows the background stream and writes the completion);
- ``json-polled``: a non-streaming client where the upstream refuses to stream a background run, so the proxy
  polls ``GET /responses/{id}`` (every ``background.poll_initial`` s, growing to ``poll_max``): what every
  non-streaming client waited before the background stream was followed.

Usage: ``python bench/completion_latency.py [--runs 300] [--think-ms 20] [--polled-runs 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import BENCH, HOST, free_port, python, start, stop, wait_port  # noqa: E402
from run import proxy_config  # noqa: E402

MESSAGES = [{"role": "system", "content": "You are a careful prover."}, {"role": "user", "content": "Prove it."}]


async def one_run(http: aiohttp.ClientSession, proxy: str, fake: str, stream: bool, think_ms: float) -> float:
    """Seconds from the run's completion upstream to the client's last byte."""
    headers = {"x-bench-silent-ms": str(think_ms), "x-bench-think-ms": str(think_ms), "x-bench-events": "200"}
    body = {"model": "o3-pro", "messages": MESSAGES, "stream": stream}
    async with http.post(f"{proxy}/v1/chat/completions", json=body, headers=headers) as response:
        received = b""
        async for chunk in response.content.iter_any():
            received += chunk
        last_byte = time.monotonic()
    if response.status != 200 or not (received.endswith(b"data: [DONE]\n\n") if stream else b'"choices"' in received):
        raise RuntimeError(f"unexpected answer {response.status}: {received[-300:]!r}")
    async with http.get(f"{fake}/bench/completed") as response:
        completed = (await response.json())["at"]
    return last_byte - completed


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"runs": len(ordered), "p50_ms": pick(0.5), "p90_ms": pick(0.9), "p99_ms": pick(0.99),
            "max_ms": ordered[-1] * 1000, "mean_ms": statistics.fmean(ordered) * 1000}


async def measure(proxy_port: int, fake_port: int, runs: int, polled_runs: int, think_ms: float) -> dict:
    proxy, fake = f"http://{HOST}:{proxy_port}", f"http://{HOST}:{fake_port}"
    results = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        for mode, stream, count in (("stream", True, runs), ("json", False, runs), ("json-polled", False, polled_runs)):
            if mode == "json-polled":  # the proxy learns the refusal once, then polls
                async with http.post(f"{fake}/bench/config", json={"refuse_background_stream": True}):
                    pass
            for _ in range(min(5, count)):  # connections opened, code paths warm
                await one_run(http, proxy, fake, stream, think_ms)
            results[mode] = percentiles([await one_run(http, proxy, fake, stream, think_ms) for _ in range(count)])
            print(mode, json.dumps({k: round(v, 2) for k, v in results[mode].items()}), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="runs per streamed mode (default 300)")
    parser.add_argument("--polled-runs", type=int, default=20, help="runs of the polled mode (default 20)")
    parser.add_argument("--think-ms", type=float, default=20.0, help="the upstream's silence before the answer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-completion-") as tmp:
        workdir = Path(tmp)
        fake_port, proxy_port = free_port(), free_port()
        (workdir / "proxy.yaml").write_text(proxy_config(f"http://{HOST}:{fake_port}"))
        fake = start(python(str(BENCH / "fake_upstream.py"), "--port", str(fake_port)), log=workdir / "fake.log")
        proxy = start(python("-m", "proxy", "--host", HOST, "--port", str(proxy_port), "--log-level", "warning",
                             "--config", str(workdir / "proxy.yaml")), log=workdir / "proxy.log")
        try:
            wait_port(fake_port, fake)
            wait_port(proxy_port, proxy)
            results = asyncio.run(measure(proxy_port, fake_port, args.runs, args.polled_runs, args.think_ms))
        finally:
            stop(proxy)
            stop(fake)
    print("\n| client | runs | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|")
    for mode, figures in results.items():
        print(f"| {mode} | {figures['runs']} | {figures['p50_ms']:.1f} ms | {figures['p90_ms']:.1f} ms | "
              f"{figures['p99_ms']:.1f} ms | {figures['max_ms']:.1f} ms |")


if __name__ == "__main__":
    main()
