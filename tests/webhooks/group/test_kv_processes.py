"""Shared state across real OS processes: registry changes and counter bumps made at the same
time by child processes and this one all land, once each."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from pathlib import Path

import nats
import pytest

from mnemo_events.webhooks._kv_registry import JetStreamWebhookRegistry
from mnemo_events.webhooks._kv_store import JetStreamDeliveryStore
from mnemo_events.webhooks.models import Webhook
from tests.helpers.nats import NatsServer

pytestmark = pytest.mark.timeout(120)

_ROOT = Path(__file__).resolve().parents[3]
_ROUNDS = 25
_CHILD = f"""
import asyncio, dataclasses, sys
import nats
from mnemo_events.webhooks._kv_registry import JetStreamWebhookRegistry
from mnemo_events.webhooks._kv_store import JetStreamDeliveryStore

def bump(w):
    return dataclasses.replace(w, description=str(int(w.description or 0) + 1))

async def main(url):
    nc = await nats.connect(url)
    js = nc.jetstream(timeout=10.0)
    registry = await JetStreamWebhookRegistry.open(js)
    store = JetStreamDeliveryStore(js)
    await store.open()
    print("READY", flush=True)
    sys.stdin.readline()  # the parent starts every process at once
    for n in range({_ROUNDS}):
        await registry.change("wh_1", bump)
        await store.bump_state("wh_1", success=False, at=float(n))
    await store.close()
    await registry.close()
    await nc.close()

asyncio.run(main(sys.argv[1]))
"""


async def test_changes_and_bumps_from_three_processes_all_land(server: NatsServer) -> None:
    """Two child processes and this one each change one webhook 25 times (read-modify-write
    of its description) and bump its failure counter 25 times, all at once: the webhook ends
    at 75 and the counter at exactly 75, as every process reads them."""
    nc = await nats.connect(server.url)
    js = nc.jetstream(timeout=10.0)
    registry = await JetStreamWebhookRegistry.open(js)
    store = JetStreamDeliveryStore(js)
    await store.open()
    children: list[asyncio.subprocess.Process] = []
    try:
        await registry.put(
            Webhook(id="wh_1", url="https://hooks.example.com/1", events=(">",), secret="whsec_x")
        )
        for _ in range(2):
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _CHILD,
                server.url,
                cwd=_ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            children.append(child)
        for child in children:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            assert line.strip() == b"READY"
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()

        def _bump(webhook: Webhook) -> Webhook:
            return dataclasses.replace(webhook, description=str(int(webhook.description or 0) + 1))

        for n in range(_ROUNDS):
            await registry.change("wh_1", _bump)
            await store.bump_state("wh_1", success=False, at=float(n))
        codes = [await asyncio.wait_for(child.wait(), 60) for child in children]
        assert codes == [0, 0]
        deadline = time.monotonic() + 10
        while registry.get("wh_1").description != str(3 * _ROUNDS):
            assert time.monotonic() < deadline, registry.get("wh_1").description
            await asyncio.sleep(0.05)
        assert (await store.states())["wh_1"].consecutive_failures == 3 * _ROUNDS
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
        await store.close()
        await registry.close()
        await nc.close()
