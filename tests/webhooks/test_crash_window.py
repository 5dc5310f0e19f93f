"""The crash boundary: every event whose ``flush()`` returned survives a SIGKILL at any moment.

A real child process hands events to its manager in rounds and announces each round once
``flush()`` returned; the test kills it with SIGKILL at several moments (before the first
attempt of most deliveries, in the middle of the next round, in the middle of retries), then
a manager on the same files must attempt every announced delivery, with the id recorded
before the crash.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnemo_events.event_bus import EventBus
from mnemo_events.webhook_manager import WebhookManager
from tests.helpers.receiver import Receiver, Reply, eventually

CHILD = Path(__file__).parent.parent / "helpers" / "crash_child.py"


@dataclass(frozen=True)
class Moment:
    """When the child is killed, and what the receiver does until then."""

    rounds: int
    per_round: int
    max_in_flight: int
    kill_after_round: int
    """Kill right after reading ``FLUSHED <this round>``."""
    hang: bool
    """The receiver never answers (attempts stay in flight), else it answers 503."""
    requests_before_kill: int = 0
    """With 503s: also wait for this many requests (retries under way) before killing."""
    via_bus: bool = False
    """Events are published on an attached bus (``await bus.publish``) instead of handed
    to ``deliver``."""


MOMENTS = {
    "before-first-attempts": Moment(1, 50, 1, 0, hang=True),
    "mid-publish": Moment(40, 25, 2, 3, hang=True),
    "mid-retries": Moment(5, 20, 4, 4, hang=False, requests_before_kill=150),
    "via-bus-before-first-attempts": Moment(1, 50, 1, 0, hang=True, via_bus=True),
    "via-bus-mid-publish": Moment(40, 25, 2, 2, hang=True, via_bus=True),
}


def _recorded(store: Path) -> dict[str, tuple[str, str]]:
    """Event id -> (delivery id, status) of every delivery in the store file."""
    conn = sqlite3.connect(store)
    try:
        rows = conn.execute("SELECT event_id, id, status FROM deliveries").fetchall()
    finally:
        conn.close()
    return {event_id: (delivery_id, status) for event_id, delivery_id, status in rows}


async def _run_child(
    tmp_path: Path, receiver: Receiver, moment: Moment
) -> tuple[dict[str, str], set[str]]:
    """Run the child until the moment, kill it; its webhook and the announced event ids."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        "rounds",
        str(tmp_path / "webhooks.json"),
        str(tmp_path / "deliveries.sqlite3"),
        receiver.url(),
        str(moment.rounds),
        str(moment.per_round),
        str(moment.max_in_flight),
        "bus" if moment.via_bus else "direct",
        stdout=asyncio.subprocess.PIPE,
    )
    flushed: set[str] = set()
    try:
        assert child.stdout is not None
        async with asyncio.timeout(30):
            line = (await child.stdout.readline()).decode()
            assert line.startswith("READY "), line
            hook = json.loads(line.removeprefix("READY "))
            while True:
                line = (await child.stdout.readline()).decode()
                assert line.startswith("FLUSHED "), line
                _, number, ids = line.split(" ", 2)
                flushed.update(json.loads(ids))
                if int(number) == moment.kill_after_round:
                    break
            if moment.requests_before_kill:
                await receiver.wait_for(moment.requests_before_kill)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    return hook, flushed


@pytest.mark.parametrize("moment", list(MOMENTS.values()), ids=list(MOMENTS))
async def test_every_flushed_delivery_survives_sigkill(
    tmp_path: Path, receiver: Receiver, moment: Moment
) -> None:
    """After SIGKILL, every delivery whose flush() returned is in the store, unfinished, and
    the next manager attempts each one with the same delivery id and the event's body; no
    attempt went out before its delivery was recorded."""
    gate = asyncio.Event()
    receiver.script("/hook", then=Reply(gate=gate) if moment.hang else Reply(503))
    try:
        hook, flushed = await _run_child(tmp_path, receiver, moment)
        before = len(receiver.requests)
        if moment.hang:  # the window: recorded, and most never attempted before the kill
            assert before <= moment.max_in_flight
        recorded = _recorded(tmp_path / "deliveries.sqlite3")
        assert len(flushed) == (moment.kill_after_round + 1) * moment.per_round
        assert flushed <= set(recorded)
        assert {recorded[e][1] for e in flushed} <= {"pending", "retrying"}
        # Committed before its first attempt: nothing reached the receiver unrecorded.
        assert {r.delivery_id for r in receiver.requests[:before]} <= {
            delivery_id for delivery_id, _ in recorded.values()
        }
        receiver.secrets["/hook"] = hook["secret"]
        receiver.script("/hook", then=Reply(200))
        revived = WebhookManager(
            tmp_path / "webhooks.json",
            delivery_store_path=tmp_path / "deliveries.sqlite3",
            allow_private_networks=True,
        )
        async with revived:

            def _all_sent() -> bool:
                sent = {r.delivery_id for r in receiver.requests[before:]}
                return {recorded[e][0] for e in flushed} <= sent

            await eventually(_all_sent, within=30)
            await revived.flush()
    finally:
        gate.set()
    after = receiver.requests[before:]
    by_delivery = {r.delivery_id: r for r in after}
    for event_id in flushed:
        request = by_delivery[recorded[event_id][0]]
        assert json.loads(request.body)["id"] == event_id
        assert request.stripe_ok is True


async def test_publish_then_flush_is_durable(tmp_path: Path, receiver: Receiver) -> None:
    """``await bus.publish(...); await wm.flush()``: the delivery row is committed in the
    store file (read by another connection) though the receiver has not answered yet."""
    gate = asyncio.Event()
    receiver.script("/hook", then=Reply(gate=gate))
    store = tmp_path / "deliveries.sqlite3"
    wm = WebhookManager(
        tmp_path / "webhooks.json",
        delivery_store_path=store,
        allow_private_networks=True,
        stop_timeout=0.05,
    )
    try:
        async with EventBus(validation="off") as bus, wm:
            wm.attach(bus)
            await wm.register_webhook(receiver.url(), ["memory.*"])
            events = [
                await bus.publish("memory.created", {"memory_id": f"m{n}"}) for n in range(2000)
            ]
            await wm.flush()
            recorded = _recorded(store)
            assert {e.id for e in events} <= set(recorded)
    finally:
        gate.set()
