"""The event bus: an actor that pushes published events through an RxPY Subject.

::

    publish() ─▶ mailbox ─▶ bus task ─▶ Subject ─┬─▶ router ─▶ subscription actors ─▶ handlers
                (bounded)                        └─▶ scan ─▶ history, per-type counts

``publish`` only validates, freezes and queues the event, so engine code never runs
subscriber code on its own stack. One bus task moves events from the mailbox into the Subject;
the router hands each to the actors of the matching subscriptions, and each actor calls its
handler in its own task, in publish order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pydantic import BaseModel
from reactivex import Observable
from reactivex import operators as ops
from reactivex.scheduler.eventloop import AsyncIOScheduler
from reactivex.subject import Subject

from mnemo_events._log import logger
from mnemo_events.bus import _jetstream_bus as _js
from mnemo_events.bus._batch import BatchItem, batch_event
from mnemo_events.bus._dispatch import BusState, Dispatcher, Watchdog
from mnemo_events.bus._jetstream_config import JetStreamConfig
from mnemo_events.bus._jetstream_observable import EventReplay
from mnemo_events.bus._observer import BusObserver
from mnemo_events.bus._publish_checks import PayloadChecker
from mnemo_events.bus._reducers import StreamState, recent_events, record_batch
from mnemo_events.bus._router import Batch, Router
from mnemo_events.bus._stream import EventStream, observable_of, open_stream
from mnemo_events.bus._subscription import Handler, SubscriptionActor, SubscriptionInfo
from mnemo_events.bus._subscriptions import SubscriptionTable, new_subscription_id
from mnemo_events.bus._transport import MemoryTransport, Transport, TransportState
from mnemo_events.bus._typed import model_payload, once_handler, typed_handler
from mnemo_events.config import EventsConfig, RetryConfig, load_config
from mnemo_events.event import Event, fresh_event
from mnemo_events.exceptions import BusClosedError, BusNotRunningError, ConfigError
from mnemo_events.patterns import parse_pattern

if TYPE_CHECKING:
    from mnemo_events.bus._jetstream import JetStreamTransport

__all__ = [
    "BusObserver",
    "BusState",
    "Event",
    "EventBus",
    "EventFilter",
    "EventHandler",
    "JetStreamTransport",
    "Subscription",
    "SubscriptionInfo",
    "Transport",
    "TransportState",
    "get_event_bus",
    "reset_event_bus",
]

_log = logger("bus")
_running_loop = asyncio.get_running_loop
_DEBUG = logging.DEBUG
_CLOSED = BusState.CLOSED

TypedHandler = Callable[[Any], Any]
"""A handler taking a registered payload model (``def h(payload: MemoryCreated)``)."""
_H = TypeVar("_H", bound=Callable[..., Any])
EventHandler = Handler
"""A subscriber: ``handler(event)``, a plain or a coroutine function (MnemoCore's name)."""
EventFilter = Callable[[Event], bool]
"""A predicate an event must also satisfy (MnemoCore's name)."""
Subscription = SubscriptionInfo
"""MnemoCore's name for a subscription record: here the snapshot :class:`SubscriptionInfo`,
also readable with MnemoCore's keys (``s["error_count"]``)."""


def __getattr__(name: str) -> Any:
    # JetStreamTransport loads nats-py (and aiohttp): only when asked for.
    if name == "JetStreamTransport":
        from mnemo_events.bus._jetstream import JetStreamTransport

        return JetStreamTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class EventBus:
    """Publish/subscribe with per-subscriber actors, bounded backpressure and drain on stop.

    Args:
        config: the ``events:`` settings; keyword ``overrides`` replace single fields
            (``EventBus(max_queue_size=100)``).
        transport: where accepted events wait until this process dispatches them; None (the
            default) is the in-process :class:`~mnemo_events.bus._transport.MemoryTransport`
            with ``max_queue_size`` and ``publish_timeout``.

    Raises:
        ConfigError: ``transport`` is neither None nor a :class:`Transport`.
    """

    def __init__(
        self,
        config: EventsConfig | None = None,
        *,
        transport: Transport | str | JetStreamConfig | None = None,
        **overrides: Any,
    ) -> None:
        base = config or EventsConfig()
        self.config = (
            EventsConfig.model_validate({**base.model_dump(), **overrides}) if overrides else base
        )
        cfg = self.config
        self._state = BusState.NEW
        self._transport = _resolve_transport(transport, cfg)
        self._memory = self._transport if type(self._transport) is MemoryTransport else None
        self._subject: Subject[Batch] = Subject()
        self._router = Router()
        self._subscriptions = SubscriptionTable(self._router)
        self._stream = StreamState.empty(cfg.history_size)
        self._checker = PayloadChecker(cfg.validation)
        self._validating = cfg.validation != "off"
        self._fresh = self._checker.fresh if self._validating else fresh_event
        """publish's event builder: checked and frozen, or only frozen (``validation: off``)."""
        self._max_bytes = cfg.max_payload_bytes
        self._skipped_disabled = 0
        self._dispatcher = Dispatcher(self._subject.on_next, self._subscriptions.congested)
        self._watchdog = Watchdog(self._subscriptions.actors, cfg.delivery_timeout)
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop the bus was last started (or rebound) on."""
        self._started_at: float | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._disabled_warned = False
        self._enabled = cfg.enabled
        self._stream_ids: set[str] = set()
        # The reducers' output is the bus's memory of its stream: get_history, get_metrics
        # and get_stats read the state the scan last emitted.
        self._subject.pipe(ops.scan(record_batch, self._stream)).subscribe(
            self._set_stream, on_error=self._on_reducer_error
        )
        self._subject.subscribe(self._router.on_next, on_error=self._on_reducer_error)
        self._companions: list[Any] = []
        self._companion_tasks: set[asyncio.Task[None]] = set()
        self._feeds: weakref.WeakSet[BusObserver] = weakref.WeakSet()

    def _set_stream(self, state: StreamState) -> None:
        self._stream = state

    # -- properties ----------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """False when ``events.enabled`` is off: ``publish`` then dispatches nothing."""
        return self.config.enabled

    @property
    def state(self) -> BusState:
        """The lifecycle state."""
        return self._state

    @property
    def is_running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._state in (BusState.RUNNING, BusState.STOPPING)

    @property
    def transport(self) -> Transport:
        """The transport events travel through (its ``state`` is the connection state)."""
        return self._transport

    @property
    def scheduler(self) -> AsyncIOScheduler:
        """An RxPY scheduler on the running event loop, for time-based operators."""
        return AsyncIOScheduler(asyncio.get_running_loop())

    # -- subscriptions -------------------------------------------------------------------------

    def subscribe(
        self,
        event_pattern: str,
        handler: Handler | TypedHandler,
        event_filter: Callable[[Event], bool] | None = None,
        enabled: bool = True,
        *,
        durable: str | None = None,
        retry: RetryConfig | None = None,
        start: str | datetime | int | None = None,
    ) -> str:
        """Call ``handler(event)`` for every event whose type matches ``event_pattern``.

        ``handler`` may be a plain or a coroutine function; ``event_filter`` a predicate that
        must also hold; ``enabled=False`` subscribes disabled (see ``enable_subscription``).
        A handler whose first parameter is annotated with a registered payload model
        (``def h(p: MemoryCreated)``) receives that model instead of the event. Returns the
        subscription id (``"sub_..."``).

        On a JetStream transport, ``durable="name"`` makes it a durable subscription: it
        resumes where it left off after a restart, every process using the name shares its
        events, and an event whose handler raises or times out is redelivered after the
        ``retry`` schedule's delays (default ``RetryConfig()``), ``max_attempts`` times in
        all, then terminated (counted and logged). ``start`` says where a new durable begins:
        ``"new"`` (the default: events stored from now on), ``"all"`` (the whole stream), a
        timezone-aware time or a stream sequence; a durable that exists keeps its position.
        Without ``durable``, subscriptions see events published from now on.

        Raises:
            InvalidPatternError: the pattern is malformed; the message names it.
            TypeError: ``handler`` or ``event_filter`` is not callable.
            BusClosedError: the bus was shut down.
            ConfigError: ``durable`` on a bus that does not run on JetStream, or ``start``
                without ``durable``.
            ValueError: ``start`` is none of those forms.
        """
        if durable is not None or start is not None:
            self._refuse_if_closed()
            return _js.subscribe_durable(
                self._transport,
                self.config,
                pattern=event_pattern,
                handler=typed_handler(handler),
                event_filter=event_filter,
                durable=durable,
                retry=retry,
                start=start,
            )
        actor = self._add(event_pattern, typed_handler(handler), event_filter)
        if not enabled:
            actor.enabled = False
        return actor.id

    @overload
    def on(
        self,
        event_pattern: str,
        handler: None = None,
        *,
        event_filter: Callable[[Event], bool] | None = None,
    ) -> Callable[[_H], _H]: ...

    @overload
    def on(
        self,
        event_pattern: str,
        handler: _H,
        *,
        event_filter: Callable[[Event], bool] | None = None,
    ) -> _H: ...

    def on(
        self,
        event_pattern: str,
        handler: _H | None = None,
        *,
        event_filter: Callable[[Event], bool] | None = None,
    ) -> Any:
        """Subscribe ``handler``, or, as ``@bus.on("memory.created")``, the decorated function.

        Returns the handler itself (not the subscription id), so decorated functions stay
        callable; ``bus.list_subscriptions(pattern)`` finds the subscription.
        """

        def register(function: _H) -> _H:
            self.subscribe(event_pattern, function, event_filter)
            return function

        return register if handler is None else register(handler)

    @overload
    def once(
        self,
        event_pattern: str,
        handler: None = None,
        *,
        event_filter: Callable[[Event], bool] | None = None,
    ) -> Callable[[_H], _H]: ...

    @overload
    def once(
        self,
        event_pattern: str,
        handler: _H,
        *,
        event_filter: Callable[[Event], bool] | None = None,
    ) -> _H: ...

    def once(
        self,
        event_pattern: str,
        handler: _H | None = None,
        *,
        event_filter: Callable[[Event], bool] | None = None,
    ) -> Any:
        """Like :meth:`on`, for the first matching event only: then the subscription ends."""

        def register(function: _H) -> _H:
            ids: list[str] = []
            wrapper = once_handler(lambda: self.unsubscribe(ids[0]), typed_handler(function))
            ids.append(self._add(event_pattern, wrapper, event_filter).id)
            return function

        return register if handler is None else register(handler)

    def as_observer(self, event_type: str | None = None) -> BusObserver:
        """An RxPY observer publishing each element it observes, in order.

        ``engine_events.subscribe(bus.as_observer())``: elements are Events, payload models,
        ``{"type", "data"}`` dicts or ``(type, data)`` tuples (any payload when
        ``event_type`` is given). A failing element is logged and counted, and the stream
        goes on; ``stop()`` publishes what was observed before it. Call it in the bus's loop.
        """
        observer = BusObserver(self, event_type)
        self._feeds.add(observer)
        return observer

    def add_companion(self, companion: Any) -> None:
        """Start and stop ``companion`` (its ``start()``/``stop()`` coroutines) with this bus.

        Started at once when the bus is already running on the current loop. Used by
        ``get_webhook_manager()`` so the shared manager follows the shared bus.
        """
        if companion in self._companions:
            return
        self._companions.append(companion)
        if not self.is_running:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop here: the next start() starts it
        task = loop.create_task(companion.start(), name="mnemo-events companion start")
        self._companion_tasks.add(task)
        task.add_done_callback(self._companion_started)

    def remove_companion(self, companion: Any) -> None:
        """Stop following ``companion`` (it is not stopped)."""
        if companion in self._companions:
            self._companions.remove(companion)

    def _companion_started(self, task: asyncio.Task[None]) -> None:
        self._companion_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._dispatcher.internal_errors += 1
            _log.error("bus.companion_failed", error=repr(task.exception()))

    async def _start_companions(self) -> None:
        for companion in list(self._companions):
            await companion.start()

    async def _stop_companions(self) -> None:
        if self._companion_tasks:
            await asyncio.gather(*self._companion_tasks, return_exceptions=True)
        for companion in reversed(self._companions):
            await companion.stop()

    async def _drain_feeds(self) -> None:
        for feed in list(self._feeds):
            await feed.drain()

    def _add(
        self,
        event_pattern: str,
        handler: Handler,
        event_filter: Callable[[Event], bool] | None,
        *,
        timed: bool = True,
    ) -> SubscriptionActor:
        self._refuse_if_closed()
        pattern = parse_pattern(event_pattern)
        if not callable(handler):
            raise TypeError(f"handler for {event_pattern!r} must be callable, got {handler!r}")
        if event_filter is not None and not callable(event_filter):
            raise TypeError(
                f"event_filter for {event_pattern!r} must be callable, got {event_filter!r}"
            )
        actor = SubscriptionActor(
            new_subscription_id(),
            pattern,
            handler,
            event_filter,
            timed=timed,
            capacity=self.config.subscriber_queue_size,
        )
        actor.on_crash = self._on_actor_crash
        self._subscriptions.add(actor)
        _js.want_feed(self._transport)  # JetStream: the live feed runs once someone listens
        loop = self._loop
        if self.is_running and loop is not None and loop.is_running():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                actor.start()
            else:  # subscribed from another thread: start the actor on the bus's loop
                loop.call_soon_threadsafe(actor.start)
        _log.debug("bus.subscribed", subscription_id=actor.id, pattern=pattern.text)
        return actor

    def unsubscribe(self, subscription_id: str) -> bool:
        """Remove a subscription; False if no subscription has that id.

        Events already queued for it are discarded (the count is logged).
        """
        return self._subscriptions.remove(subscription_id) or _js.remove_durable(
            self._transport, subscription_id
        )

    def unsubscribe_pattern(self, event_pattern: str) -> int:
        """Remove every subscription registered with exactly this pattern; returns the count."""
        doomed = self._subscriptions.ids_with_pattern(event_pattern)
        return sum(self.unsubscribe(sub_id) for sub_id in doomed)

    def disable_subscription(self, subscription_id: str) -> bool:
        """Stop delivering to a subscription without removing it; False if unknown."""
        return self._subscriptions.set_enabled(subscription_id, False)

    def enable_subscription(self, subscription_id: str) -> bool:
        """Resume delivering to a disabled subscription; False if unknown."""
        return self._subscriptions.set_enabled(subscription_id, True)

    def list_subscriptions(
        self,
        event_pattern: str | None = None,
        enabled_only: bool = False,
        *,
        enabled: bool | None = None,
    ) -> list[SubscriptionInfo]:
        """Snapshots of the subscriptions, optionally only those with exactly this pattern
        or this enabled state (durable ones included; ``enabled_only=True``, MnemoCore's form,
        is ``enabled=True``)."""
        if enabled_only and enabled is None:
            enabled = True
        durables = _js.durable_infos(self._transport, event_pattern)
        return self._subscriptions.snapshot(event_pattern, enabled) + [
            info for info in durables if enabled is None or info.enabled is enabled
        ]

    # -- streams for reactive and async code ---------------------------------------------------

    def observe(
        self, pattern: str = "*", event_filter: Callable[[Event], bool] | None = None
    ) -> Observable[Event]:
        """The live stream of matching events as an RxPY observable.

        Each subscription to it is a bus subscription with its own actor: observers are called
        on the event loop in publish order; an ``on_next`` that raises is logged and counted
        and the stream goes on. Disposing unsubscribes; shutting the bus down completes it.
        """
        parse_pattern(pattern)
        return observable_of(
            lambda on_next: self._add(pattern, on_next, event_filter), self._unsubscribe_quietly
        )

    def _unsubscribe_quietly(self, actor: SubscriptionActor) -> None:
        actor.on_closed = None
        self._stream_ids.discard(actor.id)
        self.unsubscribe(actor.id)

    def stream(self, pattern: str = "*", *, buffer: int = 1_000) -> EventStream:
        """The live stream of matching events as an async iterator (``async for``).

        Subscribes at once. At most ``buffer`` events wait for the consumer; beyond that
        they wait in this stream's subscription mailbox, so a slow consumer never slows the
        bus or other subscribers. Iteration ends when the bus stops or shuts down, after
        what was published before. ``async with bus.stream(...) as events:`` (or
        ``aclose()``) unsubscribes as soon as the consumer is done.
        """
        if buffer < 1:
            raise ValueError(f"buffer must be at least 1, got {buffer}")
        events, actor = open_stream(
            lambda deliver: self._add(pattern, deliver, None, timed=False),
            self._unsubscribe_quietly,
            buffer,
        )
        self._stream_ids.add(actor.id)
        return events

    # -- publishing ----------------------------------------------------------------------------

    async def publish(
        self,
        event_type: str | BaseModel,
        data: Mapping[str, Any] | BaseModel | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Event:
        """Validate, freeze and queue one event; returns it.

        Waits up to ``publish_timeout`` while the mailbox (or a subscriber's mailbox, through
        the bus task) is full. ``data`` and ``metadata`` must be strict RFC 8259 JSON: no NaN
        or infinity, no lone surrogate, integers within 64 bits, nesting at most 64 levels,
        at most ``max_payload_bytes`` of UTF-8 JSON each. A registered payload model may stand
        for both (``publish(MemoryCreated(...))``) or for ``data``.

        Raises:
            InvalidEventTypeError: the type is not a well-formed dotted name.
            EventValidationError: ``data`` is not a dict or not such JSON, or (``validation:
                strict``) breaks the schema of a registered type; nothing is published.
            QueueFullError: the event could not be queued for ``publish_timeout`` seconds.
            BusClosedError: the bus was shut down.
        """
        if type(event_type) is not str or type(data) is not dict:
            event_type, data = model_payload(event_type, data)
        if self._state is _CLOSED:
            self._refuse_if_closed()
        # Strict JSON first (bounded depth and size, refused in linear time), then the
        # schema, which then never sees a hostile shape; a flat payload of a registered type
        # gets both in one walk.
        event = self._fresh(event_type, data, metadata, self._max_bytes)
        if not self._enabled:
            self._skip_disabled(event)
            return event
        memory = self._memory
        if memory is not None and memory.live_loop is _running_loop():
            # The hot path: the pump runs on this loop; await only when it must wait.
            if not memory.try_accept(event):
                await memory.accept(event)
        else:
            await self._follow_loop()
            await self._transport.accept(event)
        if _log.is_enabled_for(_DEBUG):  # a tenth of what building the no-op call's kwargs costs
            _log.debug("bus.published", event_id=event.id, event_type=event.type)
        return event

    def publish_threadsafe(
        self,
        event_type: str,
        data: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
    ) -> concurrent.futures.Future[Event]:
        """Publish from another thread (engine code without an event loop of its own).

        Returns a future of the published event; ``.result()`` raises what ``publish`` would.

        Raises:
            RuntimeError: the bus is not running on an event loop.
        """
        loop = self._loop
        if self._state is not BusState.RUNNING or loop is None or not loop.is_running():
            raise BusNotRunningError(
                "publish_threadsafe needs a bus running on an event loop; await bus.start() "
                "in that loop first"
            )
        return asyncio.run_coroutine_threadsafe(self.publish(event_type, data, metadata), loop)

    async def publish_batch(
        self,
        items: Iterable[BatchItem],
    ) -> list[Event]:
        """Publish several events in order; every item is checked before any is queued.

        Items are dicts ``{"type", "data", "metadata"}`` or ``(type, data[, metadata])``
        tuples.

        Raises:
            EventValidationError: an item is malformed (its index is named); nothing is queued.
            Otherwise as :meth:`publish`, for the first event that cannot be queued.
        """
        self._refuse_if_closed()
        fresh, limit = self._fresh, self._max_bytes
        events = [batch_event(index, item, fresh, limit) for index, item in enumerate(items)]
        if not self._enabled:
            for event in events:
                self._skip_disabled(event)
            return events
        await self._follow_loop()
        await self._transport.accept_batch(events)
        _log.debug("bus.published_batch", count=len(events))
        return events

    def _skip_disabled(self, event: Event) -> None:
        self._skipped_disabled += 1
        if not self._disabled_warned:
            self._disabled_warned = True
            _log.warning("bus.disabled", event_type=event.type, hint="events.enabled is false")

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start dispatching (idempotent). Events queued before are delivered now.

        Raises:
            BusClosedError: the bus was shut down.
        """
        self._refuse_if_closed()
        loop = asyncio.get_running_loop()
        if self._state is BusState.RUNNING and self._loop is loop:
            return
        self._state = BusState.RUNNING
        self._started_at = time.monotonic()
        await self._launch(loop)
        _log.info(
            "bus.started",
            subscriptions=len(self._subscriptions),
            queued=self._transport.pending,
            transport=self._transport.name,
        )
        await self._start_companions()

    async def _launch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        await self._transport.start(self._dispatcher.deliver)
        self._watchdog.launch(loop)
        for actor in self._subscriptions.actors.values():
            if actor.needs_restart(loop):
                actor.start()

    async def stop(self) -> None:
        """Stop after delivering every event published before this call (idempotent).

        Each handler call stays bounded by ``delivery_timeout``. Events published while
        stopping stay queued for the next ``start()``. What could not be delivered (a
        stalled stream consumer, a subscription whose task died) is logged as
        ``bus.stopped_undrained`` with its count and stays visible in ``get_stats()``.
        """
        if self._state is BusState.STOPPING and self._stopped is not None:
            await asyncio.shield(self._stopped)  # a concurrent stop() is draining: wait for it
            return
        if self._state is not BusState.RUNNING:
            return
        await self._follow_loop()  # the loop that ran it may be gone; drain on this one
        self._state = BusState.STOPPING
        self._stopped = asyncio.get_running_loop().create_future()
        undelivered = 0
        try:
            await self._drain_feeds()
            transport = self._transport
            if not await transport.wait_delivered(transport.mark()):
                undelivered += transport.pending
            await transport.stop()
            undelivered += await self._subscriptions.drain(
                stream_timeout=self.config.delivery_timeout
            )
            for stream_id in list(self._stream_ids):
                self.unsubscribe(stream_id)  # ends the iterator after what it already holds
            await self._subscriptions.halt()
            await self._watchdog.halt()
        finally:
            self._state = BusState.STOPPED
            self._loop = None
            self._stopped.set_result(None)
            self._stopped = None
        await self._stop_companions()
        if undelivered:
            _log.warning("bus.stopped_undrained", undelivered=undelivered)
        _log.info("bus.stopped", dispatched=self._stream.dispatched, queued=self._transport.pending)

    async def flush(self, *, subscription_ids: Iterable[str] | None = None) -> None:
        """Return once every event published before the call is fully handled.

        "Fully handled" means dispatched to the given subscriptions (default: all) and
        their handler returned (or failed, or timed out: each counted as usual). Events
        published during the call are not waited for. Ids of subscriptions that no longer
        exist are ignored. Never call it from a handler of a subscription it waits for: that
        handler would wait for itself.

        Raises:
            BusClosedError: the bus was shut down.
            BusNotRunningError: the bus is not running (not started, or stopped meanwhile)
                while events it would wait for are still undelivered.
        """
        self._refuse_if_closed()
        ids = None if subscription_ids is None else list(subscription_ids)
        if self._state is BusState.RUNNING:
            await self._follow_loop()
            transport = self._transport
            if await transport.wait_delivered(transport.mark()):
                unfinished = await self._subscriptions.flush(ids)
                if not unfinished:
                    return
                owed = sum(count for _, count in unfinished)
                names = ", ".join(actor.id for actor, _ in unfinished)
                raise BusNotRunningError(
                    f"flush: subscriptions {names} stopped with {owed} events unhandled"
                )
        pending = self._transport.pending + sum(
            actor.pending
            for actor in self._subscriptions.actors.values()
            if ids is None or actor.id in ids
        )
        if pending:
            raise BusNotRunningError(
                f"flush: the event bus is {self._state.value} with {pending} events "
                "undelivered; await bus.start() first"
            )

    async def shutdown(self) -> None:
        """Stop, then release every subscription; the bus refuses further work."""
        if self._state is BusState.CLOSED:
            return
        await self.stop()
        for sub_id in list(self._subscriptions.actors):
            self.unsubscribe(sub_id)
        await self._subscriptions.halt()
        self._state = BusState.CLOSED
        _log.info("bus.shutdown", dispatched=self._stream.dispatched)

    async def __aenter__(self) -> EventBus:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    def _refuse_if_closed(self) -> None:
        if self._state is BusState.CLOSED:
            raise BusClosedError("the event bus was shut down; create a new EventBus")

    async def _follow_loop(self) -> None:
        """Follow the caller to a new event loop (each pytest-asyncio test has its own)."""
        if self._state is not BusState.RUNNING:
            return
        loop = asyncio.get_running_loop()
        previous = self._loop
        if previous is loop:
            return
        if previous is not None and previous.is_running():
            raise RuntimeError(
                "this EventBus is running in another event loop (thread); publish from that "
                "loop, e.g. with asyncio.run_coroutine_threadsafe"
            )
        await self._launch(loop)
        _log.info("bus.rebound", reason="the previous event loop is gone")

    def _on_reducer_error(self, err: Exception) -> None:
        self._dispatcher.internal_errors += 1
        _log.error("bus.stream_failed", error=repr(err))

    def _on_actor_crash(self, actor: SubscriptionActor, error: BaseException) -> None:
        """A subscription task died of something else than the bus's cancellation: a bug."""
        self._dispatcher.internal_errors += 1
        loop = self._loop
        if self._state is BusState.RUNNING and loop is not None and not loop.is_closed():
            loop.call_soon(self._restart_actor, actor)

    def _restart_actor(self, actor: SubscriptionActor) -> None:
        if self._state is BusState.RUNNING and actor.needs_restart(asyncio.get_running_loop()):
            actor.start()

    # -- history and metrics -------------------------------------------------------------------

    async def get_history(self, event_type: str | None = None, limit: int = 50) -> list[Event]:
        """The most recent events, oldest first; ``event_type`` is an exact type or a pattern.

        Raises:
            InvalidPatternError: ``event_type`` is malformed.
            ValueError: ``limit`` is negative.
        """
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        stored = await _js.stream_history(self._transport, self._stream, event_type, limit)
        return recent_events(self._stream, event_type, limit) if stored is None else stored

    def replay(self, pattern: str = ">", *, since: datetime | int) -> EventReplay:
        """Past events matching ``pattern``, as an Observable and an async iterator.

        On JetStream they come from the stream (shared, surviving restarts): ``since`` is a
        timezone-aware time or a stream sequence. In memory they come from this bus's
        history, and ``since`` must be a time. The replay ends with what was stored when it
        began; ``observe``/``stream`` give what follows.

        Raises:
            InvalidPatternError: the pattern is malformed.
            ValueError: ``since`` is naive, not positive, or a sequence in memory.
        """
        return _js.replay(self._transport, self._stream, pattern, since)

    def get_metrics(self) -> dict[str, int]:
        """The reference's five counters."""
        subscriptions = self._subscriptions
        pending = self._transport.pending
        durable_delivered, durable_errors = _js.durable_totals(self._transport)
        errors = subscriptions.errors + durable_errors + self._dispatcher.internal_errors
        return {
            "total_published": self._stream.dispatched + pending,
            "total_delivered": subscriptions.delivered + durable_delivered,
            "total_errors": errors,
            "subscriptions_active": subscriptions.active,
            "queue_size": pending,
        }

    async def get_stats(self) -> dict[str, Any]:
        """The metrics plus per-type counts, per-subscription figures, state and uptime.

        On JetStream the counts cover the events this bus received: those it stored, plus
        every event of the stream once it has a local subscription (its live feed runs).
        """
        started = self._started_at
        return {
            **self.get_metrics(),
            "state": self._state.value,
            "running": self.is_running,
            "uptime_seconds": time.monotonic() - started if started and self.is_running else 0.0,
            "events_by_type": dict(self._stream.per_type),
            "history_size": len(self._stream.history),
            "subscriptions": [info.to_dict() for info in self._subscriptions.snapshot(None, None)],
            "event_type_groups": self._router.group_count,
            "validation": self._checker.stats(),
            "skipped_disabled": self._skipped_disabled,
            "internal_errors": self._dispatcher.internal_errors,
            "transport": self._transport.stats(),
        }


def _resolve_transport(transport: object, config: EventsConfig) -> Transport:
    if transport is None:
        transport = config.transport
    if transport is None or not isinstance(transport, Transport):
        transport = _js.transport_from_setting(transport, config)
    if transport is None:
        return MemoryTransport(config.max_queue_size, config.publish_timeout)
    if isinstance(transport, Transport):
        return transport
    raise ConfigError(
        f"transport must be None (in-process) or a Transport object, got {transport!r}"
    )


_shared: EventBus | None = None
_shared_lock = threading.Lock()


def get_event_bus() -> EventBus:
    """The shared bus, created on first use from ``config.yaml`` (or ``MNEMO_EVENTS_CONFIG``).

    A shared bus that was shut down is replaced by a fresh one.
    """
    global _shared
    with _shared_lock:
        if _shared is None or _shared.state is BusState.CLOSED:
            _shared = EventBus(load_config().events)
        return _shared


def reset_event_bus() -> None:
    """Forget the shared bus (mainly for tests); the next ``get_event_bus()`` makes a new one.

    A running bus is not stopped: ``await bus.shutdown()`` first to drain it.
    """
    global _shared
    with _shared_lock:
        _shared = None
