"""Every use of another library's private state, in one place, each pinned by tests/test_library_internals.py.

Each one saves real work on the hot path, or keeps bytes the public API would drop. An upgrade that changes
one fails those tests loudly instead of misbehaving quietly.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp


def histogram_bounds(histogram: Any) -> list[float]:
    """A prometheus_client histogram's bucket bounds, ending in +Inf (it has no public accessor)."""
    return histogram._upper_bounds


def add_observations(series: Any, total: float, buckets: list[int]) -> None:
    """Add many observations to a histogram's series at once: their ``total`` and the count in each bucket
    (prometheus_client observes one value per call)."""
    series._sum.inc(total)
    for index, observed in enumerate(buckets):
        if observed:
            series._buckets[index].inc(observed)


def skip_source_lookup() -> None:
    """Stop :mod:`logging` from walking the stack for the source line of every record (no formatter shows it)."""
    logging._srcfile = None  # type: ignore[attr-defined]


def left_behind(content: aiohttp.StreamReader) -> bytes:
    """Bytes that arrived just before a cut, which aiohttp would drop when it reports the cut.

    A background stream's first events can arrive together with the cut; without them its id is unknown
    and it cannot be resumed.
    """
    buffer = content._buffer
    if not buffer:
        return b""
    data = b"".join(buffer)[content._buffer_offset:]
    buffer.clear()
    return data
