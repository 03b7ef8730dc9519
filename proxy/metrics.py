"""Prometheus metrics, served at ``GET /metrics``.

Most series are counted once per request from its :class:`~proxy.logs.RequestLog`
(:func:`observe`); events inside a request that the log does not hold are
counted where they happen (heartbeats; streams and background jobs as they
start and end, a gauge's count going up and down).

Values live in the process. When ``PROMETHEUS_MULTIPROC_DIR`` is set (the
command line sets it for ``--workers N``), every worker writes there and
``/metrics`` adds them up, whichever worker answers.

Every series is counted with :func:`count` and :func:`measure`: in one
process they are tallied in plain numbers and added to the Prometheus series
when ``/metrics`` is read (the client library takes a lock and makes several
calls per increment; a request counts eight to ten things, and tallying took
2.4% off a translated request's instructions).
"""

from __future__ import annotations

import os
from bisect import bisect_left
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from .library_internals import add_observations, histogram_bounds

# Reasoning models answer in seconds to many minutes.
_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)

REQUESTS = Counter("proxy_requests", "Client requests answered, by model, mode and HTTP status.",
                   ["model", "mode", "status"])
REQUEST_ERRORS = Counter("proxy_request_errors", "Requests that ended in an error (also after a 200 stream began), "
                         "by error code.", ["mode", "code"])
REQUEST_DURATION = Histogram("proxy_request_duration_seconds", "Time from request to the end of the answer.",
                             ["mode"], buckets=_SECONDS)
TIME_TO_FIRST_BYTE = Histogram("proxy_time_to_first_byte_seconds",
                               "Time from request to the first byte of the answer's body.", ["mode"], buckets=_SECONDS)
UPSTREAM_LATENCY = Histogram("proxy_upstream_latency_seconds",
                             "Time from sending a request upstream to its status and headers.", ["upstream"],
                             buckets=_SECONDS)
UPSTREAM_RESPONSES = Counter("proxy_upstream_responses", "Upstream answers, by upstream and HTTP status.",
                             ["upstream", "status"])
UPSTREAM_KEY_RESTS = Counter("proxy_upstream_key_rests", "Upstream keys left out of the rotation after 401/429.",
                             ["upstream", "status"])
TOKENS = Counter("proxy_tokens", "Tokens reported by the upstream, by model and kind (prompt, completion, "
                 "reasoning).", ["model", "kind"])
RETRIES = Counter("proxy_upstream_retries", "Upstream attempts repeated after a failure.", ["upstream"])
FALLBACKS = Counter("proxy_fallbacks", "Requests answered by a fallback model.", ["model", "fallback"])
HEARTBEATS = Counter("proxy_heartbeats", "Keep-alive comments sent during silent streams.")
CLIENT_DISCONNECTS = Counter("proxy_client_disconnects", "Clients that left before their answer ended.", ["mode"])
ACTIVE_STREAMS = Gauge("proxy_active_streams", "Event streams being sent to clients.", ["mode"],
                       multiprocess_mode="livesum")
RUNS_REATTACHED = Counter("proxy_runs_reattached", "Requests that followed a background run a client had left "
                          "(a retry within background.reattach_window, or the same Idempotency-Key).")
RUNS_CANCELLED_AFTER_WINDOW = Counter("proxy_runs_cancelled_after_window", "Background runs cancelled because no "
                                      "client came back within background.reattach_window.")
RUNS_EVICTED = Counter("proxy_runs_evicted", "Background runs kept for a retry that were let go of early (cancelled "
                       "unless a client elsewhere followed them) to make room: background.max_kept_runs.")
BACKGROUND_JOBS = Gauge("proxy_background_jobs", "Background responses being polled or streamed.",
                        multiprocess_mode="livesum")


class Labels:
    """Label values that clients choose (model names), bounded in number and length: a series per value is kept
    for good, so a value longer than ``chars``, or new once ``most`` are known, is counted as ``other``."""

    def __init__(self, most: int, chars: int) -> None:
        self.most = most
        self.chars = chars
        self._known: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if not value:
            return "none"
        if value in self._known:
            return value
        if len(value) > self.chars or len(self._known) >= self.most:
            return "other"
        self._known.add(value)
        return value


MAX_MODEL_LABELS = 200
MAX_LABEL_CHARS = 128
model_label = Labels(MAX_MODEL_LABELS, MAX_LABEL_CHARS)
# Error codes come from the upstream's answers: bounded the same way.
error_label = Labels(100, MAX_LABEL_CHARS)


