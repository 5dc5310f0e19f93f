"""A member of a webhook group: several processes delivering one set of webhooks on JetStream.

::

    events stream ─▶ fan-out (any member) ─▶ records (shared store) + work messages
    work stream ─▶ consumer webhook-workers ─▶ this member: take the lease ─▶ read the record
        ─▶ WebhookActor.inject(job) ─▶ attempts (retry_when) ─▶ record ─▶ ack, release
    heartbeat (every takeover/4, one loop for all held jobs): msg.in_progress() + lease
    renewal of each

**One attempt in flight per delivery.** A member attempts a delivery only while it holds the
delivery's lease (:mod:`~mnemo_events.webhooks._group_lease`); every attempt first checks
that the lease outlasts the attempt's time, which is capped at half the takeover time, and a
heartbeat renews it every quarter of that time. A member that dies stops renewing: its work
messages come back after ``ack_wait`` (the takeover time), the lease expires at about the
same moment, and another member takes the delivery over with the same delivery id and the
next attempt number, read from the shared record. A member whose renewal is refused (it was
stalled longer than the takeover time and the delivery was taken over) abandons the job:
its next attempt is cancelled before it starts (nothing recorded), and this member does not
take that delivery again until the abandoned chain has ended.

**Retries** keep ``retry_when``'s backoff in the member that holds the job; the record holds
the next attempt time, so a new owner waits until then. **Counters** that decide
auto-disable are the group's (``bump_state`` on the shared store); a 410 or the threshold
disables the webhook in the shared registry, and every member sees it through ``listen``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mnemo_events._log import logger
from mnemo_events.bus._aio import cancel_and_wait
from mnemo_events.exceptions import WebhookActorClosedError
from mnemo_events.webhooks._group_fanout import FanOut, publish_work
from mnemo_events.webhooks._group_lease import Lease, LeaseBucket, Taken
from mnemo_events.webhooks._group_work import (
    ACK_FAILURES,
    GroupNames,
    WorkItem,
    fanout_consumer,
    fetch_some,
    quietly,
    work_consumer,
    work_stream,
)
from mnemo_events.webhooks._metrics import AttemptResult
from mnemo_events.webhooks._outcome import DeliveryJob, given_up_rows
from mnemo_events.webhooks.models import DeliveryStatus, Webhook

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext
    from reactivex import abc

    from mnemo_events.bus._jetstream import JetStreamTransport
    from mnemo_events.webhooks._kv_registry import JetStreamWebhookRegistry
    from mnemo_events.webhooks._kv_store import JetStreamDeliveryStore
    from mnemo_events.webhooks._runtime import DeliveryRuntime

__all__ = ["GroupMember"]

_log = logger("webhooks.group")
_FETCH_WAIT = 1.0
_FETCH_BATCH = 64
_RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0)
_FINISHED = (DeliveryStatus.SUCCESS, DeliveryStatus.FAILED)


@dataclass(eq=False)
class _Held:
    """A work message this member holds, with the delivery's lease."""

    msg: Msg
    item: WorkItem
    lease: Lease
    lost: bool = False
    """Another member took the lease over: no attempt, no acknowledgement from here."""
    finished: bool = False
    """Its chain ended here: being acknowledged and released, no more renewals."""
    renewing: asyncio.Task[Lease | None] | None = field(default=None, repr=False)
    """The renewal under way: the heartbeat and the guard share it (two compare-and-sets on
    one revision would make the second look like a lost lease)."""


