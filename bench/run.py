"""Run every latency/throughput scenario against every target with one command.

    python bench/run.py [--quick] [--no-litellm] [--targets ...] [--scenarios ...]
    python bench/run.py --report bench/results/NAME.json   # tables of a saved run

Starts the fake upstream, the raw pass-through, the proxy and (when it can be
installed) LiteLLM's proxy, each in its own process, then runs bench/load.py
in yet another process for each scenario, concurrency level and target, the
targets interleaved so that machine noise hits them alike. The targets cover
both directions: chat clients and a Responses upstream, Responses clients and
a chat-only upstream. Writes the raw numbers to bench/results/NAME.json and
prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import BENCH, HOST, ROOT, cpu_seconds, cpu_ticks, free_port, python, start, stop, tree, wait_port  # noqa: E402

sys.path.insert(0, str(ROOT))
from fake_upstream import CHAT_ONLY_MODEL  # noqa: E402
from proxy.translate import chat_to_responses, responses_request_to_chat  # noqa: E402

RESULTS = BENCH / "results"
LITELLM_VENV = ROOT / ".bench-venv-litellm"
LITELLM_KEY = "sk-bench-4f3c2a1b9e8d7c6b5a49382716051f2e"
UPSTREAM_KEY = "sk-bench-upstream"


def chat_body(model: str, stream: bool) -> dict:
    return {"model": model, "stream": stream, "messages": [
        {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
        {"role": "user", "content": "How do I cross the street safely?"},
    ]}


def responses_body(model: str, stream: bool) -> dict:
    """The same request as ``chat_body``, as a Responses client sends it."""
    return {"model": model, "stream": stream, "instructions": "You are a helpful assistant. Answer briefly.",
            "input": "How do I cross the street safely?"}


# A target's request body, by whether it streams.
def chat(model: str) -> Callable[[bool], dict]:
    return lambda stream: chat_body(model, stream)


def responses(model: str) -> Callable[[bool], dict]:
    return lambda stream: responses_body(model, stream)


def sent_upstream_for_chat(model: str) -> Callable[[bool], dict]:
    """Exactly what the proxy sends to a Responses upstream for a chat request to ``model``."""
    return lambda stream: chat_to_responses(chat_body(model, stream)).upstream.body


def sent_upstream_for_responses(model: str) -> Callable[[bool], dict]:
    """Exactly what the proxy sends to a chat upstream for a Responses request to ``model``."""
    return lambda stream: responses_request_to_chat(responses_body(model, stream)).body


# name: (server, path, request body, upstream endpoint it must reach)
TARGETS = {
    # chat clients; o3-pro is served through a Responses upstream
    "direct-responses": ("fake", "/v1/responses", sent_upstream_for_chat("o3-pro"), "responses"),
    "direct-chat": ("fake", "/v1/chat/completions", chat("gpt-4o"), "chat"),
    "raw-responses": ("raw", "/v1/responses", sent_upstream_for_chat("o3-pro"), "responses"),
    "raw-chat": ("raw", "/v1/chat/completions", chat("gpt-4o"), "chat"),
    "raw-httpx-responses": ("rawhttpx", "/v1/responses", sent_upstream_for_chat("o3-pro"), "responses"),
    "proxy-translate": ("proxy", "/v1/chat/completions", chat("o3-pro"), "responses"),
    "proxy-passthrough": ("proxy", "/v1/chat/completions", chat("gpt-4o"), "chat"),
    "litellm-translate": ("litellm", "/v1/chat/completions", chat("o3-pro"), "responses"),
    "litellm-chat": ("litellm", "/v1/chat/completions", chat("gpt-4o"), "chat"),
    # Responses clients; deepseek-reasoner is served through a chat-only upstream, which gives the same answer
    # (reasoning, then text) that the Responses upstream gives
    "direct-chat-reasoner": ("fake", "/v1/chat/completions", sent_upstream_for_responses(CHAT_ONLY_MODEL), "chat"),
    "direct-responses-reasoner": ("fake", "/v1/responses", responses(CHAT_ONLY_MODEL), "responses"),
    "raw-responses-reasoner": ("raw", "/v1/responses", responses(CHAT_ONLY_MODEL), "responses"),
    "proxy-to-chat": ("proxy", "/v1/responses", responses(CHAT_ONLY_MODEL), "chat"),
    "proxy-responses-passthrough": ("proxy", "/v1/responses", responses("gpt-4.1"), "responses"),
    "litellm-to-chat": ("litellm", "/v1/responses", responses(CHAT_ONLY_MODEL), "chat"),
}
CONCURRENCY = (1, 16, 64, 256)
# name: (stream, events, requests per run (full, quick), concurrency levels, open-loop rate, ms between events)
SCENARIOS = {
    "json": (False, 0, (2000, 300), CONCURRENCY, 0, 0),
    "json-paced": (False, 0, (2500, 500), (64,), 250, 0),
    "stream200": (True, 200, (1000, 150), CONCURRENCY, 0, 0),
    "stream2000": (True, 2000, (200, 40), CONCURRENCY, 0, 0),
    # Events one at a time, as a model streams them (the others send a stream in one write).
    "stream40-apart": (True, 40, (512, 128), (16, 64, 256), 0, 20),
}
# Each comparison: (label, ours, baseline).
COMPARISONS = [
    ("translated vs direct", "proxy-translate", "direct-responses"),
    ("translated vs raw pass-through", "proxy-translate", "raw-responses"),
    ("pass-through vs direct", "proxy-passthrough", "direct-chat"),
    ("pass-through vs raw pass-through", "proxy-passthrough", "raw-chat"),
    ("raw pass-through vs direct", "raw-responses", "direct-responses"),
    ("raw pass-through on httpx vs on aiohttp", "raw-httpx-responses", "raw-responses"),
    ("LiteLLM translated vs direct", "litellm-translate", "direct-responses"),
    ("translated vs LiteLLM translated", "proxy-translate", "litellm-translate"),
    ("pass-through vs LiteLLM chat", "proxy-passthrough", "litellm-chat"),
    ("to-chat translated vs direct chat", "proxy-to-chat", "direct-chat-reasoner"),
    ("to-chat translated vs raw Responses pass-through", "proxy-to-chat", "raw-responses-reasoner"),
    ("Responses pass-through vs direct", "proxy-responses-passthrough", "direct-responses-reasoner"),
    ("raw Responses pass-through vs direct", "raw-responses-reasoner", "direct-responses-reasoner"),
    ("LiteLLM to-chat vs direct chat", "litellm-to-chat", "direct-chat-reasoner"),
    ("to-chat translated vs LiteLLM to-chat", "proxy-to-chat", "litellm-to-chat"),
]


def expectation(target: str, stream: bool) -> str:
    answers_responses = TARGETS[target][1].endswith("/responses")
    if stream:
        return "response.completed" if answers_responses else "[DONE]"
    return '"completed"' if answers_responses else '"choices"'


def http_json(port: int, path: str, payload: dict | None = None) -> dict:
    data = json.dumps(payload).encode() if payload is not None else None
    with urllib.request.urlopen(urllib.request.Request(f"http://{HOST}:{port}{path}", data=data), timeout=10) as r:
        return json.loads(r.read())


def ensure_litellm(log: Path) -> Path | None:
    """LiteLLM's CLI from its own venv, installed on first use; None (and why) when it cannot be."""
    executable = LITELLM_VENV / "bin" / "litellm"
    if executable.exists():
        return executable
    print(f"installing LiteLLM into {LITELLM_VENV} (once) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        with open(log, "ab") as out:
            subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "-r",
                            str(BENCH / "requirements-litellm.lock")], check=True, timeout=1200, stdout=out,
                           stderr=subprocess.STDOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"LiteLLM could not be installed ({exc}); its targets are skipped. See {log}.", flush=True)
        return None
    return executable


