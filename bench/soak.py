"""Soak test: the real proxy under a steady mix of requests for a fixed time, watched for leaks.

The proxy runs as a subprocess (``python -m proxy --config <tmp yaml>``) in front of the fake
upstream from tests/fake_upstream.py, which runs in this process and picks its behaviour from a
tag in each request (``soak:<kind>``). Requests start at a fixed rate, cycling through a fixed
mix: plain and streamed answers, tool calls, pass-through, upstream failures (500s, 429s, a
failed response, a cut stream), bad requests, and clients that disconnect mid-stream or before
the headers. Everything is on loopback.

It reports requests sent and their outcomes by kind, the proxy's RSS and open file descriptors
over time, and at the end (after a quiet period longer than the upstream's keep-alive timeout)
the connections still open from the proxy to the upstream and the upstream requests still in
progress. It exits non-zero when an outcome was wrong, RSS grew, or something stayed open.

    python bench/soak.py                  # 10 minutes at 10 requests/s
    python bench/soak.py --duration 60 --rate 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fake_upstream import (  # noqa: E402
    FakeUpstream,
    Hang,
    Reply,
    Respond,
    Stream,
    build_response,
    error_body,
    function_call_item,
    message_item,
    reasoning_item,
    running_fake_upstream,
    stream_events,
)

UPSTREAM_KEY = "sk-soak-upstream-key"
ANSWER = "Soak answer, long enough to come in several deltas."
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]

# One cycle of the request mix; each kind appears as often as it is listed.
MIX = (["normal"] * 3 + ["stream"] * 4 + ["tool"] * 2 + ["tool-stream", "passthrough", "passthrough",
       "passthrough-stream", "slow-stream", "fail-500", "rate-limit", "failed-mid", "cut", "bad-request",
       "disconnect-mid", "disconnect-early"])
DISCONNECTING = ("disconnect-mid", "disconnect-early")
_TAG = re.compile(rb"soak:([a-z0-9-]+)")


def _events(request: dict, output: list[dict], **fields: Any) -> list[dict]:
    return stream_events(build_response(request, output, **fields), text_chunk=6)


def upstream_behaviour(kind: str, request: Any):
    """What the fake upstream does for a request of ``kind`` (None: its default answer)."""
    request = request if isinstance(request, dict) else {}
    if kind in ("normal", "stream"):
        return Respond(output=[reasoning_item(["Thinking it over."]), message_item(ANSWER)])
    if kind in ("tool", "tool-stream"):
        return Respond(output=[reasoning_item(["Needs a lookup."]),
                               function_call_item("lookup", {"q": "soak"}, call_id="call_soak")])
    if kind == "slow-stream":
        return Stream(events=_events(request, [message_item(ANSWER)]), delay=0.03)
    if kind == "fail-500":
        return Reply(status=500, json=error_body("Internal error.", type="server_error"))
    if kind == "rate-limit":
        return Reply(status=429, json=error_body("Rate limited.", type="rate_limit_error"), headers={"retry-after": "0"})
    if kind == "failed-mid":
        return Respond(output=[message_item("Half")], status="failed")
    if kind == "cut":
        return Stream(events=_events(request, [message_item(ANSWER * 4)]), cut_after=8)
    if kind == "disconnect-mid":
        return Stream(events=_events(request, [message_item(ANSWER * 20)]), delay=0.02)
    if kind == "disconnect-early":
        return Hang(20)
    return None


class SoakUpstream(FakeUpstream):
    """The fake upstream, choosing each answer from the request's ``soak:<kind>`` tag."""

    async def _scripted(self, ex, r, default) -> None:
        match = _TAG.search(r.body)
        behaviour = upstream_behaviour(match.group(1).decode(), r.json) if match else None
        if behaviour is not None:
            self._script.appendleft(behaviour)  # taken before the base class awaits anything
        await super()._scripted(ex, r, default)


# ---------------------------------------------------------------- the client side


@dataclass
class KindStats:
    sent: int = 0
    ok: int = 0  # the outcome this kind must have (an answer, or the right error)
    wrong: int = 0
    outcomes: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)


def chat_body(kind: str) -> dict[str, Any]:
    model = "gpt-4o" if kind.startswith("passthrough") else "o3-pro"
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": f"soak:{kind} hello"}]}
    if kind.endswith("stream") or kind in ("failed-mid", "cut", "disconnect-mid", "disconnect-early"):
        body["stream"] = True
    if kind.startswith("tool"):
        body["tools"] = TOOLS
    if kind == "bad-request":
        body["messages"] = "not a list"
    return body