def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)`` (the metric itself when it has none), remembered: the client library validates
    and locks on every call."""
    key = (metric, labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels) if labels else metric
    return found


_children: dict[tuple[Any, tuple[str, ...]], Any] = {}

# With several workers each increment must reach the shared files at once, for whichever worker renders.
_TALLIED = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
_counts: dict[tuple[Any, tuple[str, ...]], float] = {}
# Per series: the sum of its values, the count in each bucket, the buckets' upper bounds.
_measures: dict[tuple[Any, tuple[str, ...]], tuple[list[float], list[int], list[float]]] = {}


def count(metric: Any, *labels: str, amount: float = 1) -> None:
    """``child(metric, *labels).inc(amount)``, by the time ``/metrics`` is read (a gauge's amount may be negative)."""
    if not _TALLIED:
        child(metric, *labels).inc(amount)
        return
    key = (metric, labels)
    _counts[key] = _counts.get(key, 0) + amount


def measure(histogram: Any, *labels: str, value: float) -> None:
    """``child(histogram, *labels).observe(value)``, by the time ``/metrics`` is read."""
    if not _TALLIED:
        child(histogram, *labels).observe(value)
        return
    _add(_measured(histogram, labels), value)


def _measured(histogram: Any, labels: tuple[str, ...]) -> tuple[list[float], list[int], list[float]]:
    """The tally of one histogram series."""
    key = (histogram, labels)
    tally = _measures.get(key)
    if tally is None:
        bounds = histogram_bounds(histogram)  # looked up once per series
        tally = _measures[key] = ([0.0], [0] * len(bounds), bounds)
    return tally


def _add(tally: tuple[list[float], list[int], list[float]], value: float) -> None:
    tally[0][0] += value
    tally[1][bisect_left(tally[2], value)] += 1  # the first bucket whose bound is >= value


def flush() -> None:
    """Add what was tallied since the last time to the Prometheus series."""
    for labels, (requests, prompt, completion, reasoning, retries, _, _) in _finished.items():
        _count_finished(labels, requests, prompt, completion, reasoning, retries)
    for (metric, labels), amount in _counts.items():
        child(metric, *labels).inc(amount)
    for (histogram, labels), ((total,), buckets, _) in _measures.items():
        add_observations(child(histogram, *labels), total, buckets)
    _counts.clear()
    _measures.clear()
    _finished.clear()


def observe(record: Any) -> None:
    """Count one finished request from its :class:`~proxy.logs.RequestLog`.

    In one process, requests with the same labels are tallied together, in one step per request (counting
    each of their series one by one took 1.5% of a translated request's instructions)."""
    mode = record.mode or "none"
    labels = (model_label(record.model), mode, record.status or 0, error_label(record.error) if record.error else None,
              (record.upstream or "none") if record.retries else None,
              model_label(record.fallback) if record.fallback else None, record.client_disconnected)
    prompt, completion, reasoning = record.prompt_tokens or 0, record.completion_tokens or 0, record.reasoning_tokens or 0
    if not _TALLIED:
        _count_finished(labels, 1, prompt, completion, reasoning, record.retries)
        if record.duration is not None:
            child(REQUEST_DURATION, mode).observe(record.duration)
        if record.ttfb is not None:
            child(TIME_TO_FIRST_BYTE, mode).observe(record.ttfb)
        return
    tally = _finished.get(labels)
    if tally is None:
        tally = _finished[labels] = [0, 0, 0, 0, 0, _measured(REQUEST_DURATION, (mode,)),
                                     _measured(TIME_TO_FIRST_BYTE, (mode,))]
    tally[0] += 1
    tally[1] += prompt
    tally[2] += completion
    tally[3] += reasoning
    tally[4] += record.retries
    if record.duration is not None:
        _add(tally[5], record.duration)
    if record.ttfb is not None:
        _add(tally[6], record.ttfb)


# Finished requests by their labels (see observe): how many, their tokens and retries, and the tallies of their
# mode's two histograms (cleared with them).
_finished: dict[tuple[Any, ...], list[Any]] = {}


def _count_finished(labels: tuple[Any, ...], requests: int, prompt: int, completion: int, reasoning: int,
                    retries: int) -> None:
    """Add ``requests`` finished requests with the same ``labels`` (see :func:`observe`) to their series."""
    model, mode, status, error, upstream, fallback, client_disconnected = labels
    child(REQUESTS, model, mode, str(status)).inc(requests)
    if error is not None:
        child(REQUEST_ERRORS, mode, error).inc(requests)
    for kind, amount in (("prompt", prompt), ("completion", completion), ("reasoning", reasoning)):
        if amount:
            child(TOKENS, model, kind).inc(amount)
    if retries:
        child(RETRIES, upstream).inc(retries)
    if fallback is not None:
        child(FALLBACKS, model, fallback).inc(requests)
    if client_disconnected:
        child(CLIENT_DISCONNECTS, mode).inc(requests)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type (all workers' values in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    flush()
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