def start_servers(args: argparse.Namespace, workdir: Path, logs: Path) -> dict[str, tuple[subprocess.Popen, int]]:
    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    ports = {name: free_port() for name in ("fake", "raw", "rawhttpx", "proxy", "litellm")}
    upstream = f"http://{HOST}:{ports['fake']}"
    commands = {
        "fake": python(str(BENCH / "fake_upstream.py"), "--port", str(ports["fake"])),
        "raw": python(str(BENCH / "raw_passthrough.py"), "--port", str(ports["raw"]), "--upstream", upstream),
        "rawhttpx": python(str(BENCH / "raw_passthrough.py"), "--port", str(ports["rawhttpx"]), "--upstream", upstream,
                           "--client", "httpx"),
        "proxy": python("-m", "proxy", "--host", HOST, "--port", str(ports["proxy"]),
                        "--config", str(workdir / "proxy.yaml")),
    }
    (workdir / "proxy.yaml").write_text(proxy_config(upstream))
    env: dict[str, str] = {}
    wanted = {TARGETS[name][0] for name in args.targets}
    if "litellm" in wanted:
        executable = ensure_litellm(logs / "litellm-install.log")
        if executable is not None:
            (workdir / "litellm.yaml").write_text(litellm_config(upstream))
            commands["litellm"] = [str(executable), "--config", str(workdir / "litellm.yaml"), "--host", HOST,
                                   "--port", str(ports["litellm"]), "--num_workers", "1"]
            env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    for name, command in commands.items():
        if name != "fake" and name not in wanted:
            continue
        process = start(command, env=env if name == "litellm" else None, log=logs / f"{name}.log")
        servers[name] = (process, ports[name])
    for name, (process, port) in servers.items():
        wait_port(port, process, timeout=180 if name == "litellm" else 30)
    return servers


