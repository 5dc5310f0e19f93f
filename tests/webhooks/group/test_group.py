"""A webhook group on a real nats-server: real ``worker`` and ``serve`` processes, SIGKILL
mid-run, a receiver that catches overlapping attempts, and the shared records checked against
what the receiver saw."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mnemo_events.event import Event
from mnemo_events.event_bus import EventBus
from mnemo_events.webhook_manager import WebhookManager
from mnemo_events.webhooks._group_work import delivery_id_for
from mnemo_events.webhooks.models import Delivery, DeliveryStatus
from tests.helpers.nats import NatsServer
from tests.helpers.webhook_group import GroupReceiver, Member, start_member, stop_all

pytestmark = [pytest.mark.timeout(110), pytest.mark.slow]

_KILL: dict[str, Any] = {"takeover": 4.0, "env": {"MNEMO_EVENTS_WEBHOOKS_GROUP_MAX_JOBS": "64"}}
"""The kill test's workers: a takeover time well above the stalls of a loaded 2-core machine
(a worker stalled for more than half of it mid-attempt could repeat with its taker-over),
and fewer jobs held each."""

_RETRY = {
    "max_attempts": 5,
    "base_delay_seconds": 0.2,
    "max_delay_seconds": 0.5,
    "timeout_seconds": 1.0,
}


async def _until(check: Callable[[], Any], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _admin(url: str) -> AsyncIterator[WebhookManager]:
    """A manager that only registers (never started, so not a member taking work)."""
    manager = WebhookManager(transport=url, allow_private_networks=True)
    try:
        yield manager
    finally:
        await manager.stop()


@contextlib.asynccontextmanager
async def _records(url: str) -> AsyncIterator[Any]:
    """The group's shared delivery store, opened on its own connection."""
    from mnemo_events.bus._jetstream import JetStreamTransport
    from mnemo_events.webhooks._kv_store import JetStreamDeliveryStore

    transport = JetStreamTransport(url)
    _, js = await transport._connection()
    store = JetStreamDeliveryStore(js, prefix="mnemo")
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        await transport.stop()


async def _all_deliveries(store: Any, ids: set[str]) -> dict[str, Delivery]:
    """The records of ``ids``, read one by one (500 at a time)."""
    found: dict[str, Delivery] = {}
    ordered = sorted(ids)
    for first in range(0, len(ordered), 500):
        chunk = ordered[first : first + 500]
        for delivery in await asyncio.gather(*(store.get_delivery(i) for i in chunk)):
            if delivery is not None:
                found[delivery.id] = delivery
    return found


async def _publish(url: str, count: int) -> list[Event]:
    async with EventBus(transport=url, validation="off") as bus:
        return await bus.publish_batch(("memory.created", {"n": n}) for n in range(count))


async def _member(kind: str, url: str, log: Path, **options: Any) -> Member:
    # In a thread: the receiver in this loop keeps answering while the process starts.
    return await asyncio.to_thread(start_member, kind, url, log, **options)


async def test_three_workers_one_killed_every_delivery_succeeds_without_overlap(
    tmp_path: Path,
) -> None:
    """2,000 events to three webhooks over three workers, one SIGKILLed mid-run and replaced:
    every delivery succeeds, no two attempts of one delivery overlap, repeats are only of
    attempts in flight at the kill (same delivery id and number), and the shared records'
    attempt counts are what the receiver saw."""
    with NatsServer(tmp_path / "js") as server:
        async with GroupReceiver(delay=0.005) as receiver, _admin(server.url) as admin:
            # Some first attempts fail: the retries go through retry_when and the records.
            receiver.decide = lambda path, d, n: 503 if n == 1 and int(d[-2:], 16) % 9 == 0 else 200
            hooks = [
                await admin.register_webhook(
                    receiver.url(f"/h{i}"), ["memory.*"], retry_config=_RETRY
                )
                for i in range(3)
            ]
            workers = [
                await _member("worker", server.url, tmp_path / f"w{i}.log", **_KILL)
                for i in range(3)
            ]
            try:
                events = await _publish(server.url, 2_000)
                expected = {delivery_id_for(e.id, h.id) for e in events for h in hooks}
                await _until(lambda: len(receiver.attempts) >= 1_500, 60, "a quarter delivered")
                victim = workers[0].freeze_and_kill(receiver.port)
                workers.append(await _member("worker", server.url, tmp_path / "w3.log", **_KILL))
                await _until(lambda: receiver.succeeded() >= expected, 80, "all delivered")
                async with _records(server.url) as store:

                    async def _settled() -> bool:
                        records = await _all_deliveries(store, expected)
                        return len(records) == len(expected) and all(
                            r.status is DeliveryStatus.SUCCESS for r in records.values()
                        )

                    await _until(_settled, 20, "every record success")
                    records = await _all_deliveries(store, expected)
            finally:
                stop_all(workers)
        assert receiver.overlaps == 0, (victim, receiver.overlapping[:5])
        assert set(records) == expected
        repeated = 0
        for delivery_id, attempts in receiver.by_delivery().items():
            numbers = [a.number for a in attempts]
            record = records[delivery_id]
            assert set(numbers) == set(range(1, record.attempts + 1)), delivery_id
            for number in set(numbers):
                same = sorted((a for a in attempts if a.number == number), key=lambda a: a.started)
                repeated += len(same) - 1
                # A repeat: the earlier one came from the killed worker (its connections,
                # noted while it was stopped), so it was sent before the kill.
                for earlier in same[:-1]:
                    assert earlier.port in victim, (victim, same)
        # The killed worker ran at most max_in_flight (10) attempts per webhook (30), plus
        # at most as many answered whose record it had not stored yet.
        assert repeated <= 60


