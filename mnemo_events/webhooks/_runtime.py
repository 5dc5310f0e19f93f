"""The running part of the webhook manager: session, store, actors, resume, maintenance.

:class:`DeliveryRuntime` exists from ``start()`` to ``stop()``. It owns the one
``ClientSession`` (cookie-less, unlimited pool: each webhook bounds itself), the open
:class:`DeliveryStore`, the asyncio scheduler, one :class:`WebhookActor` per webhook, and the
scan that folds delivery results into the metrics: :attr:`DeliveryRuntime.metrics` is the
value that scan last emitted, read by ``get_metrics()`` and the webhook status.

In a webhook group (:mod:`mnemo_events.webhooks._group`) the same runtime runs with the
group's hooks: no resume at start (the work queue hands deliveries out), redeliveries go to
the work queue (``replay_with``), every attempt first checks the worker's lease
(``sender_guard``), each attempt's time is capped (``attempt_cap``) well inside the lease, and
the webhook status reads the group's shared counters from the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import AbstractResolver
from reactivex import abc
from reactivex import operators as ops
from reactivex.scheduler.eventloop import AsyncIOScheduler
from reactivex.subject import Subject

from mnemo_events._log import logger
from mnemo_events.config import WebhooksConfig
from mnemo_events.event import Event
from mnemo_events.exceptions import WebhookError, WebhookNotFoundError
from mnemo_events.webhooks._delivery import ActorContext, WebhookActor
from mnemo_events.webhooks._metrics import DeliveryMetrics, reduce_metrics
from mnemo_events.webhooks._outcome import DeliveryJob
from mnemo_events.webhooks._registry import WebhookRegistry
from mnemo_events.webhooks._sender import Prepared, Response, Sender
from mnemo_events.webhooks._store import DeliveryStore, WebhookState
from mnemo_events.webhooks.models import DeliveryStatus, Webhook, WebhookStatus
from mnemo_events.webhooks.ssrf import GuardedResolver

if TYPE_CHECKING:
    from typing import TypeAlias

    from mnemo_events.webhooks._kv_registry import JetStreamWebhookRegistry

    Registry: TypeAlias = WebhookRegistry | JetStreamWebhookRegistry

__all__ = ["DeliveryRuntime", "SenderGuard"]

SenderGuard = Callable[[str, float], Awaitable[None]]
"""``guard(delivery_id, timeout)``: returns when an attempt of that length may start."""

_log = logger("webhooks")
_PRUNE_EVERY = 3600.0


class DeliveryRuntime:
    """Everything that runs between ``start()`` and ``stop()`` (see the module docstring)."""

    def __init__(
        self,
        config: WebhooksConfig,
        registry: Registry,
        store: DeliveryStore,
        *,
        resolver: AbstractResolver | None,
        on_disable: Callable[[str, str], None],
        session: aiohttp.ClientSession | None = None,
        secret_resolver: Callable[[str], str] | None = None,
        resume: bool = True,
        replay_with: Callable[[list[DeliveryJob]], Awaitable[None]] | None = None,
        sender_guard: SenderGuard | None = None,
        attempt_cap: float | None = None,
        shared_states: bool = False,
    ) -> None:
        self._config = config
        self._resume_at_start = resume
        self._replay_with = replay_with
        self._sender_guard = sender_guard
        self._attempt_cap = attempt_cap
        self._shared_states = shared_states
        self._registry = registry
        self.store = store
        self._resolver = resolver
        self._on_disable = on_disable
        self.inbound: Subject[Event] = Subject()
        self.actors: dict[str, WebhookActor] = {}
        self.metrics = DeliveryMetrics()
        """What the metrics scan last emitted (its seed until the first result)."""
        self._results: Subject[Any] = Subject()
        self._scan: abc.DisposableBase | None = None
        self._session: aiohttp.ClientSession | None = None
        self._context: ActorContext | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._given_session = session
        """An application's session (MnemoCore's ``http_session``): used, never closed here."""
        self._secret_resolver = secret_resolver

    @property
    def counters(self) -> dict[str, int]:
        """Counted problems (pipeline, attempt and store errors)."""
        return {} if self._context is None else self._context.counters

    async def start(self) -> int:
        """Open the store and session, build the actors, resume unfinished deliveries.

        Returns:
            How many unfinished deliveries were resumed.
        """
        loop = asyncio.get_running_loop()
        self.store.expect_registry(
            self._registry.registry_id, saved=self._registry.registry_id_saved
        )
        await self.store.open()
        resolver = self._resolver
        if not self._config.allow_private_networks:
            resolver = GuardedResolver(resolver)
        self._session = self._given_session or aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, resolver=resolver),
            cookie_jar=aiohttp.DummyCookieJar(),  # no cookie travels between endpoints
        )
        sender = Sender if self._sender_guard is None else _GuardedSender
        self._context = ActorContext(
            store=self.store,
            sender=sender(
                self._session,
                body_limit=self._config.response_body_limit,
                resolve_refs=True,
                secret_resolver=self._secret_resolver,
            ),
            scheduler=AsyncIOScheduler(loop),
            results=self._results,
            max_in_flight=self._config.max_in_flight_per_endpoint,
            # In a group the shared counters decide (the group's bump_state), not this one's.
            disable_after_failures=(
                2**62 if self._shared_states else self._config.disable_after_failures
            ),
            allow_private_networks=self._config.allow_private_networks,
            on_disable=self._on_disable,
        )
        self.metrics = DeliveryMetrics(webhooks=await self.store.states())
        self._scan = self._results.pipe(ops.scan(reduce_metrics, self.metrics)).subscribe(
            self._emitted
        )
        if isinstance(self._context.sender, _GuardedSender):
            self._context.sender.guard = self._sender_guard
        for webhook in self._registry.all():
            self.add(webhook)
        resumed = await self._resume() if self._resume_at_start else 0
        self._maintenance = loop.create_task(self._prune_forever(), name="mnemo-wh-maintenance")
        return resumed

    def _emitted(self, metrics: DeliveryMetrics) -> None:
        self.metrics = metrics

    def add(self, webhook: Webhook) -> WebhookActor:
        """Create, connect and start the actor of a new webhook."""
        assert self._context is not None
        actor = WebhookActor(self._shaped(webhook), self._context, self.metrics.webhook(webhook.id))
        actor.connect(self.inbound)
        actor.start()
        self.actors[webhook.id] = actor
        return actor

    def update(self, webhook: Webhook) -> None:
        """Use a webhook's new configuration from its actor's next attempt on."""
        actor = self.actors.get(webhook.id)
        if actor is not None:
            actor.update(self._shaped(webhook))

    def _shaped(self, webhook: Webhook) -> Webhook:
        """The webhook as its actor runs it: in a group, each attempt capped to fit a lease."""
        cap = self._attempt_cap
        retry = webhook.retry_config
        if cap is None or retry.timeout_seconds <= cap:
            return webhook
        capped = retry.model_copy(update={"timeout_seconds": cap})
        return dataclasses.replace(webhook, retry_config=capped)

    async def remove(self, webhook_id: str) -> None:
        """Stop a deleted webhook's actor and fail its unfinished deliveries."""
        actor = self.actors.pop(webhook_id, None)
        if actor is not None:
            await actor.close()
        self.metrics.webhooks.pop(webhook_id, None)
        await self.store.fail_open(webhook_id, "webhook deleted")

    async def _resume(self) -> int:
        now = time.time()
        jobs = await self.store.open_jobs()
        orphans: set[str] = set()
        for stored in jobs:
            actor = self.actors.get(stored.webhook_id)
            if actor is None:
                orphans.add(stored.webhook_id)
                continue
            actor.inject(DeliveryJob.from_stored(stored, now=now))
        for webhook_id in orphans:
            await self.store.fail_open(webhook_id, "webhook no longer registered")
        resumed = len(jobs) - sum(1 for job in jobs if job.webhook_id in orphans)
        if jobs:
            _log.info("webhooks.resumed", deliveries=resumed, orphaned=len(jobs) - resumed)
        return resumed

    async def replay(self, jobs: list[DeliveryJob]) -> None:
        """Send stored deliveries again as a new round (redeliver, replay_failed)."""
        if not jobs:
            return
        reopened = self.store.reopen([job.delivery_id for job in jobs])
        if self._replay_with is not None:  # a group: the work queue hands the rounds out
            await reopened
            await self._replay_with(jobs)
            return
        for job in jobs:
            job.persisted = reopened
            self.actors[job.webhook_id].inject(job)
        await reopened

    async def _prune_forever(self) -> None:
        keep = self._config.retention_days * 86400.0
        while True:
            try:
                pruned = await self.store.prune(time.time() - keep)
            except Exception as err:
                if self._context is not None:
                    self._context.count("store_errors")
                _log.error("webhooks.prune_failed", error=repr(err))
            else:
                if pruned:
                    _log.info("webhooks.pruned", deliveries=pruned)
            await asyncio.sleep(min(_PRUNE_EVERY, keep))

    @property
    def results(self) -> Subject[Any]:
        """Every delivery notice (queued, attempt results) as the metrics scan sees it."""
        return self._results

    async def stop(
        self, grace: float, before_close: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Finish running attempts (up to ``grace`` s), then close everything.

        ``before_close`` runs once the actors stopped, while the store is still open (a group
        hands its unfinished work back there). The store and the session are closed even if
        stopping an actor fails.
        """
        try:
            if self._maintenance is not None:
                self._maintenance.cancel()
                await asyncio.gather(self._maintenance, return_exceptions=True)
                self._maintenance = None
            deadline = time.monotonic() + grace
            await asyncio.gather(
                *(
                    actor.stop(max(deadline - time.monotonic(), 0.0))
                    for actor in self.actors.values()
                )
            )
            if before_close is not None:
                await before_close()
        finally:
            self.actors.clear()
            if self._scan is not None:
                self._scan.dispose()
                self._scan = None
            try:
                await self.store.close()
            finally:
                if self._session is not None and self._session is not self._given_session:
                    await self._session.close()
                self._session = None

    def report(self, *, events_dropped: int) -> dict[str, Any]:
        """The runtime's part of ``get_metrics()``."""
        report = self.metrics.snapshot()
        report["in_flight"] = sum(actor.in_flight for actor in self.actors.values())
        report["store"] = {"batches": self.store.batches, "errors": self.store.write_errors}
        errors = {"internal_errors": 0} | self.counters | {"events_dropped": events_dropped}
        errors["total_errors"] = sum(errors.values())
        report["errors"] = errors
        return report

    async def webhook_status(self, webhook: Webhook) -> WebhookStatus:
        """Counts from the store and the counters that outlive restarts."""
        counts = {status.value: 0 for status in DeliveryStatus}
        counts.update(await self.store.counts(webhook.id))
        counts["total"] = sum(counts.values())
        finished = counts["success"] + counts["failed"]
        return WebhookStatus(
            webhook_id=webhook.id,
            enabled=webhook.enabled,
            disabled_reason=webhook.disabled_reason,
            deliveries=counts,
            success_rate=counts["success"] / finished if finished else None,
            **self._status_times(webhook.id, await self._shared_state(webhook.id)),
        )

    async def _shared_state(self, webhook_id: str) -> WebhookState | None:
        if not self._shared_states:
            return None
        return (await self.store.states()).get(webhook_id) or WebhookState(webhook_id)

    async def redeliver(self, delivery_id: str, registry: Registry) -> str:
        """Send a finished delivery again as a new round (same id); see the manager."""
        stored = await self.store.job(delivery_id)
        if stored is None:
            raise WebhookNotFoundError(f"no delivery with id {delivery_id!r}")
        registry.get(stored.webhook_id)
        found = await self.store.get_delivery(delivery_id)
        if found is not None and found.status in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING):
            raise WebhookError(f"delivery {delivery_id} is still {found.status.value}")
        await self.replay([DeliveryJob.from_stored(stored, now=time.time(), new_round=True)])
        return delivery_id

    async def replay_failed(self, webhook_id: str, since: datetime | None) -> int:
        """Send every failed delivery of a webhook again; how many."""
        stored = await self.store.failed_jobs(webhook_id, since.timestamp() if since else None)
        now = time.time()
        await self.replay([DeliveryJob.from_stored(s, now=now, new_round=True) for s in stored])
        return len(stored)

    def _status_times(self, webhook_id: str, shared: WebhookState | None) -> dict[str, Any]:
        """A webhook's counters that outlive restarts, as datetimes."""
        state = shared or self.metrics.webhooks.get(webhook_id) or WebhookState(webhook_id)
        as_dt = {
            key: None if value is None else datetime.fromtimestamp(value, UTC)
            for key, value in dataclasses.asdict(state).items()
            if key.endswith("_at")
        }
        return {"consecutive_failures": state.consecutive_failures, **as_dt}


class _GuardedSender(Sender):
    """A sender that lets an attempt start only once the group's guard allows it (the
    worker holds the delivery's lease for at least the attempt's time)."""

    guard: SenderGuard | None = None

    async def send(
        self, prepared: Prepared, delivery_id: str, event_type: str, body: bytes, number: int
    ) -> Response:
        if self.guard is not None:
            await self.guard(delivery_id, prepared.webhook.retry_config.timeout_seconds)
        return await super().send(prepared, delivery_id, event_type, body, number)
