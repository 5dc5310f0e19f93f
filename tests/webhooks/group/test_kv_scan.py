"""Tests of the KV scan behind ``list_deliveries``, ``counts`` and ``open_jobs``: a key that
existed when the scan began is listed even when it is rewritten while the scan runs."""

from __future__ import annotations

import asyncio
import time

import pytest
from nats.js import JetStreamContext

from mnemo_events.webhooks._kv_common import open_bucket, scan

pytestmark = pytest.mark.timeout(90)

_KEYS = 400


async def test_keys_rewritten_during_a_scan_are_all_listed(connection: JetStreamContext) -> None:
    """With history 1 a rewrite removes the message the scan's consumer was about to read and
    lands after the scan's end marker; every key still appears exactly once in every scan."""
    kv = await open_bucket(connection, "scanrace", "scan race")
    keys = [f"d.wh.k{i:04d}" for i in range(_KEYS)]
    await asyncio.gather(*(kv.put(key, b"0") for key in keys))
    stop = asyncio.Event()

    async def rewrite() -> int:
        rounds = 0
        while not stop.is_set():
            rounds += 1
            # Newest keys first: the scan reads oldest first, so these are the ones it has
            # not reached yet when they move to the end of the stream.
            await asyncio.gather(*(kv.put(key, str(rounds).encode()) for key in reversed(keys)))
        return rounds

    writer = asyncio.create_task(rewrite())
    try:
        deadline = time.monotonic() + 20.0
        scans = 0
        while scans < 15 and time.monotonic() < deadline:
            listed = [entry.key async for entry in scan(kv, "d.wh.*")]
            scans += 1
            assert sorted(listed) == keys, f"scan {scans}: {_KEYS - len(set(listed))} missing"
    finally:
        stop.set()
        rounds = await writer
    assert scans >= 3
    assert rounds >= 3
