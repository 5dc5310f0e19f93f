"""The child process of the crash-resume test (run as a script, killed with SIGKILL).

Usage: ``python crash_child.py <webhooks.json> <deliveries.sqlite3> <url> <events>``

It registers a webhook on ``url``, publishes ``events`` events on a real bus, waits until every
delivery is recorded in the store, prints ``READY <webhook json>`` and keeps retrying against
the (failing) receiver until it is killed.
"""

from __future__ import annotations

import asyncio
import json
import sys

from mnemo_events.config import RetryConfig
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


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