def proxy_config(upstream: str) -> str:
    return (f"upstream:\n  base_url: {upstream}/v1\n  api_key: {UPSTREAM_KEY}\n"
            f"models:\n  {CHAT_ONLY_MODEL}:\n    chat_only: true\n")


def litellm_config(upstream: str) -> str:
    """o3-pro is Responses-only in LiteLLM's model map, so its chat requests go to /v1/responses; LiteLLM has no
    Responses API for DeepSeek, so its /v1/responses requests for deepseek-reasoner go through its bridge to
    /v1/chat/completions."""
    return f"""model_list:
  - model_name: o3-pro
    litellm_params:
      model: openai/responses/o3-pro
      api_base: {upstream}/v1
      api_key: {UPSTREAM_KEY}
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: {upstream}/v1
      api_key: {UPSTREAM_KEY}
  - model_name: {CHAT_ONLY_MODEL}
    litellm_params:
      model: deepseek/{CHAT_ONLY_MODEL}
      api_base: {upstream}/v1
      api_key: {UPSTREAM_KEY}
litellm_settings:
  telemetry: false
  drop_params: true
general_settings:
  master_key: {LITELLM_KEY}
"""


def load(port: int, target: str, stream: bool, concurrency: int, requests: int, rate: float, max_seconds: float,
         workdir: Path) -> dict:
    server, path, body, _ = TARGETS[target]
    body_file = workdir / f"{target}-{'stream' if stream else 'json'}.json"
    if not body_file.exists():
        body_file.write_bytes(json.dumps(body(stream)).encode())
    command = python(str(BENCH / "load.py"), f"http://{HOST}:{port}{path}", "--body-file", str(body_file),
                     "-c", str(concurrency), "-n", str(requests), "--expect", expectation(target, stream),
                     "--api-key", LITELLM_KEY if server == "litellm" else "sk-bench", "--deadline", "600",
                     "--max-seconds", str(max_seconds))
    if rate:
        command += ["--rate", str(rate)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=660)
    if done.returncode != 0:
        raise RuntimeError(f"load.py failed for {target}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def run_all(args: argparse.Namespace) -> dict:
    RESULTS.mkdir(exist_ok=True)
    logs = RESULTS / "logs"
    logs.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    servers = start_servers(args, workdir, logs)
    fake_port = servers["fake"][1]
    targets = [name for name in args.targets if TARGETS[name][0] in servers]
    skipped = sorted(set(args.targets) - set(targets))
    if skipped:
        print(f"skipping {', '.join(skipped)}: server not available", flush=True)
    runs = []
    try:
        for scenario in args.scenarios:
            stream, events, counts, levels, rate, gap_ms = SCENARIOS[scenario]
            http_json(fake_port, "/bench/config", {"events": events or 200, "think_ms": 0, "silent_ms": 0,
                                                   "gap_ms": gap_ms})
            for concurrency in levels:
                if concurrency not in args.concurrency:
                    continue
                requests = max(counts[1 if args.quick else 0], 2 * concurrency)
                for target in targets:
                    server_process, port = servers[TARGETS[target][0]]
                    pids = tree(server_process.pid)
                    before_cpu, before = cpu_seconds(pids), http_json(fake_port, "/bench/stats")
                    ticks = cpu_ticks()
                    result = load(port, target, stream, concurrency, requests, rate, args.max_seconds, workdir)
                    all_ticks, steal = (now - then for now, then in zip(cpu_ticks(), ticks))
                    after = http_json(fake_port, "/bench/stats")
                    endpoint = TARGETS[target][3]
                    result.update(
                        scenario=scenario, target=target, events=events, rate=rate, max_seconds=args.max_seconds,
                        server_cpu_us_per_request=(cpu_seconds(pids) - before_cpu) * 1e6 / max(result["ok"], 1),
                        upstream_endpoint_ok=after[endpoint] - before[endpoint] >= result["ok"],
                        steal_pct=100 * steal / max(all_ticks, 1),
                        upstream_connections_per_request=(after["connections"] - before["connections"])
                        / max(result["ok"], 1),
                    )
                    runs.append(result)
                    print(one_line(result), flush=True)
    finally:
        for process, _ in servers.values():
            stop(process)
    return {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": args.quick, "machine": machine(),
            "runs": runs}


def one_line(r: dict) -> str:
    lat, ttfb = r["latency_ms"], r["ttfb_ms"]
    text = (f"{r['scenario']:<11} c={r['concurrency']:<4} {r['target']:<18} {r['rps']:9.1f} req/s  "
            f"p50 {lat.get('p50', 0):8.2f}  p99 {lat.get('p99', 0):8.2f} ms  ttfb p50 {ttfb.get('p50', 0):7.2f} ms  "
            f"cpu {r['server_cpu_us_per_request']:8.0f} us/req  steal {r['steal_pct']:3.0f}%")
    if r["errors"]:
        text += f"  ERRORS {r['errors']}: {r['error_samples']}"
    text += f"  conn/req {r['upstream_connections_per_request']:.2f}"
    if not r["upstream_endpoint_ok"]:
        text += "  WRONG UPSTREAM ENDPOINT"
    return text


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem / 2**20, 1),
            "python": sys.version.split()[0], "kernel": os.uname().release}


