"""A durable subscription: a named JetStream pull consumer, at-least-once, shared by name.

Each event is fetched when the handler is ready for it, so ``ack_wait`` only has to cover one
handler call. A handler that returns acknowledges the event; one that raises or outlives
``delivery_timeout`` gets it again after the retry schedule's delay (``nak(delay)``), up to
``max_attempts`` deliveries; then the event is terminated (``term``): counted, logged as
``bus.durable_terminated``, never redelivered. A process that dies mid-event leaves it
unacknowledged, so the server redelivers it after ``ack_wait`` to whichever process reads the
consumer. Every process subscribing with the same durable name shares the consumer's events.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from nats.js import api
from nats.js.errors import NotFoundError

from mnemo_events._log import logger
from mnemo_events.bus._aio import cancel_and_wait
from mnemo_events.bus._jetstream_feed import decode_event
from mnemo_events.bus._subscription import (
    _PASSTHROUGH,
    EventFilter,
    Handler,
    SubscriptionInfo,
    _name_of,
)
from mnemo_events.config import RetryConfig
from mnemo_events.event import Event
from mnemo_events.patterns import Pattern
from mnemo_events.webhooks.backoff import schedule

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

__all__ = ["DurableSubscription"]

_log = logger("bus")
_FETCH_WAIT = 5.0
_RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0)

Connect = Callable[[], Awaitable[tuple["Client", "JetStreamContext"]]]


class DurableSubscription:
    """One process's reader of a durable consumer, calling one handler."""

    def __init__(
        self,
        *,
        connect: Connect,
        stream: str,
        prefix: str,
        subscription_id: str,
        pattern: Pattern,
        handler: Handler,
        event_filter: EventFilter | None,
        durable: str,
        retry: RetryConfig,
        delivery_timeout: float,
        max_ack_pending: int,
        start_at: str | datetime | int = "new",
        start_given: bool = False,
    ) -> None:
        self.id = subscription_id
        self.pattern = pattern
        self.handler = handler
        self.event_filter = event_filter
        self.durable = durable
        self.enabled = True
        self._connect = connect
        self._stream = stream
        self._subject = pattern.to_nats_subject(prefix)
        self._retry = retry
        self._delays = schedule(retry)
        self._timeout = delivery_timeout
        self._max_ack_pending = max_ack_pending
        self.start_at = start_at
        """Where the consumer begins when this subscription creates it: "new", "all", a
        time or a stream sequence. A consumer that exists keeps its own position."""
        self._start_given = start_given
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.errors = 0
        self.timeouts = 0
        self.redelivered = 0
        """Events received again (after a failure, a time-out or a crashed reader)."""
        self.terminated = 0
        """Events given up on after ``max_attempts`` deliveries (poison)."""
        self.undecodable = 0
        self.last_delivery_at: float | None = None
        self.last_error: str | None = None
        self._log = _log.bind(subscription_id=subscription_id, durable=durable)

    @property
    def ack_wait(self) -> float:
        """Seconds the server waits for an acknowledgement before redelivering."""
        return self._timeout + max(1.0, self._timeout / 2)

    def start(self) -> None:
        """Start (or restart, on the running loop) the reading task."""
        loop = asyncio.get_running_loop()
        task = self._task
        if task is not None and not task.done() and task.get_loop() is loop:
            return
        self._task = loop.create_task(self._run(), name=f"mnemo-events durable {self.durable}")

    def cancel(self) -> None:
        """Cancel the reading task without waiting for it (``stop`` awaits it)."""
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        """Stop reading; an event in the handler is left unacknowledged (redelivered later)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def consumer_config(self) -> api.ConsumerConfig:
        """The consumer this subscription creates when the server has none by its name."""
        config = api.ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            deliver_policy=api.DeliverPolicy.NEW,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=self._retry.max_attempts,
            filter_subject=self._subject,
            max_ack_pending=self._max_ack_pending,
        )
        start = self.start_at
        if start == "all":
            config.deliver_policy = api.DeliverPolicy.ALL
        elif isinstance(start, datetime):
            config.deliver_policy = api.DeliverPolicy.BY_START_TIME
            config.opt_start_time = start
        elif isinstance(start, int):
            config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = start
        return config

    async def _bind_consumer(self, js: JetStreamContext) -> None:
        """Create the consumer with :meth:`consumer_config`, or keep the existing one."""
        try:
            info = await js.consumer_info(self._stream, self.durable)
        except NotFoundError:
            await js.add_consumer(self._stream, config=self.consumer_config())
            return
        if self._start_given:
            self._start_given = False  # said once per subscription, not per reconnection
            self._log.info(
                "bus.durable_start_kept",
                requested=str(self.start_at),
                deliver_policy=str(getattr(info.config.deliver_policy, "value", None)),
                pending=info.num_pending,
                hint="the durable exists: it resumes where it left off",
            )

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                _, js = await self._connect()
                await self._bind_consumer(js)
                sub = await js.pull_subscribe_bind(self.durable, stream=self._stream)
                failures = 0
                try:
                    while True:
                        try:
                            msgs = await sub.fetch(1, timeout=_FETCH_WAIT)
                        except TimeoutError:
                            continue  # nothing new (or the server is away: ask again)
                        for msg in msgs:
                            await self._handle(msg)
                finally:
                    await _quietly(sub.unsubscribe())
            except asyncio.CancelledError:
                raise
            except Exception as err:
                delay = _RETRY_DELAYS[min(failures, len(_RETRY_DELAYS) - 1)]
                failures += 1
                self._log.warning("bus.durable_reconnecting", error=repr(err), retry_in=delay)
                await asyncio.sleep(delay)

    async def _handle(self, msg: Msg) -> None:
        attempt = msg.metadata.num_delivered
        if attempt > 1:
            self.redelivered += 1
        try:
            event = decode_event(msg.data)
        except Exception as err:
            self.undecodable += 1
            self._log.error("bus.jetstream_undecodable", stream=self._stream, error=repr(err))
            await _quietly(msg.term())
            return
        failure = await self._call(event)
        self.last_delivery_at = time.time()
        if failure is None:
            self.delivered += 1
            await _quietly(msg.ack())
            return
        self.errors += 1
        self.last_error = failure
        if attempt >= self._retry.max_attempts:
            self.terminated += 1
            self._log.error(
                "bus.durable_terminated",
                event_id=event.id,
                event_type=event.type,
                attempts=attempt,
                error=failure,
            )
            await _quietly(msg.term())
            return
        delay = self._delays[min(attempt - 1, len(self._delays) - 1)] if self._delays else 0.0
        self._log.warning(
            "bus.durable_redelivery_scheduled",
            event_id=event.id,
            event_type=event.type,
            attempt=attempt,
            retry_in=delay,
            error=failure,
        )
        await _quietly(msg.nak(delay=delay))

    async def _call(self, event: Event) -> str | None:
        """Run the filter and handler within ``delivery_timeout``; the failure, or None."""
        if not self.enabled:
            return "subscription disabled"
        try:
            if self.event_filter is not None and not self.event_filter(event):
                return None
            timer = asyncio.timeout(self._timeout)
            try:
                async with timer:
                    result = self.handler(event)
                    if inspect.isawaitable(result):
                        await result
            except TimeoutError:
                if not timer.expired():
                    raise
                self.timeouts += 1
                self._log.error("bus.handler_timeout", event_id=event.id, event_type=event.type)
                return "handler timed out"
        except _PASSTHROUGH:
            raise
        except BaseException as err:
            # As in the in-process actor: a CancelledError the handler met (a future someone
            # else cancelled) or a GeneratorExit is the handler's failure, redelivered like
            # any other; only the consumer's own cancellation ends it.
            if isinstance(err, asyncio.CancelledError):
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
            self._log.error(
                "bus.handler_failed",
                event_id=event.id,
                event_type=event.type,
                error=f"{type(err).__name__}: {err}",
                exc_info=err,
            )
            return f"{type(err).__name__}: {err}"
        return None

    def info(self) -> SubscriptionInfo:
        """A snapshot in the shape of every other subscription's."""
        last = self.last_delivery_at
        return SubscriptionInfo(
            id=self.id,
            pattern=self.pattern.text,
            handler=_name_of(self.handler),
            enabled=self.enabled,
            delivered=self.delivered,
            errors=self.errors,
            timeouts=self.timeouts,
            pending=0,
            last_delivery_at=datetime.fromtimestamp(last, UTC) if last is not None else None,
            last_error=self.last_error,
        )

    def figures(self) -> dict[str, object]:
        """The durable's own counters, for ``get_stats()``."""
        return {
            **self.info().to_dict(),
            "durable": self.durable,
            "redelivered": self.redelivered,
            "terminated": self.terminated,
            "undecodable": self.undecodable,
        }


async def _quietly(step: Awaitable[object]) -> None:
    """An acknowledgement or clean-up: bounded, a failure logged (the server redelivers)."""
    try:
        await asyncio.wait_for(step, 2.0)
    except Exception as err:
        _log.debug("bus.durable_ack_failed", error=repr(err))
