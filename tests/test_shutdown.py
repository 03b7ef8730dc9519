"""Graceful shutdown of the real command-line server: SIGTERM with answers in flight."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from fake_upstream import Hang, Stream, build_response, message_item, stream_events
from proxy.app import GC_YOUNG_THRESHOLD
from servers import proxy_process

MESSAGES = [{"role": "user", "content": "Hi"}]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")


def test_start_up_objects_are_set_aside_from_garbage_collection(make_proxy):
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    with make_proxy():
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0


def start_server(tmp_path, upstream_url, grace):
    config = tmp_path / "config.yaml"
    config.write_text(f"server:\n  shutdown_grace_seconds: {grace}\n"
                      f"upstream:\n  base_url: {upstream_url}\n  api_key: sk-test\n")
    return proxy_process(["--config", str(config), "--log-format", "json"], dict(os.environ),
                         stderr=subprocess.PIPE, seconds=15)


def stream_and_terminate(process, url):
    """Read the first chunk of a stream, send SIGTERM, then read the rest; return (rest, seconds after SIGTERM)."""
    body = {"model": "o3-pro", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as response:
        chunks = response.iter_bytes()
        first = next(chunks)
        process.send_signal(signal.SIGTERM)
        terminated = time.monotonic()
        rest = b"".join(chunks)
    return first + rest, time.monotonic() - terminated


def payloads(raw):
    return [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]


def test_a_stream_that_outlives_the_grace_period_ends_with_an_error_chunk(tmp_path, fake):
    events = stream_events(build_response(None, [message_item("word " * 60)]), text_chunk=5)
    fake.script(Stream(events=events, delay=0.15), Hang(30))
    process, url = start_server(tmp_path, fake.base_url, grace=1)
    try:
        unanswered = {}
        waiting = threading.Thread(target=lambda: unanswered.update(response=httpx.post(
            url + "/v1/chat/completions", json={"model": "o3-pro", "messages": MESSAGES}, timeout=30)))
        body = {"model": "o3-pro", "messages": MESSAGES, "stream": True}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as response:
            chunks = response.iter_bytes()
            raw = next(chunks)
            waiting.start()
            while len(fake.requests) < 2:
                time.sleep(0.01)
            process.send_signal(signal.SIGTERM)
            terminated = time.monotonic()
            raw += b"".join(chunks)
            elapsed = time.monotonic() - terminated
        waiting.join(10)
        assert process.wait(10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    finally:
        process.kill()
    frames = payloads(raw)
    assert "[DONE]" not in frames
    assert json.loads(frames[-1])["error"]["code"] == "server_shutting_down"
    assert json.loads(frames[0])["choices"][0]["delta"]["role"] == "assistant" and len(frames) > 3
    assert 0.9 < elapsed < 5
    assert unanswered["response"].status_code == 503
    assert unanswered["response"].json()["error"]["code"] == "server_shutting_down"
    lines = [json.loads(line) for line in process.stderr.read().decode().splitlines() if line.startswith("{")]
    ended = [(line["status"], line.get("stream")) for line in lines if line.get("error") == "server_shutting_down"]
    assert sorted(ended) == [(200, True), (503, None)], ended  # the stream, and the whole answer it held up


def test_a_stream_that_ends_within_the_grace_period_is_delivered_whole(tmp_path, fake):
    events = stream_events(build_response(None, [message_item("The whole answer.")]), text_chunk=3)
    fake.script(Stream(events=events, delay=0.05))
    process, url = start_server(tmp_path, fake.base_url, grace=10)
    try:
        raw, elapsed = stream_and_terminate(process, url)
        assert process.wait(10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    finally:
        process.kill()
    frames = payloads(raw)
    assert frames[-1] == "[DONE]"
    content = "".join(json.loads(frame)["choices"][0]["delta"].get("content") or ""
                      for frame in frames[:-1] if json.loads(frame).get("choices"))
    assert content == "The whole answer."
    assert elapsed < 5