class GroupMember:
    """The group side of one webhook manager (see the module docstring)."""

    def __init__(
        self,
        transport: JetStreamTransport,
        *,
        registry: JetStreamWebhookRegistry,
        store: JetStreamDeliveryStore,
        takeover_seconds: float,
        max_jobs: int,
        disable_after_failures: int,
        on_disable: Any,
    ) -> None:
        self._transport = transport
        config = transport.config
        self.names = GroupNames(config.stream, config.subject_prefix)
        self._registry = registry
        self._store = store
        self.takeover_seconds = takeover_seconds
        self._max_jobs = max_jobs
        self._disable_after = disable_after_failures
        self._on_disable = on_disable
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self._leases: LeaseBucket | None = None
        self._runtime: DeliveryRuntime | None = None
        self._held: dict[str, _Held] = {}
        self._abandoned: set[str] = set()
        """Deliveries whose lease this member lost while their chain may still run here."""
        self._room = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._results: abc.DisposableBase | None = None
        self.fanout: FanOut | None = None
        self.counts = {
            "taken": 0,
            "finished": 0,
            "busy_elsewhere": 0,
            "already_finished": 0,
            "lost": 0,
            "handed_back": 0,
            "errors": 0,
        }

    @property
    def attempt_cap(self) -> float:
        """The longest an attempt may take here: half the takeover time."""
        return self.takeover_seconds / 2

    async def _js(self) -> tuple[Any, JetStreamContext]:
        return await self._transport._connection()

    async def prepare(self) -> None:
        """Create what the group needs on the server (idempotent): the work stream, both
        consumers and the lease bucket. After this, every event stored is fanned out."""
        _, js = await self._js()
        await _ensure_stream(js, work_stream(self.names))
        await _ensure_consumer(
            js,
            self.names.events_stream,
            fanout_consumer(self.names, takeover_seconds=self.takeover_seconds),
        )
        await _ensure_consumer(
            js,
            self.names.work_stream,
            work_consumer(self.names, takeover_seconds=self.takeover_seconds),
        )
        self._leases = await LeaseBucket.open(
            js,
            bucket=self.names.leases,
            owner=self.owner,
            lease_seconds=self.takeover_seconds,
        )

    def start(self, runtime: DeliveryRuntime) -> None:
        """Start fanning out and taking work for ``runtime``'s actors."""
        self._runtime = runtime
        self._results = runtime.results.subscribe(self._on_result)
        self.fanout = FanOut(
            connect=self._js, names=self.names, registry=self._registry, store=self._store
        )
        loop = asyncio.get_running_loop()
        self._loops = [
            loop.create_task(self.fanout.run(), name="mnemo-wh-group-fanout"),
            loop.create_task(self._work_loop(), name="mnemo-wh-group-work"),
            loop.create_task(self._heartbeat(), name="mnemo-wh-group-heartbeat"),
        ]
        _log.info(
            "webhooks.group_joined",
            owner=self.owner,
            stream=self.names.events_stream,
            takeover_seconds=self.takeover_seconds,
        )

    async def stop_taking(self) -> None:
        """Stop fetching events and work (held jobs go on until the actors stop)."""
        loops, self._loops = self._loops, []
        # cancel_and_wait sends the cancellation again until it lands (a fetch can drop it).
        await asyncio.gather(*map(cancel_and_wait, loops), return_exceptions=True)

    async def hand_back(self) -> None:
        """After the actors stopped: finish acknowledgements, and hand every job still held
        back to the group (``nak`` at its next attempt time, lease released)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        held, self._held = self._held, {}
        renewals = [e.renewing for e in held.values() if e.renewing is not None]
        await asyncio.gather(*renewals, return_exceptions=True)
        for entry in held.values():
            if entry.lost or self._leases is None:
                continue
            self.counts["handed_back"] += 1
            await quietly(entry.msg.nak())
            await quietly(self._leases.release(entry.lease))
        if self._results is not None:
            self._results.dispose()
            self._results = None
        if held:
            _log.info("webhooks.group_handed_back", deliveries=len(held))

    # -- work ---------------------------------------------------------------------------------

    async def _work_loop(self) -> None:
        failures = 0
        while True:
            try:
                _, js = await self._js()
                sub = await js.pull_subscribe_bind(
                    self.names.workers, stream=self.names.work_stream
                )
                failures = 0
                try:
                    while True:
                        room = self._max_jobs - len(self._held)
                        if room <= 0:
                            self._room.clear()
                            await self._room.wait()
                            continue
                        try:
                            msgs = await fetch_some(sub, min(room, _FETCH_BATCH), _FETCH_WAIT)
                        except TimeoutError:
                            continue
                        await asyncio.gather(*(self._take(msg) for msg in msgs))
                finally:
                    await quietly(sub.unsubscribe())
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.counts["errors"] += 1
                delay = _RETRY_DELAYS[min(failures, len(_RETRY_DELAYS) - 1)]
                failures += 1
                _log.warning("webhooks.group_work_retrying", error=repr(err), retry_in=delay)
                await asyncio.sleep(delay)

    async def _take(self, msg: Msg) -> None:
        """Take one work message: lease, record, then the actor attempts it."""
        assert self._leases is not None
        assert self._runtime is not None
        try:
            item = WorkItem.decode(msg.data)
        except ValueError as err:
            self.counts["errors"] += 1
            _log.error("webhooks.group_work_undecodable", error=str(err))
            await quietly(msg.term())
            return
        if item.delivery_id in self._held or item.delivery_id in self._abandoned:
            # A second message of a job held here, or one whose old chain may still run.
            await quietly(msg.nak(delay=self.takeover_seconds / 2))
            return
        lease = await self._leases.take(item.delivery_id)
        if isinstance(lease, Taken):
            self.counts["busy_elsewhere"] += 1
            await quietly(msg.nak(delay=max(lease.until - time.time(), 0.0) + 0.05))
            return
        held = _Held(msg, item, lease)
        self._held[item.delivery_id] = held
        try:
            job = await self._job_for(held)
        except Exception:
            self._forget(held)
            await quietly(self._leases.release(lease))
            raise
        if job is None:
            return
        job.on_finished = lambda _job: self._finished(held)
        self.counts["taken"] += 1
        actor = self._runtime.actors.get(item.webhook_id)
        try:
            if actor is None:
                webhook = self._registry.find(item.webhook_id)
                assert webhook is not None  # checked by _job_for
                actor = self._runtime.add(webhook)
            actor.inject(job)
        except WebhookActorClosedError:  # deleted meanwhile: its deliveries were failed
            self._finished(held)

    async def _job_for(self, held: _Held) -> DeliveryJob | None:
        """The job of a held message from its shared record; None when nothing is left to
        do (finished, gone, or its webhook deleted: acknowledged here)."""
        item = held.item
        store = self._store
        # A round's first message delivered for the first time was just made by the fan-out
        # (or a redelivery) with its record pending: one read, not two. Any other may find
        # its delivery finished already (its member died before the acknowledgement).
        fresh = item.round_start == 0 and held.msg.metadata.num_delivered == 1
        delivery = None if fresh else await store.get_delivery(item.delivery_id)
        stored = await store.job(item.delivery_id) if fresh or delivery is not None else None
        if stored is None:
            _log.warning("webhooks.group_work_orphaned", delivery_id=item.delivery_id)
            await self._acknowledge(held)
            return None
        if delivery is not None and delivery.status in _FINISHED:
            self.counts["already_finished"] += 1
            await self._acknowledge(held)
            return None
        job = DeliveryJob.from_stored(stored, now=time.time())
        job.retrying = delivery is not None and delivery.status is DeliveryStatus.RETRYING
        if self._registry.find(item.webhook_id) is None:
            store.record_attempt(None, given_up_rows(job, time.time(), "webhook deleted"))
            await self._acknowledge(held)
            return None
        return job

    def _finished(self, held: _Held) -> None:
        """The job's chain ended here: acknowledge once its record is committed."""
        task = asyncio.get_running_loop().create_task(self._acknowledge(held))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _acknowledge(self, held: _Held) -> None:
        held.finished = True
        if held.lost:  # its chain has ended here: the delivery may be taken again
            self._abandoned.discard(held.item.delivery_id)
            self._forget(held)
            return
        try:
            await self._store.flush()  # the record before the message: nothing lost between
        except Exception as err:
            self.counts["errors"] += 1
            _log.error(
                "webhooks.group_record_failed", delivery_id=held.item.delivery_id, error=repr(err)
            )
            self._forget(held)  # unacknowledged: attempted again after the takeover time
            return
        await quietly(held.msg.ack())
        assert self._leases is not None
        await quietly(self._leases.release(held.lease))
        self.counts["finished"] += 1
        self._forget(held)

    def _forget(self, held: _Held) -> None:
        if self._held.get(held.item.delivery_id) is held:
            del self._held[held.item.delivery_id]
        self._room.set()

    async def _heartbeat(self) -> None:
        """Every quarter of the takeover time: keep every held message alive and renew every
        held lease (concurrently: one loop, however many jobs are held)."""
        every = self.takeover_seconds / 4
        while True:
            await asyncio.sleep(every)
            held = list(self._held.values())
            if held:
                await asyncio.gather(*(self._keep(entry, every) for entry in held))

    async def _keep(self, held: _Held, within: float) -> None:
        assert self._leases is not None
        if held.finished or held.lost:
            return
        await quietly(held.msg.in_progress())
        try:
            renewed = await asyncio.wait_for(asyncio.shield(self._renew(held)), within)
        except Exception as err:  # the server away: keep trying while the lease lasts
            _log.debug("webhooks.group_renew_failed", error=repr(err))
            if held.lease.until <= time.time():
                self._lose(held)
            return
        if renewed is None:
            self._lose(held)

    def _renew(self, held: _Held) -> asyncio.Task[Lease | None]:
        assert self._leases is not None
        if held.renewing is None or held.renewing.done():
            held.renewing = asyncio.get_running_loop().create_task(self._renew_now(held))
        return held.renewing

    async def _renew_now(self, held: _Held) -> Lease | None:
        assert self._leases is not None
        if held.finished:
            return held.lease
        renewed = await self._leases.renew(held.lease)
        if renewed is not None:
            held.lease = renewed  # here, so a renewal nobody waits for any more still counts
        return renewed

    def _lose(self, held: _Held) -> None:
        if held.lost or held.finished:
            return
        held.lost = True
        self.counts["lost"] += 1
        self._abandoned.add(held.item.delivery_id)
        self._forget(held)

    async def guard(self, delivery_id: str, attempt_seconds: float) -> None:
        """Return when this member may start an attempt of ``attempt_seconds``: it holds the
        lease for that long (renewing first if needed).

        Raises:
            asyncio.CancelledError: the job was abandoned (another member took it over): the
                attempt must not start, and nothing is recorded.
        """
        if delivery_id in self._abandoned:
            self._abandon_attempt(delivery_id)
        held = self._held.get(delivery_id)
        if held is None:
            return  # not a group job (a test send)
        assert self._leases is not None
        need = attempt_seconds + self.takeover_seconds / 8
        while not held.lost and held.lease.until - time.time() < need:
            try:
                renewed = await asyncio.shield(self._renew(held))
            except Exception as err:
                _log.debug("webhooks.group_renew_failed", error=repr(err))
                if held.lease.until <= time.time():
                    self._lose(held)
                    break
                await asyncio.sleep(0.1)
                continue
            if renewed is None:
                self._lose(held)
                break
        if held.lost:
            self._abandon_attempt(delivery_id)

    def _abandon_attempt(self, delivery_id: str) -> None:
        """End an abandoned job's attempt before it starts: its actor worker task ends (a
        fresh one is spawned for the rest of the mailbox) and its chain with it."""
        _log.error("webhooks.group_attempt_abandoned", delivery_id=delivery_id)
        self._abandoned.discard(delivery_id)
        runtime = self._runtime
        if runtime is not None:
            for actor in list(runtime.actors.values()):
                asyncio.get_running_loop().call_soon(actor._spawn)
        raise asyncio.CancelledError

    # -- redeliveries and the shared counters ---------------------------------------------------

    async def publish_rounds(self, jobs: list[DeliveryJob]) -> None:
        """Hand new rounds (redeliver, replay_failed) to the group's workers."""
        _, js = await self._js()
        items = [WorkItem(job.delivery_id, job.webhook_id, job.round_start) for job in jobs]
        await publish_work(js, self.names, items)

    def _on_result(self, item: Any) -> None:
        if not isinstance(item, AttemptResult) or not item.attempted or item.outcome == "retry":
            return
        task = asyncio.get_running_loop().create_task(self._bump(item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bump(self, result: AttemptResult) -> None:
        """Fold a finished delivery into the group's counters; disable at the threshold."""
        try:
            state = await self._store.bump_state(
                result.webhook_id,
                success=result.outcome == "success",
                at=result.finished_at,
                status_code=result.status_code,
            )
        except Exception as err:
            self.counts["errors"] += 1
            _log.error("webhooks.group_state_failed", webhook_id=result.webhook_id, error=repr(err))
            return
        if result.outcome == "failed" and state.consecutive_failures >= self._disable_after:
            self._on_disable(
                result.webhook_id, f"{state.consecutive_failures} consecutive failed deliveries"
            )

    def on_registry_change(self, webhook_id: str, webhook: Webhook | None) -> None:
        """A webhook changed in the shared registry (any member): follow it here."""
        runtime = self._runtime
        if runtime is None:
            return
        if webhook is None:
            actor = runtime.actors.pop(webhook_id, None)
            if actor is not None:
                task = asyncio.get_running_loop().create_task(actor.close())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return
        if webhook_id in runtime.actors:
            runtime.update(webhook)
        else:
            runtime.add(webhook)

    def report(self) -> dict[str, Any]:
        """This member's group figures, for ``get_metrics()``."""
        fanout = self.fanout
        return {
            "owner": self.owner,
            "held": len(self._held),
            "takeover_seconds": self.takeover_seconds,
            "events_fanned_out": fanout.events if fanout else 0,
            "work_published": fanout.deliveries if fanout else 0,
            "leases_lost": self._leases.lost if self._leases else 0,
            "ack_failures": ACK_FAILURES.value,
            **self.counts,
        }


async def _ensure_stream(js: JetStreamContext, config: Any) -> None:
    import nats.js.errors

    try:
        await js.stream_info(config.name)
    except nats.js.errors.NotFoundError:
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await js.stream_info(config.name)  # created meanwhile by another member


async def _ensure_consumer(js: JetStreamContext, stream: str, config: Any) -> None:
    import nats.js.errors

    try:
        await js.consumer_info(stream, config.durable_name)
    except nats.js.errors.NotFoundError:
        try:
            await js.add_consumer(stream, config=config)
        except nats.js.errors.BadRequestError:
            await js.consumer_info(stream, config.durable_name)
