"""The delivery pipeline and the per-webhook actor.

::

    inbound events ─filter(webhook matches)─map(new delivery, recorded)─┐
    resumed, redelivered and replayed deliveries ───────────────────────┴▶ mailbox
    mailbox ─▶ at most max_in_flight workers ─▶ first attempt ─▶ results
                                                   │ failed, retryable
    retries ─flat_map(defer(attempt via the mailbox) ◀┘
                      .pipe(retry_when(backoff_notifier(the decided delay))))─▶ results
    results ─scan─▶ metrics (in the manager's runtime)

Each webhook is an actor: its mailbox and at most ``max_in_flight`` worker tasks, so a slow or
dead endpoint only occupies its own workers. A delivery waiting for a retry sits in a timer on
the asyncio scheduler, not in the mailbox: it holds nothing up. The actor decides each
outcome (:mod:`outcome`) and records it before emitting it; the notifier only turns the
decided delay into a timer. A first attempt has no Rx subscription of its own: a reactivex
subscription costs about 30 µs here and the whole retry chain about 500 µs, more than an
HTTP round trip, so a delivery enters the retry chain only once an attempt failed (the
chain's first subscription replays that failure).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable, Disposable
from reactivex.subject import Subject

from mnemo_events._log import logger
from mnemo_events.event import Event
from mnemo_events.operators import backoff_notifier, retry_when
from mnemo_events.patterns import TypeCache
from mnemo_events.webhooks._metrics import AttemptResult, Queued
from mnemo_events.webhooks._outcome import (
    DeliveryJob,
    attempt_rows,
    decide,
    log_attempt,
    log_unattempted,
    new_delivery_id,
)
from mnemo_events.webhooks._sender import Prepared, Response
from mnemo_events.webhooks._store import WebhookState
from mnemo_events.webhooks.models import Webhook

if TYPE_CHECKING:
    from mnemo_events.webhooks._runtime import ActorContext

__all__ = ["RetryScheduled", "WebhookActor"]

_log = logger("webhooks")


class RetryScheduled(Exception):
    """An attempt failed and another follows after ``delay`` seconds (drives ``retry_when``)."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.delay = delay


@dataclass(slots=True)
class _Entry:
    job: DeliveryJob
    observer: abc.ObserverBase[Any] | None
    """The retry pipeline's observer, or ``None`` for a first attempt (no Rx subscription)."""
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class _Retry:
    job: DeliveryJob
    delay: float
    attempted: bool = True
    """False for a resumed delivery whose wait comes before any attempt of this run."""


def _delay_of(_retry_number: int, error: Exception) -> float | None:
    return error.delay if isinstance(error, RetryScheduled) else None


