"""A 202 from ``POST /events`` means durable (hardening issue, item 8).

Before, ``serve`` answered 202 for 5,000 events and a SIGKILL right after lost 100 to 4,900
of them. Now the 202 comes once every matching delivery is committed to the delivery store,
so a real ``serve`` process killed right after the last 202, and started again on the same
files, delivers every accepted event.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers.receiver import Receiver, eventually
from tests.helpers.served import API_KEY, AUTH, serve_config, start_serve

EVENTS = 5_000
WORKERS = 16


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()


@pytest.mark.slow
async def test_every_accepted_event_survives_sigkill_right_after_the_last_202(
    tmp_path: Path, receiver: Receiver
) -> None:
    """5,000 events posted by 16 concurrent clients, SIGKILL right after the last 202: the
    restarted service has a delivery for every accepted event and delivers each one."""
    config = tmp_path / "config.yaml"
    config.write_text(serve_config(tmp_path, API_KEY), encoding="utf-8")
    proc, url = await start_serve(config, stderr=asyncio.subprocess.DEVNULL)
    accepted: list[str] = []
    try:
        async with aiohttp.ClientSession(url, headers=AUTH) as client:
            hook_body = {"url": receiver.url("/hook"), "events": [">"]}
            async with client.post("/webhooks", json=hook_body) as r:
                assert r.status == 201
                hook = await r.json()
            numbers = iter(range(EVENTS))

            async def _publisher() -> None:
                for n in numbers:
                    event = {"type": "gap.detected", "data": {"gap_id": f"g{n}", "query": "q"}}
                    async with client.post("/events", json=event) as r:
                        assert r.status == 202, await r.text()
                        accepted.append((await r.json())["event"]["id"])

            async with asyncio.timeout(100):
                await asyncio.gather(*(_publisher() for _ in range(WORKERS)))
        await _kill(proc)  # right after the last 202: attempts are still under way
    finally:
        await _kill(proc)
    assert len(accepted) == EVENTS

    proc, url = await start_serve(config, stderr=asyncio.subprocess.DEVNULL)  # the same files
    try:
        async with aiohttp.ClientSession(url, headers=AUTH) as client:

            async def _recorded() -> list[dict[str, Any]] | None:
                path = f"/webhooks/{hook['id']}/deliveries?limit=10000"
                async with client.get(path) as r:
                    found = (await r.json())["deliveries"]
                done = [d for d in found if d["status"] == "success"]
                return found if len(done) >= EVENTS else None

            deliveries = await eventually(_recorded, within=60, every=0.2)
    finally:
        await _kill(proc)
    recorded = {d["event_id"] for d in deliveries}
    assert recorded >= set(accepted)
    delivered = {json.loads(request.body)["id"] for request in receiver.on("/hook")}
    assert delivered >= set(accepted)