def sse_outcome(text: str) -> tuple[str, dict[str, Any]]:
    """("done", folded) for a stream ending in [DONE], ("error", error) for one ending in an error frame."""
    payloads = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    if not payloads:
        return "empty", {}
    if payloads[-1] == "[DONE]":
        content, finishes = [], []
        for payload in payloads[:-1]:
            for choice in json.loads(payload).get("choices") or ():
                content.append(choice["delta"].get("content") or "")
                if choice.get("finish_reason"):
                    finishes.append(choice["finish_reason"])
        return "done", {"content": "".join(content), "finishes": finishes}
    last = json.loads(payloads[-1])
    return ("error", last["error"]) if "error" in last else ("truncated", {})


async def one_request(http: httpx.AsyncClient, url: str, kind: str) -> str:
    """Send one request of ``kind``; returns its outcome label ("ok" or what went wrong)."""
    body = chat_body(kind)
    if kind == "disconnect-early":
        try:
            await http.post(url, json=body, timeout=httpx.Timeout(30, read=0.3))
        except httpx.ReadTimeout:
            return "ok"
        return "answered before the client left"
    if kind == "disconnect-mid":
        async with http.stream("POST", url, json=body) as response:
            async for line in response.aiter_lines():
                if '"content"' in line:
                    return "ok"
        return "no content before the end"
    if not body.get("stream"):
        response = await http.post(url, json=body)
        expected = {"fail-500": 500, "rate-limit": 429, "bad-request": 400}.get(kind, 200)
        if response.status_code != expected:
            return f"status {response.status_code}"
        payload = response.json()
        if expected != 200:
            return "ok" if isinstance(payload.get("error", {}).get("message"), str) else "bad error body"
        message = payload["choices"][0]["message"]
        if kind == "tool":
            return "ok" if payload["choices"][0]["finish_reason"] == "tool_calls" else "no tool call"
        if kind == "passthrough":
            return "ok" if message["content"].startswith("Echo: soak:") else "wrong content"
        return "ok" if message["content"] == ANSWER else "wrong content"
    response = await http.post(url, json=body)
    if response.status_code != 200:
        return f"status {response.status_code}"
    ending, detail = sse_outcome(response.text)
    if kind in ("failed-mid", "cut"):
        return "ok" if ending == "error" else f"stream ended with {ending}"
    if ending != "done":
        return f"stream ended with {ending}: {detail}"
    if kind == "tool-stream":
        return "ok" if detail["finishes"] == ["tool_calls"] else "no tool call"
    if kind == "passthrough-stream":
        return "ok" if detail["content"].startswith("Echo: soak:") else "wrong content"
    return "ok" if detail["content"] == ANSWER and detail["finishes"] == ["stop"] else "wrong content"


# ---------------------------------------------------------------- watching the proxy process


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def connections_to(pid: int, port: int) -> Counter:
    """TCP states of the process's connections to a loopback port (IPv4), e.g. {"ESTABLISHED": 3}."""
    states = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
              "09": "LAST_ACK", "0B": "CLOSING", "02": "SYN_SENT"}
    mine = socket_inodes(pid)
    found: Counter = Counter()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == port and fields[9] in mine:
            found[states.get(fields[3], fields[3])] += 1
    return found


@dataclass
class Sample:
    elapsed: float
    rss_kib: int
    fds: int
    upstream_conns: int
    upstream_active: int
    in_flight: int


def sample(pid: int, port: int, fake: FakeUpstream, started: float, in_flight: int) -> Sample:
    return Sample(round(time.monotonic() - started, 1), rss_kib(pid), len(os.listdir(f"/proc/{pid}/fd")),
                  connections_to(pid, port)["ESTABLISHED"], fake.active, in_flight)


