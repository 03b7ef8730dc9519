"""Many concurrent client streams held open on a silent upstream, kept alive by heartbeats.

    python bench/concurrency.py                                  # 10,000 streams, 60 s of silence
    python bench/concurrency.py --streams 1000 --silent 15 --heartbeat 2   # quick run

Starts the fake upstream (every stream sends response.created and
response.in_progress, then nothing until released) and the proxy
(stream.heartbeat_interval = --heartbeat), then several client processes
that open the streams as fast as the proxy accepts them (at most --ramp per
second, at most --window connecting at once per process). Once every stream
is open upstream, the silence is held for --silent seconds more, then the
fake upstream is told to finish every answer and the clients read them to
the end. Reports the proxy's memory (VmRSS/VmHWM from /proc/<pid>/status)
and open file descriptors over time, the heartbeats each stream received,
and the streams lost (no HTTP 200, or no ``data: [DONE]`` at the end).
Every process stops by itself after the run.

Each stream holds two descriptors in the proxy (client side and upstream
side), so the streams that fit are bounded by the hard RLIMIT_NOFILE, which
an unprivileged process cannot raise; the script says so and runs as many as fit.
With ``--workers N`` the proxy runs N worker processes (``responses-proxy
--workers N``), each with its own limit; memory and descriptors are then
those of the whole process tree (the supervisor and its workers), summed.

    python bench/concurrency.py --workers 2                      # 10,000 streams over two workers
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import (BENCH, HOST, die_with_parent, free_port, python, raise_fd_limit, start, status, stop,  # noqa: E402
                   tree, wait_port)
from run import http_json  # noqa: E402

RESULTS = BENCH / "results"
EVENTS = 20  # a short answer after the silence: the run measures holding streams, not relaying them
SPARE_FDS = 64  # listening sockets, log files, the event loop's own descriptors


# --- client process ----------------------------------------------------------------------------------


class StreamClient(asyncio.Protocol):
    """Reads one SSE answer to the end (the request asks the proxy to close afterwards)."""

    def __init__(self, opened: asyncio.Future, done: asyncio.Future) -> None:
        self.opened = opened
        self.done = done
        self.head = b""
        self.tail = b""
        self.heartbeats = 0
        self.finished = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.head:
            self.head = data[:12]
            self.opened.set_result(None)
        window = self.tail + data
        # Count only what starts in the new data, so a marker split across reads counts once.
        self.heartbeats += window.count(b": keep-alive") - self.tail.count(b": keep-alive")
        self.finished = self.finished or b"data: [DONE]" in window
        self.tail = window[-16:]

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.opened, self.done):
            if not future.done():
                future.set_result(exc)


async def one_stream(port: int, request: bytes, deadline: float, window: asyncio.Semaphore) -> tuple[str | None, int]:
    """-> (why the stream was lost or None, heartbeats received)."""
    loop = asyncio.get_running_loop()
    opened, done = loop.create_future(), loop.create_future()
    async with window:  # held until the proxy answers, so connections never pile up in its backlog
        try:
            transport, client = await asyncio.wait_for(
                loop.create_connection(lambda: StreamClient(opened, done), HOST, port), 30)
        except (OSError, asyncio.TimeoutError) as exc:
            return f"connect: {type(exc).__name__}", 0
        transport.write(request)
        try:
            await asyncio.wait_for(opened, 60)
        except asyncio.TimeoutError:
            transport.close()
            return "no answer within 60 s", 0
    try:
        await asyncio.wait_for(done, max(deadline - loop.time(), 0))
    except asyncio.TimeoutError:
        transport.close()
        return "still open at the deadline", client.heartbeats
    if not client.head.startswith(b"HTTP/1.1 200"):
        return f"status {client.head[9:12].decode(errors='replace') or 'none'}", client.heartbeats
    if not client.finished:
        return "ended without [DONE]", client.heartbeats
    return None, client.heartbeats


async def clients(port: int, count: int, ramp: float, window: int, duration: float) -> dict:
    body = json.dumps({"model": "o3-pro", "stream": True,
                       "messages": [{"role": "user", "content": "How do I cross the street safely?"}]}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
               b"authorization: Bearer sk-bench\r\nconnection: close\r\ncontent-length: %d\r\n\r\n" % len(body)
               + body)
    loop = asyncio.get_running_loop()
    began = loop.time()
    deadline = began + duration
    opening = asyncio.Semaphore(window)
    tasks = []
    for number in range(count):
        await asyncio.sleep(max(began + number / ramp - loop.time(), 0))
        tasks.append(asyncio.create_task(one_stream(port, request, deadline, opening)))
    outcomes = await asyncio.gather(*tasks)
    lost: dict[str, int] = {}
    for reason, _ in outcomes:
        if reason is not None:
            lost[reason] = lost.get(reason, 0) + 1
    return {"streams": count, "lost": lost, "heartbeats": [beats for _, beats in outcomes]}


# --- driver ------------------------------------------------------------------------------------------


def sample(proxy_pid: int, fake_port: int, began: float) -> dict:
    """The proxy's memory and descriptors (summed over its process tree), and the upstream's open streams."""
    processes = []
    for pid in tree(proxy_pid):
        try:
            processes.append(status(pid))
        except OSError:  # ended between the listing and the reading
            pass
    point = {"t": round(time.monotonic() - began, 1),
             **{key: sum(process[key] for process in processes) for key in ("VmRSS", "VmHWM", "fds")}}
    if len(processes) > 1:
        point["processes"] = [{key: process[key] for key in ("VmRSS", "fds")} for process in processes]
    try:
        stats = http_json(fake_port, "/bench/stats")
        point.update(upstream_open=stats["open_connections"], upstream_silent=stats["silent_streams"])
    except OSError:
        pass
    return point


def run(args: argparse.Namespace) -> dict:
    hard = raise_fd_limit()
    # Workers take connections as they come, not in turns: leave each a tenth more room than an even share.
    fits = (hard - SPARE_FDS) // 2 if args.workers == 1 else int((hard - SPARE_FDS) // 2 * args.workers / 1.1)
    streams = args.streams
    if streams > fits:
        print(f"RLIMIT_NOFILE hard limit is {hard}: a proxy process holds 2 descriptors per stream, so at most "
              f"{fits:,} streams fit in {args.workers} worker(s); running {fits:,} instead of {streams:,}.", flush=True)
        streams = fits
    RESULTS.mkdir(exist_ok=True)
    logs = RESULTS / "logs"
    logs.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-concurrency-"))
    fake_port, proxy_port = free_port(), free_port()
    duration = args.open_timeout + args.silent + args.drain
    # The first streams stay silent while the others open: the idle timeout must outlast the whole run.
    (workdir / "proxy.yaml").write_text(
        f"upstream:\n  base_url: http://{HOST}:{fake_port}/v1\n  api_key: sk-bench-upstream\n"
        f"  idle_timeout: {duration + 60}\nstream:\n  heartbeat_interval: {args.heartbeat}\n")
    fake = start(python(str(BENCH / "fake_upstream.py"), "--port", str(fake_port), "--events", str(EVENTS),
                        "--silent-ms", str(duration * 1000)), log=logs / "concurrency-fake.log")
    proxy = start(python("-m", "proxy", "--host", HOST, "--port", str(proxy_port), "--config",
                         str(workdir / "proxy.yaml"), "--log-level", "warning", "--workers", str(args.workers)),
                  log=logs / "concurrency-proxy.log")
    procs = []
    try:
        wait_port(fake_port, fake)
        wait_port(proxy_port, proxy)
        while len(tree(proxy.pid)) <= args.workers and args.workers > 1:  # the supervisor binds the port first
            time.sleep(0.2)
        time.sleep(3 if args.workers > 1 else 0)  # each worker imports and builds the app
        began = time.monotonic()
        timeline = [sample(proxy.pid, fake_port, began)]
        share = [streams // args.clients + (1 if i < streams % args.clients else 0) for i in range(args.clients)]
        procs = [subprocess.Popen(python(__file__, "--client", "--port", str(proxy_port), "--streams", str(n),
                                         "--ramp", str(args.ramp / args.clients), "--window", str(args.window),
                                         "--duration", str(duration)),
                                  stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent)
                 for n in share if n]
        all_open = release = None
        while any(p.poll() is None for p in procs) and time.monotonic() - began < duration + 30:
            time.sleep(1)
            point = sample(proxy.pid, fake_port, began)
            timeline.append(point)
            if all_open is None and (point.get("upstream_silent", 0) >= streams or point["t"] > args.open_timeout):
                all_open = point["t"]
                print(f"t={all_open:6.1f}s  {point.get('upstream_silent')} streams open: holding the silence "
                      f"for {args.silent:g} s", flush=True)
            if release is None and all_open is not None and point["t"] >= all_open + args.silent:
                release = point["t"]
                held = http_json(fake_port, "/bench/release", {})["released"]
                print(f"t={release:6.1f}s  released {held} silent streams", flush=True)
            if len(timeline) % 5 == 0:
                print(f"t={point['t']:6.1f}s  proxy RSS {point['VmRSS'] / 1024:7.1f} MiB  fds {point['fds']:6}  "
                      f"upstream open {point.get('upstream_open', '?')} (silent {point.get('upstream_silent', '?')})",
                      flush=True)
        results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
        time.sleep(3)
        after = sample(proxy.pid, fake_port, began)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        stop(proxy)
        stop(fake)
    lost: dict[str, int] = {}
    beats = []
    for result in results:
        beats += result["heartbeats"]
        for reason, count in result["lost"].items():
            lost[reason] = lost.get(reason, 0) + count
    base, peak = timeline[0], max(timeline, key=lambda point: point["VmRSS"])
    expected = math.floor(args.silent / args.heartbeat) - 1
    held_points = [point for point in timeline if all_open is not None and all_open <= point["t"] <= (release or 0)]
    return {
        "seconds_to_open_all": all_open, "streams_open_during_hold_min": min(
            (point.get("upstream_silent", 0) for point in held_points), default=0),
        "requested_streams": args.streams, "streams": streams, "proxy_workers": args.workers,
        "fd_hard_limit": hard, "silent_s": args.silent,
        "heartbeat_s": args.heartbeat, "ramp_per_s": args.ramp, "client_processes": len(procs),
        "lost": sum(lost.values()), "lost_reasons": lost,
        "heartbeats_total": sum(beats), "heartbeats_min": min(beats), "heartbeats_max": max(beats),
        "heartbeats_mean": sum(beats) / len(beats), "streams_below_expected_heartbeats": sum(b < expected for b in beats),
        "expected_heartbeats_at_least": expected,
        "rss_idle_mib": base["VmRSS"] / 1024, "rss_peak_mib": peak["VmRSS"] / 1024, "hwm_mib": after["VmHWM"] / 1024,
        "rss_after_mib": after["VmRSS"] / 1024, "rss_per_stream_kib": (peak["VmRSS"] - base["VmRSS"]) / streams,
        "fds_idle": base["fds"], "fds_peak": max(point["fds"] for point in timeline), "fds_after": after["fds"],
        "upstream_open_after": after.get("upstream_open"), "timeline": timeline,
    }


def report(data: dict) -> str:
    lines = [
        f"| time to open them all | {data['seconds_to_open_all']} s (at least {data['streams_open_during_hold_min']:,} "
        f"open through the hold) |",
        f"| streams held | {data['streams']:,} (asked {data['requested_streams']:,}; fd hard limit {data['fd_hard_limit']:,} "
        f"per process; {data['proxy_workers']} proxy worker(s)) |",
        f"| silence / heartbeat interval | {data['silent_s']:g} s / {data['heartbeat_s']:g} s |",
        f"| streams lost | {data['lost']} {data['lost_reasons'] or ''} |",
        f"| heartbeats delivered | {data['heartbeats_total']:,} (per stream min {data['heartbeats_min']}, "
        f"mean {data['heartbeats_mean']:.1f}, max {data['heartbeats_max']}; "
        f"{data['streams_below_expected_heartbeats']} streams got fewer than {data['expected_heartbeats_at_least']}) |",
        f"| proxy RSS idle / peak / after | {data['rss_idle_mib']:.0f} / {data['rss_peak_mib']:.0f} / "
        f"{data['rss_after_mib']:.0f} MiB (VmHWM {data['hwm_mib']:.0f} MiB) |",
        f"| RSS per held stream | {data['rss_per_stream_kib']:.1f} KiB |",
        f"| proxy fds idle / peak / after | {data['fds_idle']} / {data['fds_peak']:,} / {data['fds_after']} |",
        f"| upstream connections still open after | {data['upstream_open_after']} |",
    ]
    return "| measure | value |\n|---|---|\n" + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--silent", type=float, default=60.0,
                        help="seconds the silence is held once every stream is open")
    parser.add_argument("--heartbeat", type=float, default=5.0, help="the proxy's stream.heartbeat_interval")
    parser.add_argument("--ramp", type=float, default=1000.0, help="at most this many new streams per second")
    parser.add_argument("--window", type=int, default=64, help="streams connecting at once, per client process")
    parser.add_argument("--open-timeout", type=float, default=300.0, help="seconds allowed to open every stream")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--workers", type=int, default=1, help="proxy worker processes")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds allowed for the answers after the silence")
    parser.add_argument("--name", help="results file name (default: concurrency-<time>)")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        raise_fd_limit()
        print(json.dumps(uvloop.run(clients(args.port, args.streams, args.ramp, args.window, args.duration))))
        return
    data = run(args)
    path = RESULTS / f"{args.name or time.strftime('concurrency-%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=1))
    print(f"\nresults: {path}\n")
    print(report(data))


if __name__ == "__main__":
    main()