# --- report --------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def tables(data: dict) -> str:
    runs = data["runs"]
    index = {(r["scenario"], r["concurrency"], r["target"]): r for r in runs}
    out = []
    for scenario in dict.fromkeys(r["scenario"] for r in runs):
        stream = SCENARIOS[scenario][0]
        rows = [r for r in runs if r["scenario"] == scenario]
        title = f"### {scenario}" + (f" ({SCENARIOS[scenario][1]:,} events per stream)" if stream else "")
        if rows[0]["rate"]:
            title += f" (open loop, {rows[0]['rate']:g} req/s offered)"
        out += [title, ""]
        header = "| c | target | req/s | p50 ms | p95 ms | p99 ms |"
        header += " TTFB p50 ms | TTFB p99 ms |" if stream else ""
        header += " server CPU us/req | upstream conn/req | requests | errors |"
        out += [header, "|" + "---|" * (header.count("|") - 1)]
        for r in rows:
            lat, ttfb = r["latency_ms"], r["ttfb_ms"]
            if not r["ok"]:
                out.append(f"| {r['concurrency']} | {r['target']} | - | no answer finished within the "
                           f"{r.get('max_seconds', 20):g} s cap (after {r['concurrency']} warm-up requests) |"
                           + " |" * (header.count("|") - 5))
                continue
            line = (f"| {r['concurrency']} | {r['target']} | {_fmt(r['rps'], 0)} | {_fmt(lat.get('p50'))} | "
                    f"{_fmt(lat.get('p95'))} | {_fmt(lat.get('p99'))} |")
            if stream:
                line += f" {_fmt(ttfb.get('p50'))} | {_fmt(ttfb.get('p99'))} |"
            line += (f" {_fmt(r['server_cpu_us_per_request'], 0)} | {_fmt(r['upstream_connections_per_request'])} | "
                     f"{r['ok']:,} | {r['errors']} |")
            out.append(line)
        out.append("")
        out += [f"#### {scenario}: comparisons (same run)", "",
                "| c | comparison | overhead p50 ms | overhead p99 ms |" + (" TTFB overhead p50 ms |" if stream else "")
                + " throughput ratio | latency ratio p50 |",
                "|---|---|---|---|" + ("---|" if stream else "") + "---|---|"]
        for concurrency in dict.fromkeys(r["concurrency"] for r in rows):
            for label, ours, base in COMPARISONS:
                a, b = index.get((scenario, concurrency, ours)), index.get((scenario, concurrency, base))
                if not a or not b or not a["ok"] or not b["ok"]:
                    continue
                line = (f"| {concurrency} | {label} | {_fmt(a['latency_ms']['p50'] - b['latency_ms']['p50'])} | "
                        f"{_fmt(a['latency_ms']['p99'] - b['latency_ms']['p99'])} |")
                if stream:
                    line += f" {_fmt(a['ttfb_ms']['p50'] - b['ttfb_ms']['p50'])} |"
                line += (f" {_fmt(a['rps'] / b['rps'] if b['rps'] else None)} | "
                         f"{_fmt(a['latency_ms']['p50'] / b['latency_ms']['p50'])} |")
                out.append(line)
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests per run")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="time cap per run; slower targets report fewer requests (default 20, quick 5)")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM (no install)")
    parser.add_argument("--targets", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--concurrency", nargs="+", type=int, default=list(CONCURRENCY))
    parser.add_argument("--name", help="results file name (default: run-<time>)")
    parser.add_argument("--report", metavar="JSON", help="print the tables of a saved run and exit")
    args = parser.parse_args()
    if args.report:
        print(tables(json.loads(Path(args.report).read_text())))
        return
    if args.max_seconds is None:
        args.max_seconds = 5.0 if args.quick else 20.0
    if args.no_litellm:
        args.targets = [name for name in args.targets if TARGETS[name][0] != "litellm"]
    data = run_all(args)
    path = RESULTS / f"{args.name or time.strftime('run-%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=1))
    print(f"\nresults: {path.relative_to(ROOT)}\n")
    print(tables(data))


if __name__ == "__main__":
    main()
