"""The private state of other libraries that proxy/library_internals.py uses is still there and still means
what it did: an upgrade that changes it fails here, loudly."""

from __future__ import annotations

import asyncio
import logging
import os
import math
from unittest import mock

import aiohttp
from prometheus_client import CollectorRegistry, Histogram

from proxy import library_internals


def test_a_histograms_bounds_and_many_observations_at_once():
    histogram = Histogram("pinned_seconds", "for the test", buckets=(1, 5), registry=CollectorRegistry())
    assert library_internals.histogram_bounds(histogram) == [1, 5, math.inf]
    one_by_one = Histogram("pinned_one_seconds", "for the test", buckets=(1, 5), registry=CollectorRegistry())
    for value in (0.5, 3, 3, 9):
        one_by_one.observe(value)
    library_internals.add_observations(histogram, 15.5, [1, 2, 1])
    assert [sample for sample in histogram.collect()[0].samples if sample.name != "pinned_seconds_created"] == \
        [sample._replace(name=sample.name.replace("pinned_one", "pinned"))
         for sample in one_by_one.collect()[0].samples if sample.name != "pinned_one_seconds_created"]


def test_logging_source_lookup_can_be_skipped(monkeypatch):
    # As the logging module sets it at import (an earlier test may have switched the lookup off already).
    monkeypatch.setattr(logging, "_srcfile", os.path.normcase(logging.addLevelName.__code__.co_filename))
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("pinned")
    monkeypatch.setattr(logger, "handle", records.append)
    logger.warning("looked up")
    library_internals.skip_source_lookup()
    logger.warning("not looked up")
    assert [(record.pathname, record.lineno) for record in records] == [(__file__, records[0].lineno),
                                                                         ("(unknown file)", 0)]
    assert records[0].lineno > 0


async def test_bytes_buffered_in_a_stream_reader_are_kept():
    reader = aiohttp.StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    reader.feed_data(b"first event")
    reader.feed_data(b", second")
    assert await reader.read(3) == b"fir"
    assert library_internals.left_behind(reader) == b"st event, second"
    assert library_internals.left_behind(reader) == b""