# ---------------------------------------------------------------- running it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_proxy(upstream_url: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "upstream": {"base_url": upstream_url, "api_key": UPSTREAM_KEY, "backoff_initial": 0.01, "backoff_max": 0.05},
        "models": {glob: {"background": False} for glob in ("o3-pro*", "o1-pro*", "gpt-5*-pro*", "*deep-research*")},
    }
    path = workdir / "soak.yaml"
    path.write_text(yaml.safe_dump(config))
    log = open(workdir / "proxy.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "proxy", "--config", str(path), "--log-level", "warning"],
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the proxy exited at start; see {workdir / 'proxy.log'}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the proxy did not start within 20 s")


async def drive(url: str, fake: FakeUpstream, pid: int, upstream_port: int, args: argparse.Namespace
                ) -> tuple[dict[str, KindStats], list[Sample], int]:
    stats: dict[str, KindStats] = defaultdict(KindStats)
    samples: list[Sample] = []
    tasks: set[asyncio.Task] = set()
    skipped = 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    wall_start = time.monotonic()

    async def timed(kind: str) -> None:
        begun = loop.time()
        try:
            outcome = await asyncio.wait_for(one_request(http, url + "/v1/chat/completions", kind), 60)
        except Exception as exc:  # counted as a wrong outcome, with its type
            outcome = f"{type(exc).__name__}: {exc}"[:200]
        record = stats[kind]
        record.outcomes[outcome if outcome == "ok" else outcome[:80]] += 1
        if outcome == "ok":
            record.ok += 1
            record.latencies.append(loop.time() - begun)
        else:
            record.wrong += 1
            if len(record.samples) < 5:
                record.samples.append(outcome)

    limits = httpx.Limits(max_connections=args.max_in_flight, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        sent = 0
        next_sample = 0.0
        while (now := loop.time() - started) < args.duration:
            if now >= next_sample:
                samples.append(sample(pid, upstream_port, fake, wall_start, len(tasks)))
                s = samples[-1]
                print(f"[{s.elapsed:7.1f}s] rss {s.rss_kib / 1024:6.1f} MiB  fds {s.fds:4d}  "
                      f"upstream conns {s.upstream_conns:3d}  upstream active {s.upstream_active:3d}  "
                      f"in flight {s.in_flight:3d}  sent {sent}", file=sys.stderr, flush=True)
                next_sample += args.sample_every
                fake.requests.clear()  # the fake records every request; the soak does not need them
            kind = MIX[sent % len(MIX)]
            if len(tasks) >= args.max_in_flight:
                skipped += 1
            else:
                stats[kind].sent += 1
                task = asyncio.ensure_future(timed(kind))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            sent += 1
            await asyncio.sleep(max(started + sent / args.rate - loop.time(), 0))
        if tasks:
            await asyncio.wait(tasks, timeout=90)
    # Idle keep-alive connections are closed by the upstream after 5 s; anything still open after that leaked.
    await asyncio.sleep(args.quiet)
    samples.append(sample(pid, upstream_port, fake, wall_start, len(tasks)))
    return stats, samples, skipped


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)] if ordered else 0.0


