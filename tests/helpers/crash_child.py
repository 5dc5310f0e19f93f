"""The child process of the crash tests (run as a script, killed with SIGKILL).

Usage:

- ``python crash_child.py <webhooks.json> <deliveries.sqlite3> <url> <events>``: registers a
  webhook on ``url``, publishes ``events`` events on a real bus, waits until every delivery
  is recorded in the store, prints ``READY <webhook json>`` and keeps retrying against the
  (failing) receiver until it is killed.
- ``python crash_child.py rounds <webhooks.json> <deliveries.sqlite3> <url> <rounds>
  <per_round> <max_in_flight> <direct|bus>``: registers a webhook, prints ``READY <webhook
  json>``, then for each round hands ``per_round`` events to the manager (``deliver``, or
  ``await bus.publish`` on an attached bus), awaits ``flush()`` and prints ``FLUSHED <round>
  <event ids json>``; then ``DONE``, and waits until it is killed. Every event of a printed
  round has crossed the crash boundary.
"""

from __future__ import annotations

import asyncio
import json
import sys

from mnemo_events.config import RetryConfig
from mnemo_events.event import Event
from mnemo_events.event_bus import EventBus
from mnemo_events.webhook_manager import WebhookManager


async def main(registry: str, store: str, url: str, count: int) -> None:
    """Register, publish, wait for the records, announce, then retry forever."""
    wm = WebhookManager(registry, delivery_store_path=store, allow_private_networks=True)
    retry = RetryConfig(max_attempts=100, base_delay_seconds=0.02, max_delay_seconds=0.1)
    async with EventBus(validation="off") as bus:
        wm.attach(bus)
        await wm.start()
        hook = await wm.register_webhook(url, ["memory.*"], retry_config=retry)
        for n in range(count):
            await bus.publish("memory.created", {"memory_id": f"m{n}"})
        await bus.stop()
        await wm.flush()
        print("READY", json.dumps({"id": hook.id, "secret": hook.secret}), flush=True)
        await asyncio.Event().wait()


async def rounds(
    registry: str,
    store: str,
    url: str,
    count: int,
    per_round: int,
    max_in_flight: int,
    *,
    via_bus: bool,
) -> None:
    """Hand events over in rounds, announcing each round once flush() returned."""
    wm = WebhookManager(
        registry,
        delivery_store_path=store,
        allow_private_networks=True,
        max_in_flight_per_endpoint=max_in_flight,
    )
    retry = RetryConfig(max_attempts=100, base_delay_seconds=0.05, max_delay_seconds=0.1)
    async with EventBus(validation="off") as bus:
        if via_bus:
            wm.attach(bus)
        await wm.start()
        hook = await wm.register_webhook(url, ["memory.*"], retry_config=retry)
        print("READY", json.dumps({"id": hook.id, "secret": hook.secret}), flush=True)
        for number in range(count):
            ids = []
            for n in range(per_round):
                data = {"memory_id": f"r{number}-{n}"}
                if via_bus:
                    ids.append((await bus.publish("memory.created", data)).id)
                else:
                    event = Event.create("memory.created", data)
                    wm.deliver(event)
                    ids.append(event.id)
            await wm.flush()
            print("FLUSHED", number, json.dumps(ids), flush=True)
        print("DONE", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    if sys.argv[1] == "rounds":
        registry, store, url, *numbers, mode = sys.argv[2:]
        count, per_round, max_in_flight = (int(n) for n in numbers)
        asyncio.run(
            rounds(registry, store, url, count, per_round, max_in_flight, via_bus=mode == "bus")
        )
    else:
        asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
