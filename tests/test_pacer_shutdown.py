"""Stopping a Pacer must let its reader finish a shielded cleanup.

An upstream call releases its connection and cancels its background job inside
a shielded scope; a reader cancelled half-way through that would leave the job
running upstream, paid for and unread.
"""

from __future__ import annotations

import asyncio

import anyio

from proxy.pacing import Pacer


async def test_aclose_waits_for_a_shielded_cleanup() -> None:
    cleaned = asyncio.Event()

    async def source():
        yield b"last"
        with anyio.CancelScope(shield=True):  # what an upstream call does when it closes
            await asyncio.sleep(0.05)
            cleaned.set()

    pacer = Pacer(source(), None)
    chunks = aiter(pacer)
    assert await anext(chunks) == b"last"
    await asyncio.sleep(0.01)  # the reader is now inside the cleanup
    await pacer.aclose()
    assert cleaned.is_set()


async def test_aclose_stops_a_reader_waiting_for_data() -> None:
    async def silent():
        yield b"first"
        await asyncio.sleep(60)
        yield b"never"

    pacer = Pacer(silent(), None)
    chunks = aiter(pacer)
    assert await anext(chunks) == b"first"
    async with asyncio.timeout(1):
        await pacer.aclose()