def report(stats: dict[str, KindStats], samples: list[Sample], skipped: int, disconnects: int,
           final_states: Counter, args: argparse.Namespace) -> tuple[str, bool]:
    lines = [f"Duration {args.duration:g} s at {args.rate:g} requests/s (mix of {len(MIX)} per cycle), "
             f"samples every {args.sample_every:g} s.", ""]
    lines += ["| kind | sent | as expected | wrong | p50 s | p99 s |", "|---|---:|---:|---:|---:|---:|"]
    for kind in dict.fromkeys(MIX):
        record = stats[kind]
        lines.append(f"| {kind} | {record.sent} | {record.ok} | {record.wrong} | "
                     f"{statistics.median(record.latencies) if record.latencies else 0:.3f} | "
                     f"{percentile(record.latencies, 0.99):.3f} |")
    total_sent = sum(r.sent for r in stats.values())
    total_wrong = sum(r.wrong for r in stats.values())
    lines += ["", f"Total sent {total_sent}, as expected {total_sent - total_wrong}, wrong {total_wrong}, "
                  f"not sent (in-flight cap) {skipped}."]
    for kind, record in stats.items():
        for text in record.samples:
            lines.append(f"- wrong {kind}: {text}")

    warm = next((s for s in samples if s.elapsed >= min(60.0, args.duration / 5)), samples[0])
    during = [s for s in samples[:-1] if s.elapsed >= warm.elapsed]
    final = samples[-1]
    peak = max(s.rss_kib for s in during) if during else warm.rss_kib
    last_third = [s.rss_kib for s in during[len(during) * 2 // 3:]] or [final.rss_kib]
    middle_third = [s.rss_kib for s in during[len(during) // 3:len(during) * 2 // 3]] or last_third
    growth = (statistics.mean(last_third) - warm.rss_kib) / warm.rss_kib
    # The proxy lets cyclic garbage gather until 50,000 objects before a young collection (GC_YOUNG_THRESHOLD), so
    # RSS rises by a bounded amount first; a leak goes on rising, between the middle and the last third too.
    late_growth = (statistics.mean(last_third) - statistics.mean(middle_third)) / statistics.mean(middle_third)
    disconnecting = sum(stats[kind].sent for kind in DISCONNECTING)
    lines += ["", "| | after warm-up | peak | end of load | after quiet period |", "|---|---:|---:|---:|---:|",
              f"| proxy RSS MiB | {warm.rss_kib / 1024:.1f} | {peak / 1024:.1f} | "
              f"{(during[-1].rss_kib if during else final.rss_kib) / 1024:.1f} | {final.rss_kib / 1024:.1f} |",
              f"| proxy open fds | {warm.fds} | {max(s.fds for s in during) if during else warm.fds} | "
              f"{during[-1].fds if during else final.fds} | {final.fds} |",
              f"| proxy->upstream established | {warm.upstream_conns} | "
              f"{max(s.upstream_conns for s in during) if during else 0} | "
              f"{during[-1].upstream_conns if during else 0} | {final.upstream_conns} |",
              f"| upstream requests in progress | {warm.upstream_active} | "
              f"{max(s.upstream_active for s in during) if during else 0} | "
              f"{during[-1].upstream_active if during else 0} | {final.upstream_active} |",
              "",
              f"RSS change from warm-up to the mean of the last third: {growth * 100:+.1f} %; from the mean of the "
              f"middle third to that of the last: {late_growth * 100:+.1f} %.",
              f"Proxy connections to the upstream after the quiet period: {dict(final_states) or 'none'}.",
              f"Client disconnects sent: {disconnecting}; upstream requests the proxy closed early: {disconnects}.",
              ""]
    checks = {
        "every outcome as expected": total_wrong == 0,
        "RSS settled (the last third under 3 % above the middle third)": late_growth < 0.03,
        "no upstream request left in progress": final.upstream_active == 0,
        "no proxy connection to the upstream left established": final.upstream_conns == 0,
        "fds back to the warm-up level (+5)": final.fds <= warm.fds + 5,
        "every client disconnect closed its upstream request": disconnects >= disconnecting,
    }
    lines += [f"- {'PASS' if passed else 'FAIL'}: {name}" for name, passed in checks.items()]
    lines += ["", "RSS over time (s: MiB): " + ", ".join(f"{s.elapsed:.0f}: {s.rss_kib / 1024:.1f}" for s in samples)]
    return "\n".join(lines), all(checks.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--rate", type=float, default=10, help="requests started per second (default 10)")
    parser.add_argument("--sample-every", type=float, default=10, help="seconds between samples (default 10)")
    parser.add_argument("--quiet", type=float, default=8, help="seconds of quiet before the final sample (default 8)")
    parser.add_argument("--max-in-flight", type=int, default=200, help="requests in flight at most (default 200)")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, running_fake_upstream(SoakUpstream()) as fake:
        upstream_port = int(fake.base_url.split(":")[2].split("/")[0])
        process, url = start_proxy(fake.base_url, Path(tmp))
        try:
            stats, samples, skipped = asyncio.run(drive(url, fake, process.pid, upstream_port, args))
            final_states = connections_to(process.pid, upstream_port)
            alive = process.poll() is None and httpx.get(url + "/healthz", timeout=5).status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        text, passed = report(stats, samples, skipped, fake.disconnects, final_states, args)
        text += f"\n- {'PASS' if alive else 'FAIL'}: the proxy still answers /healthz at the end"
        log = (Path(tmp) / "proxy.log").read_text(errors="replace")
        if "Traceback" in log:
            text += "\n- FAIL: the proxy logged a traceback:\n\n```\n" + log[log.index("Traceback"):][:3000] + "\n```"
            passed = False
        print(text)
        if args.json:
            args.json.write_text(json.dumps({
                "stats": {kind: {"sent": r.sent, "ok": r.ok, "wrong": r.wrong, "outcomes": dict(r.outcomes)}
                          for kind, r in stats.items()},
                "samples": [s.__dict__ for s in samples], "skipped": skipped, "passed": passed and alive,
            }, indent=2))
    return 0 if passed and alive else 1


if __name__ == "__main__":
    raise SystemExit(main())
