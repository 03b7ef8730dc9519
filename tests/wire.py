"""Helpers for tests that talk to the proxy below the SDK: raw sockets, SSE bodies, outcomes."""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import httpx

from spec_check import check_chat_chunk, check_chat_completion, check_error_body, check_stream_event

MESSAGES = [{"role": "user", "content": "Hi"}]


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def raw_exchange(url: str, request: bytes, timeout: float = 10) -> tuple[bytes, bytes]:
    """Send raw bytes, read until the server closes; returns (head, body).

    The request should say ``Connection: close``. A chunked body is returned de-chunked.
    """
    data = bytearray()
    deadline = time.monotonic() + timeout
    with socket.create_connection(address(url), timeout=timeout) as conn:
        conn.sendall(request)
        while time.monotonic() < deadline:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    return head, body


def dechunk(body: bytes) -> bytes:
    out, position = bytearray(), 0
    while position < len(body):
        line_end = body.index(b"\r\n", position)
        size = int(body[position:line_end].split(b";")[0], 16)
        if size == 0:
            break
        out += body[line_end + 2:line_end + 2 + size]
        position = line_end + 2 + size + 2
    return bytes(out)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def sse_payloads(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [line[6:] for line in text.split("\n") if line.startswith("data: ")]


# One client for all: building an httpx client (its TLS context) costs more than a loopback request.
http = httpx.Client(timeout=30)


def responses_events(text: str) -> list[dict[str, Any]]:
    """The Responses events of an SSE body, each checked: its ``event:`` name is its type, its data fits the spec;
    numbered without gaps (a resumed stream starts after 0)."""
    events = []
    for frame in text.split("\n\n"):
        lines = [line for line in frame.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), frame
        event = json.loads(lines[1][len("data: "):])
        assert event["type"] == lines[0][len("event: "):]
        check_stream_event(event)
        events.append(event)
    numbers = [event["sequence_number"] for event in events]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) if numbers else True
    return events


def post_chat(url: str, body: Any, *, stream: bool | None = None, timeout: float = 30, **kwargs: Any) -> httpx.Response:
    """POST a chat request (``stream`` sets the body's flag) and read the whole answer."""
    if stream is not None:
        body = {**body, "stream": stream}
    return http.post(url + "/v1/chat/completions", json=body, timeout=timeout, **kwargs)


def check_error(response: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """A JSON error answer in OpenAI's shape; returns its ``error`` object."""
    if status is not None:
        assert response.status_code == status, response.text[:500]
    assert response.status_code >= 400
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    check_error_body(body)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def stream_outcome(response: httpx.Response) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Check a chat SSE answer; returns its chunks and its error (None when it ended with [DONE]).

    Exactly one of the two endings: ``[DONE]`` after a finish_reason, or a last
    ``data: {"error": ...}`` frame and no ``[DONE]``.
    """
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(response.text)
    assert payloads, "an empty stream"
    if payloads[-1] == "[DONE]":
        chunks = [json.loads(p) for p in payloads[:-1]]
        error = None
    else:
        chunks = [json.loads(p) for p in payloads[:-1]]
        last = json.loads(payloads[-1])
        check_error_body(last)
        error = last["error"]
        assert isinstance(error["message"], str) and error["message"]
    assert "[DONE]" not in payloads[:-1]
    for chunk in chunks:
        assert "error" not in chunk
        check_chat_chunk(chunk)
    finishes = [c for c in chunks for choice in c["choices"] if choice["finish_reason"]]
    assert len(finishes) == (0 if error else 1), finishes
    return chunks, error


def completion_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    check_chat_completion(body)
    return body


def wait_until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def kernel_queued(*ports: int) -> int:
    """Bytes the kernel holds, written and not yet read, on the established loopback TCP connections on `ports`."""
    wanted, total = {f"{port:04X}" for port in ports}, 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):  # no IPv6
            continue
        with open(table) as rows:
            for row in rows.read().splitlines()[1:]:
                local, remote, state, queues = row.split()[1:5]
                if state == "01" and {local.rsplit(":", 1)[1], remote.rsplit(":", 1)[1]} & wanted:
                    sent, received = queues.split(":")
                    total += int(sent, 16) + int(received, 16)
    return total


def tcp_buffer_maximum(direction: str) -> int:
    """The size up to which the kernel grows a TCP socket's receive (``rmem``) or send (``wmem``) buffer."""
    with open(f"/proc/sys/net/ipv4/tcp_{direction}") as values:
        return int(values.read().split()[2])