async def test_retry_scheduled_by_a_killed_worker_still_happens(tmp_path: Path) -> None:
    """A retry due in three seconds, scheduled by a worker that is then SIGKILLed, is made by
    another worker (same delivery id, attempt 2) no earlier than its recorded time."""
    with NatsServer(tmp_path / "js") as server:
        async with GroupReceiver() as receiver, _admin(server.url) as admin:
            receiver.decide = lambda path, d, n: 500 if n == 1 else 200
            retry = _RETRY | {"base_delay_seconds": 3.0, "max_delay_seconds": 3.0}
            hook = await admin.register_webhook(
                receiver.url("/r"), ["memory.*"], retry_config=retry
            )
            first = await _member("worker", server.url, tmp_path / "first.log")
            workers = [first]
            try:
                (event,) = await _publish(server.url, 1)
                await _until(lambda: len(receiver.attempts) >= 1, 20, "the first attempt")
                async with _records(server.url) as store:
                    delivery_id = delivery_id_for(event.id, hook.id)

                    async def _retrying() -> bool:
                        found = await store.get_delivery(delivery_id)
                        return found is not None and found.status is DeliveryStatus.RETRYING

                    await _until(_retrying, 10, "the retry recorded")
                    first.kill()
                    workers.append(await _member("worker", server.url, tmp_path / "second.log"))
                    await _until(lambda: receiver.succeeded() == {delivery_id}, 30, "the retry")
                    record = await store.get_delivery(delivery_id)
            finally:
                stop_all(workers)
        one, two = receiver.attempts
        assert (one.number, two.number) == (1, 2)
        assert two.delivery_id == one.delivery_id == delivery_id
        assert two.started - one.ended >= 2.9
        assert record is not None
        assert record.attempts == 2


async def _api(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with session.request(method, url, json=body) as response:
        assert response.status < 300, (response.status, await response.text())
        return await response.json()


async def test_registry_change_through_one_serve_is_seen_by_all_and_survives_restarts(
    tmp_path: Path,
) -> None:
    """A webhook registered through one ``serve`` and disabled through another is seen by
    both at once; deliveries and status read the same from either; after every process and
    the server restart, the webhook, its records and an event published while all were down
    are all there."""
    server = NatsServer(tmp_path / "js").start()
    members: list[Member] = []
    try:
        async with GroupReceiver() as receiver, aiohttp.ClientSession() as http:
            a = await _member("serve", server.url, tmp_path / "a.log")
            b = await _member("serve", server.url, tmp_path / "b.log")
            members += [a, b]
            made = await _api(
                http,
                "POST",
                f"{a.url}/webhooks",
                {"url": receiver.url("/s"), "events": ["memory.*"], "retry_config": _RETRY},
            )
            hook_id = made["id"]

            async def _seen_by_b() -> bool:
                async with http.get(f"{b.url}/webhooks/{hook_id}") as response:
                    return response.status == 200

            await _until(_seen_by_b, 5, "the webhook seen through b")
            events = await _publish(server.url, 20)
            await _until(lambda: len(receiver.succeeded()) == 20, 30, "20 delivered")
            path = f"/webhooks/{hook_id}/deliveries?limit=100"

            async def _same_answer() -> bool:
                one = (await _api(http, "GET", f"{a.url}{path}"))["deliveries"]
                two = (await _api(http, "GET", f"{b.url}{path}"))["deliveries"]
                done = all(d["status"] == "success" for d in one)
                return done and len(one) == 20 and one == two

            await _until(_same_answer, 10, "the same deliveries from a and b")
            status_a = (await _api(http, "GET", f"{a.url}/webhooks/{hook_id}"))["status"]
            status_b = (await _api(http, "GET", f"{b.url}/webhooks/{hook_id}"))["status"]
            assert status_a == status_b
            assert status_a["deliveries"]["success"] == 20
            assert status_a["last_success_at"] is not None
            again = delivery_id_for(events[0].id, hook_id)
            await _api(http, "POST", f"{b.url}/deliveries/{again}/redeliver")
            await _until(lambda: len(receiver.attempts) == 21, 10, "the redelivery")
            assert (receiver.attempts[-1].delivery_id, receiver.attempts[-1].number) == (again, 2)

            async def _two_attempts_in_a() -> bool:
                found = await _api(http, "GET", f"{a.url}/deliveries/{again}")
                return bool(found["status"] == "success" and found["attempts"] == 2)

            await _until(_two_attempts_in_a, 10, "the redelivery recorded, seen through a")
            await _api(http, "PATCH", f"{b.url}/webhooks/{hook_id}", {"enabled": False})

            async def _disabled_in_a() -> bool:
                found = await _api(http, "GET", f"{a.url}/webhooks/{hook_id}")
                return found["enabled"] is False

            await _until(_disabled_in_a, 5, "the change seen through a")
            await _api(http, "PATCH", f"{a.url}/webhooks/{hook_id}", {"enabled": True})
            stop_all(members)
            members.clear()
            (late,) = await _publish(server.url, 1)  # while no member runs
            server.restart()
            c = await _member("serve", server.url, tmp_path / "c.log")
            members.append(c)
            found = await _api(http, "GET", f"{c.url}/webhooks/{hook_id}")
            assert found["enabled"] is True
            want = {delivery_id_for(e.id, hook_id) for e in [*events, late]}
            await _until(lambda: receiver.succeeded() == want, 30, "the late event delivered")
            listed = await _api(http, "GET", f"{c.url}{path}")
            assert {d["id"] for d in listed["deliveries"]} == want
    finally:
        stop_all(members)
        server.stop()
