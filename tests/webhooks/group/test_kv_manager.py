"""End to end: webhook managers whose registry and delivery store are on JetStream KV deliver
to a real receiver, and another manager on other instances gives the same answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from mnemo_events import webhook_manager
from mnemo_events.event import Event
from mnemo_events.webhook_manager import WebhookManager
from mnemo_events.webhooks._kv_registry import JetStreamWebhookRegistry
from mnemo_events.webhooks._kv_store import JetStreamDeliveryStore
from mnemo_events.webhooks.models import DeliveryStatus
from tests.helpers.nats import NatsServer
from tests.helpers.receiver import Receiver, Reply

pytestmark = pytest.mark.timeout(90)


class _Instance:
    """One process's share of the group, as it were: a connection, a KV registry, a KV
    store, and a manager built on them."""

    def __init__(self, nc: Client, registry: JetStreamWebhookRegistry, js: JetStreamContext):
        self.nc = nc
        self.registry = registry
        self.store = JetStreamDeliveryStore(js)
        self.manager = WebhookManager(allow_private_networks=True)
        # The injection the public constructor option will do: the manager's registry, and
        # (at start) its store, are the KV ones.
        self.manager._registry = registry


@pytest.fixture
async def instances(
    server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[], asyncio.Future[_Instance]]]:
    """A factory of instances on the server; each manager's start() opens its own KV store
    (the module's DeliveryStore is replaced by a lookup of that store, nothing else)."""
    made: list[_Instance] = []
    stores: dict[int, JetStreamDeliveryStore] = {}

    def _store_of(path: object) -> JetStreamDeliveryStore:
        assert path is None
        return stores.pop(min(stores))

    monkeypatch.setattr(webhook_manager, "DeliveryStore", _store_of)

    async def _make() -> _Instance:
        nc = await nats.connect(server.url)
        js = nc.jetstream(timeout=5.0)
        instance = _Instance(nc, await JetStreamWebhookRegistry.open(js), js)
        stores[len(made)] = instance.store
        made.append(instance)
        return instance

    yield lambda: asyncio.ensure_future(_make())
    for instance in made:
        await instance.manager.stop()
        await instance.registry.close()
        await instance.nc.close()


async def _until(check: Callable[[], object], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.02)


async def _until_true(probe: Callable[[], Awaitable[bool]], tries: int = 200) -> None:
    for _ in range(tries):  # bounded: 200 probes, 50 ms apart
        if await probe():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition did not hold in time")


async def test_a_delivery_through_one_manager_is_seen_the_same_by_another(
    instances: Callable[[], asyncio.Future[_Instance]], receiver: Receiver
) -> None:
    """Manager A delivers an event to a real receiver (a 500, then a 200) with its KV
    registry and store; manager B, on other instances, sees the webhook, the same history,
    the same delivery with both attempts and the same status; B's redelivery is sent with
    the same delivery id and A then reads three attempts."""
    first = await instances()
    await first.manager.start()
    hook = await first.manager.register_webhook(
        receiver.url(), ["memory.*"], retry_config={"max_attempts": 3, "base_delay_seconds": 0.05}
    )
    assert hook.secret is not None
    receiver.secrets["/hook"] = hook.secret
    receiver.script("/hook", Reply(status=500))
    first.manager.deliver(Event.create("memory.created", {"memory_id": "m1"}))
    await first.manager.flush()
    await receiver.wait_for(2)
    (delivery,) = await first.manager.get_delivery_history(hook.id)

    async def _succeeded() -> bool:
        found = await first.manager.get_delivery(delivery.id)
        return found.status is DeliveryStatus.SUCCESS

    await _until_true(_succeeded)

    second = await instances()
    await _until(lambda: second.registry.find(hook.id) is not None)
    await second.manager.start()
    assert [w.id for w in second.manager.list_webhooks()] == [hook.id]
    seen = await second.manager.get_delivery(delivery.id)
    assert seen.status is DeliveryStatus.SUCCESS
    assert [(a.number, a.status_code) for a in seen.attempt_log] == [(1, 500), (2, 200)]
    assert [d.id for d in await second.manager.get_delivery_history(hook.id)] == [delivery.id]
    status_a = await first.manager.get_webhook_status(hook.id)
    status_b = await second.manager.get_webhook_status(hook.id)
    assert status_a.deliveries == status_b.deliveries
    assert status_b.deliveries["success"] == 1
    assert status_b.deliveries["total"] == 1

    await second.manager.redeliver(delivery.id)
    await receiver.wait_for(3)
    again = receiver.requests[2]
    assert (again.delivery_id, again.attempt) == (delivery.id, 3)
    assert all(r.stripe_ok for r in receiver.requests)

    async def _three() -> bool:
        return len((await first.manager.get_delivery(delivery.id)).attempt_log) == 3

    await _until_true(_three)
    assert (await first.manager.get_delivery(delivery.id)).status is DeliveryStatus.SUCCESS
