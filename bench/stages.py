"""Where a translated request's time goes, stage by stage: which part of the added latency is the proxy's
own Python, which the upstream call, and what runs only after the answer has gone out.

The proxy runs in a process of its own (``--serve``) with timing wrappers around the functions that begin or
end a stage; the proxy's code is not changed. Each request's marks (wall clock and the process's CPU time)
are written to a file, and the medians of each stage are reported, for the paced load of the p50 target
(250 req/s offered, at most 64 in flight) and for closed loops of one or more clients (``--closed``). The
wrappers cost a few microseconds per request themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import BENCH, HOST, cpu_ticks, free_port, python, start, stop, wait_port  # noqa: E402
from run import SCENARIOS, load, proxy_config  # noqa: E402

# (mark that ends the stage, what happened since the previous mark)
STAGES = (
    ("received", ""),
    ("body", "the chat body read"),
    ("premap", "parsed, routed, the model's settings"),
    ("mapped", "mapped to a Responses request"),
    ("up_send", "the upstream call set up"),
    ("up_head", "the upstream round trip, to its answer's head (aiohttp and the fake upstream)"),
    ("completed", "the answer read and folded into a chat completion"),
    ("encoded", "the completion encoded"),
    ("sent", "the answer handed to the server"),
    ("logged", "after the answer: the request log line and metrics"),
)
CHAT_PATH = "/v1/chat/completions"

_marks: ContextVar[list[tuple[str, float, float]] | None] = ContextVar("bench_marks", default=None)


def mark(name: str) -> None:
    marks = _marks.get()
    if marks is not None:
        marks.append((name, time.perf_counter(), time.process_time()))


def timed(owner: Any, name: str, before: str | None = None, after: str | None = None) -> None:
    """Mark the entry to and the return from ``owner.name``, replaced in place."""
    original = getattr(owner, name)
    if asyncio.iscoroutinefunction(original):
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if before:
                mark(before)
            result = await original(*args, **kwargs)
            if after:
                mark(after)
            return result
    else:
        def wrapper(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            if before:
                mark(before)
            result = original(*args, **kwargs)
            if after:
                mark(after)
            return result
    setattr(owner, name, wrapper)


def serve(out: Path, proxy_args: list[str]) -> int:
    """The proxy, with every chat request's marks appended to ``out`` (JSON lines, 100 requests at a time)."""
    from proxy import answers, app, cli, middleware, plan, upstream

    rows: list[str] = []
    observe = middleware.ObserveMiddleware.__call__

    async def observed(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != CHAT_PATH:
            await observe(self, scope, receive, send)
            return
        marks: list[tuple[str, float, float]] = []
        token = _marks.set(marks)
        mark("received")

        async def timed_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                mark("sent")
        try:
            await observe(self, scope, receive, timed_send)
        finally:
            mark("logged")
            _marks.reset(token)
            rows.append(json.dumps(marks))
            if len(rows) >= 100:
                with out.open("a") as file:
                    file.write("\n".join(rows) + "\n")
                rows.clear()

    middleware.ObserveMiddleware.__call__ = observed  # type: ignore[method-assign]
    timed(app, "read_body", after="body")
    timed(plan, "chat_to_responses", before="premap", after="mapped")
    timed(upstream.Upstream, "send", before="up_send", after="up_head")
    timed(answers, "_completion", after="completed")
    timed(answers, "json_response", after="encoded")
    return cli.main(proxy_args)


def stage_table(path: Path, warm_up: float = 0.2) -> dict[str, dict[str, float]]:
    """Median wall and mean CPU microseconds per stage, over the requests that passed every mark in order."""
    order = [name for name, _ in STAGES]
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    complete = [row for row in rows if [name for name, _, _ in row] == order]
    if not complete:
        raise RuntimeError(f"none of {len(rows)} requests passed every mark in order: the functions wrapped in "
                           "serve() are no longer on a translated request's path")
    complete = complete[int(len(complete) * warm_up):]
    table: dict[str, dict[str, float]] = {}
    for index in range(1, len(order)):
        wall = [(row[index][1] - row[index - 1][1]) * 1e6 for row in complete]
        cpu = [(row[index][2] - row[index - 1][2]) * 1e6 for row in complete]
        table[order[index]] = {"wall_p50_us": statistics.median(wall), "cpu_mean_us": statistics.fmean(cpu)}
    table["to_sent"] = {"wall_p50_us": statistics.median((row[-2][1] - row[0][1]) * 1e6 for row in complete),
                        "cpu_mean_us": statistics.fmean((row[-2][2] - row[0][2]) * 1e6 for row in complete)}
    table["requests"] = {"counted": len(complete), "written": len(rows)}
    return table


def measure(closed: list[int]) -> dict[str, Any]:
    _, _, (paced_requests, _), (paced_clients,), rate, _ = SCENARIOS["json-paced"]
    loads = {"paced": (paced_clients, paced_requests, rate)}
    for clients in closed:
        loads[f"closed loop, {clients} client{'s' if clients > 1 else ''}"] = (clients, max(2000, 100 * clients), 0)
    results: dict[str, Any] = {"loads": {}}
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        workdir = Path(tmp)
        fake_port, proxy_port = free_port(), free_port()
        (workdir / "proxy.yaml").write_text(proxy_config(f"http://{HOST}:{fake_port}"))
        fake = start(python(str(BENCH / "fake_upstream.py"), "--port", str(fake_port)), log=workdir / "fake.log")
        try:
            wait_port(fake_port, fake)
            for label, (clients, requests, offered) in loads.items():
                marks = workdir / f"marks-{clients}-{offered}.jsonl"
                server = start(python(__file__, "--serve", str(marks), "--host", HOST, "--port", str(proxy_port),
                                      "--config", str(workdir / "proxy.yaml")), log=workdir / "proxy.log")
                try:
                    wait_port(proxy_port, server)
                    direct = load(fake_port, "direct-responses", False, clients, requests, offered, 120, workdir)
                    ticks = cpu_ticks()
                    proxied = load(proxy_port, "proxy-translate", False, clients, requests, offered, 120, workdir)
                    all_ticks, steal = (now - then for now, then in zip(cpu_ticks(), ticks))
                finally:
                    stop(server)
                results["loads"][label] = {
                    "clients": clients, "rate": offered,
                    "direct_p50_ms": direct["latency_ms"]["p50"], "proxy_p50_ms": proxied["latency_ms"]["p50"],
                    "steal_pct": 100 * steal / max(all_ticks, 1), "stages": stage_table(marks)}
        finally:
            stop(fake)
    return results


def report(results: dict[str, Any]) -> str:
    loads = results["loads"]
    lines = ["| stage: what happened since the previous mark | "
             + " | ".join(f"{label}: wall p50 / CPU mean (µs)" for label in loads) + " |",
             "|---|" + "---|" * len(loads)]
    for name, meaning in STAGES[1:]:
        cells = [f"{load['stages'][name]['wall_p50_us']:,.0f} / {load['stages'][name]['cpu_mean_us']:,.0f}"
                 for load in loads.values()]
        lines.append(f"| `{name}`: {meaning} | " + " | ".join(cells) + " |")
    cells = [f"{load['stages']['to_sent']['wall_p50_us']:,.0f} / {load['stages']['to_sent']['cpu_mean_us']:,.0f}"
             for load in loads.values()]
    lines.append("| from the request's arrival to its answer handed to the server | " + " | ".join(cells) + " |")
    lines.append("")
    for label, load in loads.items():
        lines.append(f"- {label}: {load['stages']['requests']['counted']:,} requests counted; client-side p50 "
                     f"{load['proxy_p50_ms']:.2f} ms through the proxy, {load['direct_p50_ms']:.2f} ms straight to "
                     f"the fake upstream; steal {load['steal_pct']:.1f}%")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        sys.exit(serve(Path(sys.argv[2]), sys.argv[3:]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--closed", type=int, nargs="+", default=[1], metavar="CLIENTS",
                        help="closed-loop client counts to run besides the paced load (default 1)")
    parser.add_argument("--name", help="also save the results as bench/results/<name>.json")
    args = parser.parse_args()
    results = measure(args.closed)
    print(report(results))
    if args.name:
        out = BENCH / "results" / f"{args.name}.json"
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