class WebhookActor:
    """One webhook's mailbox, workers and pipeline (see the module docstring)."""

    def __init__(self, webhook: Webhook, context: ActorContext, state: WebhookState) -> None:
        self._ctx = context
        self.state = state
        self._mailbox: deque[_Entry] = deque()
        self._workers: set[asyncio.Task[None]] = set()
        self._busy = 0
        self._running = False
        self._closed = False
        self._injected: Subject[DeliveryJob] = Subject()
        self._retries: Subject[_Retry] = Subject()
        self._subscription: abc.DisposableBase | None = None
        self._types = TypeCache(self._decide)
        self._prepared = Prepared(webhook, allow_private_networks=context.allow_private_networks)

    @property
    def webhook(self) -> Webhook:
        """The webhook's current configuration."""
        return self._prepared.webhook

    @property
    def in_flight(self) -> int:
        """Attempts running now."""
        return self._busy

    def update(self, webhook: Webhook) -> None:
        """Use a new configuration from the next attempt on."""
        self._prepared = Prepared(webhook, allow_private_networks=self._ctx.allow_private_networks)
        self._types.clear()

    # -- the pipeline ------------------------------------------------------------------------

    def connect(self, inbound: Observable[Event]) -> None:
        """Subscribe this webhook's pipeline to the inbound events (see the module docstring)."""
        # No subscribe-time scheduler: subscriptions happen synchronously (an event published
        # right after registration is not missed); only the timers use the asyncio scheduler.
        self._subscription = CompositeDisposable(
            inbound.pipe(ops.filter(self._accepts), ops.map(self._new_job)).subscribe(
                self._admit, self._stream_error
            ),
            self._injected.subscribe(self._admit, self._stream_error),
            self._retries.pipe(ops.flat_map(self._retrying)).subscribe(
                self._ctx.results.on_next, self._stream_error
            ),
        )

    def inject(self, job: DeliveryJob) -> None:
        """Send a delivery read back from the store (resumed, redelivered, replayed)."""
        self._injected.on_next(job)

    def _accepts(self, event: Event) -> bool:
        return self._types(event.type)

    def _decide(self, event_type: str) -> bool:
        webhook = self.webhook
        return webhook.enabled and webhook.matches(event_type)

    def _new_job(self, event: Event) -> DeliveryJob | None:
        try:
            job = DeliveryJob(
                new_delivery_id(), self.webhook.id, event.id, event.type, event.to_json()
            )
            job.persisted = self._ctx.store.add_delivery(
                job.delivery_id, job.webhook_id, job.event_id, job.event_type, job.body, time.time()
            )
        except Exception as err:  # one bad event must not end the webhook's pipeline
            self._pipeline_error(err)
            return None
        return job

    def _admit(self, job: DeliveryJob | None) -> None:
        if job is None:  # _new_job failed, logged and counted
            return
        self._ctx.results.on_next(Queued(job.webhook_id, job.delivery_id))
        if job.delay > 0:  # a resumed delivery keeps the retry time it was given
            self._retries.on_next(_Retry(job, job.delay, attempted=False))
        else:
            self._mailbox.append(_Entry(job, None))
            self._spawn()

    def _retrying(self, retry: _Retry) -> Observable[Any]:
        """The delivery after a failed attempt: one deferred attempt, resubscribed by
        ``retry_when`` each time ``backoff_notifier``'s timer fires."""
        job = retry.job
        replay = [retry.attempted]

        def _next_attempt(_: abc.SchedulerBase | None) -> Observable[Any]:
            if replay[0]:  # the attempt that failed already ran: start with its error
                replay[0] = False
                return reactivex.throw(RetryScheduled(retry.delay))
            return self._attempt(job)

        retried = reactivex.defer(_next_attempt).pipe(
            retry_when(backoff_notifier(_delay_of, scheduler=self._ctx.scheduler)),
            ops.catch(lambda err, _: self._pipeline_error(err, job)),
        )
        if retry.attempted:
            return retried
        # A resumed delivery first waits out the retry time it was given, once.
        return reactivex.timer(retry.delay, scheduler=self._ctx.scheduler).pipe(
            ops.flat_map(lambda _: retried)
        )

    def _stream_error(self, err: Exception) -> None:
        self._pipeline_error(err)

    def _pipeline_error(self, err: Exception, job: DeliveryJob | None = None) -> Observable[Any]:
        """Log and count an error that reached the pipeline (a bug): one delivery's chain ends
        (it stays pending in the store, resumed at the next start), the others go on."""
        self._ctx.count("pipeline_errors")
        _log.error(
            "webhooks.pipeline_error",
            webhook_id=self.webhook.id,
            delivery_id=None if job is None else job.delivery_id,
            error=repr(err),
        )
        return reactivex.empty()

    def _attempt(self, job: DeliveryJob) -> Observable[Any]:
        def _subscribe(
            observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            entry = _Entry(job, observer)
            self._mailbox.append(entry)
            self._spawn()

            def _cancel() -> None:
                entry.cancelled = True

            return Disposable(_cancel)

        return Observable(_subscribe)

    # -- the actor ---------------------------------------------------------------------------

    def start(self) -> None:
        """Let workers take attempts from the mailbox."""
        self._running = True
        self._spawn()

    def _spawn(self) -> None:
        # Idle workers are about to take an entry; add workers for the rest, up to the bound.
        while (
            self._running
            and len(self._workers) < self._ctx.max_in_flight
            and len(self._workers) - self._busy < len(self._mailbox)
        ):
            task = asyncio.get_running_loop().create_task(self._work())
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def _work(self) -> None:
        me = asyncio.current_task()
        try:
            while self._running and self._mailbox:
                entry = self._mailbox.popleft()
                if entry.cancelled:
                    continue
                self._busy += 1
                try:
                    await self._run(entry)
                except Exception as err:  # a bug here must not kill the worker silently
                    self._ctx.count("attempt_errors")
                    _log.exception(
                        "webhooks.attempt_crashed",
                        webhook_id=entry.job.webhook_id,
                        delivery_id=entry.job.delivery_id,
                        error=repr(err),
                    )
                    if not entry.cancelled and entry.observer is not None:
                        entry.observer.on_error(err)
                finally:
                    self._busy -= 1
        finally:
            # Leave the pool in the same step as the last empty-mailbox check: an attempt
            # queued later (a zero-delay retry) then sees no idle worker and spawns one.
            if me is not None:
                self._workers.discard(me)

    async def stop(self, grace: float) -> None:
        """Take no new attempts; wait up to ``grace`` s for running ones, then cancel them.

        Deliveries left in the mailbox or waiting for a retry stay pending in the store.
        """
        self._running = False
        if self._workers:
            _, late = await asyncio.wait(set(self._workers), timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        self.disconnect()

    def disconnect(self) -> None:
        """Dispose the pipeline: pending retry timers and queued attempts are dropped."""
        if self._subscription is not None:
            self._subscription.dispose()
            self._subscription = None
        for entry in self._mailbox:
            entry.cancelled = True
        self._mailbox.clear()

    async def close(self) -> None:
        """Stop at once (the webhook was deleted): cancel running attempts too."""
        self._closed = True
        await self.stop(0.0)

    async def _run(self, entry: _Entry) -> None:
        job = entry.job
        if job.persisted is not None:
            try:
                # Shared by a whole batch: a cancelled worker must not cancel it for the others.
                persisted = job.persisted
                await (persisted if persisted.done() else asyncio.shield(persisted))
            except Exception as err:  # better sent without a record than not sent at all
                self._ctx.count("store_errors")
                _log.error(
                    "webhooks.delivery_not_recorded", delivery_id=job.delivery_id, error=repr(err)
                )
            job.persisted = None
        prepared = self._prepared
        webhook = prepared.webhook
        if self._closed or not webhook.enabled:
            self._finish_unattempted(
                entry, "webhook deleted" if self._closed else "webhook disabled"
            )
            return
        number = job.attempts + 1
        started = time.time()
        response = await self._ctx.sender.send(
            prepared, job.delivery_id, job.event_type, job.body, number
        )
        job.attempts = number
        self._settle(entry, webhook, response, number, started)

    def _settle(
        self, entry: _Entry, webhook: Webhook, response: Response, number: int, started: float
    ) -> None:
        job = entry.job
        outcome, retry_in = decide(response, number - job.round_start, webhook.retry_config)
        now = time.time()
        self._ctx.store.record_attempt(
            *attempt_rows(job, number, started, now, outcome, retry_in, response)
        )
        state = self.state
        state.last_delivery_at = now
        if outcome == "success":
            state.consecutive_failures = 0
            state.last_success_at = now
        elif outcome == "failed":
            state.consecutive_failures += 1
            state.last_failure_at = now
        if outcome != "retry":
            self._ctx.store.save_state(state)
        if outcome != "success" or _log.is_enabled_for(logging.DEBUG):
            log_attempt(job, number, outcome, response, retry_in)
        if response.gone:
            self._ctx.on_disable(webhook.id, "the endpoint answered 410 Gone")
        elif outcome == "failed" and state.consecutive_failures >= self._ctx.disable_after_failures:
            self._ctx.on_disable(
                webhook.id, f"{state.consecutive_failures} consecutive failed deliveries"
            )
        result = AttemptResult(
            job.webhook_id,
            job.delivery_id,
            job.event_id,
            number,
            outcome,
            response.status_code,
            response.error,
            response.latency_ms,
            retry_in,
            job.retrying,
        )
        job.retrying = outcome == "retry"
        self._emit(entry, result, retry_in)

    def _emit(self, entry: _Entry, result: AttemptResult, retry_in: float | None) -> None:
        """Hand a result on: straight to the results for a first attempt (a failure enters
        the retry pipeline), or to the retry pipeline's observer."""
        if entry.cancelled:
            return
        observer = entry.observer
        if observer is None:
            self._ctx.results.on_next(result)
            if retry_in is not None:
                self._retries.on_next(_Retry(entry.job, retry_in))
            return
        observer.on_next(result)
        if retry_in is not None:
            observer.on_error(RetryScheduled(retry_in))
        else:
            observer.on_completed()

    def _finish_unattempted(self, entry: _Entry, reason: str) -> None:
        job = entry.job
        now = time.time()
        self._ctx.store.record_attempt(
            None,
            ("failed", job.attempts, None, now, None, reason, None, None, job.delivery_id),
        )
        log_unattempted(job, reason)
        result = AttemptResult(
            job.webhook_id,
            job.delivery_id,
            job.event_id,
            job.attempts,
            "failed",
            None,
            reason,
            None,
            None,
            job.retrying,
            attempted=False,
        )
        self._emit(entry, result, None)
