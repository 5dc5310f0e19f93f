"""Durability: unfinished deliveries resume at start(), also after a SIGKILL (at-least-once)."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
from pathlib import Path

from mnemo_events.config import RetryConfig
from mnemo_events.event import Event
from mnemo_events.webhook_manager import WebhookManager
from mnemo_events.webhooks.models import Delivery, DeliveryStatus
from tests.helpers.receiver import Receiver, Reply, eventually

CHILD = Path(__file__).parent.parent / "helpers" / "crash_child.py"
RETRY = RetryConfig(max_attempts=50, base_delay_seconds=0.02, max_delay_seconds=0.05)


def _manager(tmp_path: Path, **settings: object) -> WebhookManager:
    return WebhookManager(
        tmp_path / "webhooks.json",
        delivery_store_path=tmp_path / "deliveries.sqlite3",
        allow_private_networks=True,
        **settings,  # type: ignore[arg-type]
    )


def _open_ids(store: Path) -> set[str]:
    conn = sqlite3.connect(store)
    try:
        rows = conn.execute(
            "SELECT id FROM deliveries WHERE status IN ('pending', 'retrying')"
        ).fetchall()
    finally:
        conn.close()
    return {row[0] for row in rows}


class TestResume:
    async def test_retrying_deliveries_resume_on_the_next_start(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """Deliveries still retrying at stop() are sent by the next manager, same ids, with
        attempt numbers that keep counting."""
        receiver.script("/hook", then=Reply(500))
        async with _manager(tmp_path) as first:
            hook = await first.register_webhook(receiver.url(), ["memory.*"], retry_config=RETRY)
            for n in range(3):
                first.deliver(Event.create("memory.created", {"n": n}))
            await receiver.wait_for(6)
        waiting = _open_ids(tmp_path / "deliveries.sqlite3")
        assert len(waiting) == 3
        receiver.script("/hook", then=Reply(200))
        seen = len(receiver.requests)
        async with _manager(tmp_path) as second:
            await eventually(lambda: second.get_metrics()["deliveries"]["success"] == 3)
            history = await second.get_delivery_history(hook.id, status="success")
        after = receiver.requests[seen:]
        assert {r.delivery_id for r in after} == waiting
        assert {d.id for d in history} == waiting
        assert all(r.attempt >= 2 for r in after)

    async def test_attempts_cut_by_stop_are_resent(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """An attempt still running when stop_timeout runs out is cancelled, stays pending,
        and is sent again by the next start."""
        gate = asyncio.Event()
        receiver.script("/hook", Reply(gate=gate))
        try:
            async with _manager(tmp_path, stop_timeout=0.05) as first:
                await first.register_webhook(receiver.url(), ["memory.*"], retry_config=RETRY)
                first.deliver(Event.create("memory.created", {"n": 1}))
                await receiver.wait_for(1)
        finally:
            gate.set()
        (pending,) = _open_ids(tmp_path / "deliveries.sqlite3")
        async with _manager(tmp_path) as second:
            await receiver.wait_for(2)
            delivery = await _eventually_status(second, pending, DeliveryStatus.SUCCESS)
        assert receiver.requests[1].delivery_id == pending
        assert delivery.attempts == 1

    async def test_deliveries_of_a_removed_webhook_fail_at_start(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """Unfinished deliveries whose webhook is gone are marked failed, not sent."""
        receiver.script("/hook", then=Reply(500))
        async with _manager(tmp_path) as first:
            hook = await first.register_webhook(receiver.url(), ["memory.*"], retry_config=RETRY)
            first.deliver(Event.create("memory.created", {"n": 1}))
            await receiver.wait_for(2)
        (orphan,) = _open_ids(tmp_path / "deliveries.sqlite3")
        offline = _manager(tmp_path)
        await offline.delete_webhook(hook.id)
        seen = len(receiver.requests)
        async with _manager(tmp_path) as second:
            delivery = await _eventually_status(second, orphan, DeliveryStatus.FAILED)
        assert delivery.last_error == "webhook no longer registered"
        assert len(receiver.requests) == seen


async def _eventually_status(
    wm: WebhookManager, delivery_id: str, status: DeliveryStatus
) -> Delivery:
    async def _check() -> Delivery | None:
        delivery = await wm.get_delivery(delivery_id)
        return delivery if delivery.status is status else None

    found: Delivery = await eventually(_check)
    return found


class TestCrash:
    async def test_sigkill_while_deliveries_are_pending_loses_nothing(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """A process killed with SIGKILL mid-retry: a new manager on the same files delivers
        every recorded delivery id at least once, each event included."""
        count = 20
        receiver.script("/hook", then=Reply(503))
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            str(tmp_path / "webhooks.json"),
            str(tmp_path / "deliveries.sqlite3"),
            receiver.url(),
            str(count),
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert child.stdout is not None
            async with asyncio.timeout(30):
                line = (await child.stdout.readline()).decode()
            assert line.startswith("READY "), line
            hook = json.loads(line.removeprefix("READY "))
            await receiver.wait_for(count + 5)
        finally:
            child.send_signal(signal.SIGKILL)
            await child.wait()
        assert child.returncode == -signal.SIGKILL
        recorded = _open_ids(tmp_path / "deliveries.sqlite3")
        assert len(recorded) == count
        receiver.secrets["/hook"] = hook["secret"]
        receiver.script("/hook", then=Reply(200))
        seen = len(receiver.requests)
        async with _manager(tmp_path) as revived:
            await eventually(lambda: revived.get_metrics()["deliveries"]["success"] == count)
        after = receiver.requests[seen:]
        assert {r.delivery_id for r in after} == recorded
        assert all(r.stripe_ok for r in after)
        events = {json.loads(r.body)["data"]["memory_id"] for r in after}
        assert events == {f"m{n}" for n in range(count)}
        assert _open_ids(tmp_path / "deliveries.sqlite3") == set()
