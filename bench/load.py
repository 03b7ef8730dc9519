"""HTTP/1.1 load generator: fixed concurrency, fixed request count (or time cap), closed loop or a fixed rate.

A raw asyncio protocol on uvloop with the httptools parser, one keep-alive
connection per concurrent client, so that the generator costs far less CPU
per request than any server it measures. Each request records its latency
(request written -> last byte), its time to first body byte (for a stream:
the first SSE bytes) and whether the answer was complete (status 200 and
``--expect`` found at the end of the body). With ``--rate`` requests start on
a fixed schedule (open loop, at most ``--concurrency`` in flight) instead of
back to back. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httptools
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import raise_fd_limit  # noqa: E402

TAIL_PIECES = 4


class Exchange(asyncio.Protocol):
    """One keep-alive connection; ``request()`` sends one request and waits for the whole answer."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError(f"connection lost: {exc or 'closed by server'}"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.done is not None and not self.done.done():
                self.done.set_exception(exc)

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self.first_byte == 0:
            self.first_byte = time.perf_counter_ns()
        self.size += len(body)
        self.tail.append(body)
        if len(self.tail) > TAIL_PIECES:
            del self.tail[0]

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def request(self, payload: bytes) -> tuple[int, int, int, bytes, int, bool]:
        """-> (status, ns to first body byte, ns to last byte, tail of the body, body size, keep-alive)."""
        self.done = asyncio.get_running_loop().create_future()
        self.first_byte, self.size, self.tail = 0, 0, []
        start = time.perf_counter_ns()
        self.transport.write(payload)
        await self.done
        end = time.perf_counter_ns()
        first = self.first_byte or end
        return (self.parser.get_status_code(), first - start, end - start, b"".join(self.tail), self.size,
                self.keep_alive)


def build_request(url: str, body: bytes, headers: list[str], api_key: str) -> tuple[str, int, bytes]:
    parsed = httptools.parse_url(url.encode())
    host, port = parsed.host.decode(), parsed.port or 80
    path = parsed.path + (b"?" + parsed.query if parsed.query else b"")
    lines = [b"POST " + path + b" HTTP/1.1", b"host: %s:%d" % (host.encode(), port),
             b"content-type: application/json", b"authorization: Bearer " + api_key.encode(),
             b"content-length: %d" % len(body)]
    lines += [header.encode() for header in headers]
    return host, port, b"\r\n".join(lines) + b"\r\n\r\n" + body


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "max": ordered[-1],
            "mean": sum(ordered) / len(ordered)}


async def run(args: argparse.Namespace) -> dict:
    body = Path(args.body_file).read_bytes() if args.body_file else args.body.encode()
    host, port, payload = build_request(args.url, body, args.header, args.api_key)
    expect = args.expect.encode() if args.expect else b""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    ttfbs: list[float] = []
    errors: dict[str, int] = {}
    state = {"next": 0, "recorded": 0, "bytes": 0}
    total = args.warmup + args.requests
    first_start: list[int] = []
    began = time.perf_counter()
    stop_at = began + args.max_seconds if args.max_seconds else 0.0

    async def client() -> None:
        connection: Exchange | None = None
        while state["next"] < total and (not stop_at or time.perf_counter() < stop_at):
            number = state["next"]
            state["next"] += 1
            if args.rate:
                await asyncio.sleep(began + number / args.rate - time.perf_counter())
            if number == args.warmup:
                first_start.append(time.perf_counter_ns())
            try:
                if connection is None or connection.lost:
                    _, connection = await loop.create_connection(Exchange, host, port)
                status, ttfb, latency, tail, size, keep_alive = await asyncio.wait_for(
                    connection.request(payload), args.timeout)
                if not keep_alive:
                    connection.transport.close()
                    connection = None
                if status != 200:
                    problem = f"HTTP {status}: {tail[:160].decode('utf-8', 'replace')}"
                elif expect and expect not in tail:
                    problem = f"incomplete answer ({size} bytes, ends {tail[-80:]!r})"
                else:
                    problem = None
            except (OSError, asyncio.TimeoutError, httptools.HttpParserError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                if connection is not None:
                    connection.transport.close()
                connection = None
            if number < args.warmup:
                continue
            if problem is not None:
                errors[problem] = errors.get(problem, 0) + 1
                continue
            latencies.append(latency / 1e6)
            ttfbs.append(ttfb / 1e6)
            state["bytes"] += size
        if connection is not None:
            connection.transport.close()

    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(args.concurrency))), args.deadline)
    elapsed = (time.perf_counter_ns() - first_start[0]) / 1e9 if first_start else 0.0
    return {
        "concurrency": args.concurrency, "requests": args.requests, "ok": len(latencies),
        "errors": sum(errors.values()), "error_samples": dict(list(errors.items())[:5]),
        "elapsed_s": elapsed, "rps": len(latencies) / elapsed if elapsed else 0.0,
        "latency_ms": percentiles(latencies), "ttfb_ms": percentiles(ttfbs),
        "mean_body_bytes": state["bytes"] / len(latencies) if latencies else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--body", default="{}", help="JSON request body")
    parser.add_argument("--body-file", help="read the request body from this file")
    parser.add_argument("--api-key", default="sk-bench", help="sent as 'authorization: Bearer KEY'")
    parser.add_argument("--header", action="append", default=[], help="extra 'name: value' header")
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="open loop: start requests at this many per second (default: closed loop)")
    parser.add_argument("-n", "--requests", type=int, default=1000, help="measured requests")
    parser.add_argument("--warmup", type=int, default=None, help="unmeasured requests first (default: concurrency)")
    parser.add_argument("--expect", default="", help="bytes the end of every answer must contain")
    parser.add_argument("--max-seconds", type=float, default=0.0,
                        help="start no new request after this many seconds (slow targets then report fewer requests)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds for the whole run")
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = args.concurrency
    raise_fd_limit()
    print(orjson.dumps(uvloop.run(run(args))).decode())


if __name__ == "__main__":
    main()
