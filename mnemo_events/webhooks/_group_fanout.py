"""The fan-out of a webhook group: each event on the stream becomes its deliveries, once.

Every member reads the shared consumer ``webhook-fanout`` on the events stream; each event
goes to one of them. For each enabled webhook the event matches, the member records the
delivery (its id derived from the event id and webhook id, so a re-run creates the same
record, which the store keeps) and, once the records are committed, publishes a work message
(stored once per round, thanks to its ``Nats-Msg-Id``). Only then is the event acknowledged:
a member killed half-way leaves the event unacknowledged, another member runs the fan-out
again after ``ack_wait``, and nothing is created twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from mnemo_events._log import logger
from mnemo_events.bus._jetstream_feed import decode_event
from mnemo_events.webhooks._group_work import (
    GroupNames,
    WorkItem,
    delivery_id_for,
    fetch_some,
    quietly,
)

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

    from mnemo_events.webhooks._kv_registry import JetStreamWebhookRegistry
    from mnemo_events.webhooks._kv_store import JetStreamDeliveryStore

__all__ = ["FanOut", "publish_work"]

_log = logger("webhooks.group")
_BATCH = 128
_FETCH_WAIT = 1.0
_RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0)

Connect = Callable[[], Awaitable[tuple["Client", "JetStreamContext"]]]


async def publish_work(js: JetStreamContext, names: GroupNames, items: list[WorkItem]) -> None:
    """Store work messages, pipelined; returns once the stream acknowledged every one.

    Raises:
        nats.errors.Error: the stream did not acknowledge one of them (the caller retries:
            the message id makes a retry stored once).
    """
    futures = [
        await js.publish_async(
            f"{names.work_subject}.{item.webhook_id}",
            item.encode(),
            headers={"Nats-Msg-Id": item.msg_id},
        )
        for item in items
    ]
    for future in futures:
        await future


class FanOut:
    """One member's reader of the fan-out consumer."""

    def __init__(
        self,
        *,
        connect: Connect,
        names: GroupNames,
        registry: JetStreamWebhookRegistry,
        store: JetStreamDeliveryStore,
    ) -> None:
        self._connect = connect
        self._names = names
        self._registry = registry
        self._store = store
        self.events = 0
        """Events fanned out by this member."""
        self.deliveries = 0
        """Work messages this member published (a re-run's duplicates included)."""
        self.errors = 0
        """Batches that failed and were left for redelivery (each logged)."""

    async def run(self) -> None:
        """Fetch and fan out events until cancelled, reconnecting after errors."""
        failures = 0
        while True:
            try:
                _, js = await self._connect()
                sub = await js.pull_subscribe_bind(
                    self._names.fanout, stream=self._names.events_stream
                )
                failures = 0
                try:
                    while True:
                        try:
                            msgs = await fetch_some(sub, _BATCH, _FETCH_WAIT)
                        except TimeoutError:
                            continue
                        await self._fan_out(js, msgs)
                finally:
                    await quietly(sub.unsubscribe())
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.errors += 1
                delay = _RETRY_DELAYS[min(failures, len(_RETRY_DELAYS) - 1)]
                failures += 1
                _log.warning("webhooks.group_fanout_retrying", error=repr(err), retry_in=delay)
                await asyncio.sleep(delay)

    async def _fan_out(self, js: JetStreamContext, msgs: list[Msg]) -> None:
        webhooks = [w for w in self._registry.all() if w.enabled]
        now = time.time()
        recorded: list[asyncio.Future[None]] = []
        items: list[WorkItem] = []
        done: list[Msg] = []
        for msg in msgs:
            try:
                event = decode_event(msg.data)
            except Exception as err:
                _log.error("webhooks.group_event_undecodable", error=repr(err))
                await quietly(msg.term())
                continue
            for webhook in webhooks:
                if not webhook.matches(event.type):
                    continue
                delivery_id = delivery_id_for(event.id, webhook.id)
                recorded.append(
                    self._store.add_delivery(
                        delivery_id, webhook.id, event.id, event.type, event.to_json(), now
                    )
                )
                items.append(WorkItem(delivery_id, webhook.id, 0))
            done.append(msg)
        # The records first: a worker taking a work message must find its record.
        await asyncio.gather(*(asyncio.shield(f) for f in recorded))
        if items:
            await publish_work(js, self._names, items)
        for msg in done:
            await quietly(msg.ack())
        self.events += len(done)
        self.deliveries += len(items)
