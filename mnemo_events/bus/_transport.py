"""The transport: the seam between "publish accepted" and "dispatch to this process".

::

    publish() ─▶ Transport.accept ─▶ (mailbox | stream) ─▶ deliver(batch) ─▶ Subject ─▶ ...
                 returns once accepted                     awaited: backpressure

A transport takes events from ``publish`` and hands them, in batches and in order, to the
bus's ``deliver`` coroutine, which pushes each batch through the bus Subject. ``accept``
returns once the transport holds the event: for :class:`MemoryTransport` (the default) that
is "queued in this process's bounded mailbox"; for a JetStream transport it will be "stored
and acknowledged by the stream", so that every process's bus reads the stream and dispatches
locally. The bus itself never looks past this protocol.

Positions (:meth:`Transport.mark`, :meth:`Transport.wait_delivered`) let the bus wait until
what was accepted before a call has been delivered, which is what ``stop()`` and
``flush()`` build on. A position is an increasing integer: a count of accepted events in
memory, a stream sequence on JetStream.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from mnemo_events._log import logger
from mnemo_events.bus._aio import cancel_and_wait
from mnemo_events.bus._mailbox import Mailbox
from mnemo_events.event import Event
from mnemo_events.exceptions import QueueFullError

__all__ = ["Deliver", "MemoryTransport", "Transport", "TransportState"]

_log = logger("bus")
_DISPATCH_BATCH = 512
_YIELD_EVERY = 256

Deliver = Callable[[list[Event]], Awaitable[None]]
"""The bus's dispatch of one batch; the transport awaits it before delivering the next."""


class TransportState(enum.Enum):
    """Where a transport is in its life, as ``get_stats()["transport"]["state"]`` shows it."""

    NEW = "new"
    """Accepts events (held until started) but delivers nothing yet."""
    CONNECTED = "connected"
    """Delivering to the bus."""
    DISCONNECTED = "disconnected"
    """Lost its server (remote transports); accepting retries until ``publish_timeout``."""
    STOPPED = "stopped"
    """Not delivering; what it holds is delivered after the next start."""


@runtime_checkable
class Transport(Protocol):
    """What the bus needs from a transport. One bus owns one transport."""

    @property
    def name(self) -> str:
        """A short name for stats and logs (``"memory"``, ``"jetstream"``)."""
        ...

    @property
    def state(self) -> TransportState:
        """The connection state, reported by ``get_stats()``."""
        ...

    @property
    def pending(self) -> int:
        """Events accepted from this process and not yet delivered to its bus."""
        ...

    async def start(self, deliver: Deliver) -> None:
        """Deliver batches to ``deliver`` from the running loop on (idempotent).

        Called again on another event loop, the transport moves its delivery there.
        """
        ...

    async def stop(self) -> None:
        """Stop delivering; what is accepted but undelivered stays for the next start."""
        ...

    async def accept(self, event: Event) -> None:
        """Take one event; returns once the transport holds it (stored, for a durable one).

        Raises:
            QueueFullError: the transport could not take it within ``publish_timeout``.
        """
        ...

    async def accept_batch(self, events: Sequence[Event]) -> None:
        """Take several events in order; returns once it holds all of them.

        Raises:
            QueueFullError: as :meth:`accept`, for the first event it could not take.
        """
        ...

    def mark(self) -> int:
        """A position at or after every event this process has had accepted so far."""
        ...

    async def wait_delivered(self, mark: int) -> bool:
        """Wait until every event up to ``mark`` has been delivered (``deliver`` returned).

        Returns False, at once or later, if the transport is not delivering.
        """
        ...

    def stats(self) -> dict[str, Any]:
        """JSON-ready figures for ``get_stats()["transport"]``; includes ``name``, ``state``."""
        ...


class MemoryTransport:
    """The in-process transport: a bounded mailbox drained by one pump task.

    ``accept`` queues the event, waiting up to ``publish_timeout`` seconds while the mailbox
    holds ``max_queue_size`` events, then raises :class:`QueueFullError`. The pump takes what
    has queued up since its last turn (up to 512 events), awaits ``deliver`` on it, and yields
    to the loop. Nothing survives the process: events still queued die with it.
    """

    def __init__(self, max_queue_size: int, publish_timeout: float) -> None:
        self._capacity = max_queue_size
        self._timeout = publish_timeout
        self._mailbox: Mailbox[Event] = Mailbox(max_queue_size)
        self._state = TransportState.NEW
        self._pump: asyncio.Task[None] | None = None
        self._offer = self._mailbox.offer
        self._taken = 0
        """Events the pump took from the mailbox: with those still in it, every event accepted
        (nothing else takes any), so accepting one needs no counter of its own."""
        self._delivered = 0
        self._waiters: list[tuple[int, asyncio.Future[bool]]] = []
        self._yield_due = False
        self.live_loop: asyncio.AbstractEventLoop | None = None
        """The loop the pump runs on; None when it is not running (a cheap check)."""

    @property
    def name(self) -> str:
        """``"memory"``."""
        return "memory"

    @property
    def state(self) -> TransportState:
        """NEW until started, CONNECTED while the pump runs, STOPPED after."""
        return self._state

    @property
    def pending(self) -> int:
        """Events in the mailbox."""
        return len(self._mailbox)

    # -- accepting -----------------------------------------------------------------------------

    def try_accept(self, event: Event) -> bool:
        """Queue one event if there is room and no yield is due; False means: await accept.

        The bus's publish calls this first: it saves creating a coroutine per event (a
        tenth of publish's own cost, measured with ``benchmarks/profile_bus.py``).
        """
        depth = self._offer(event)
        if depth < 0:
            return False
        if depth % _YIELD_EVERY:
            return True
        self._yield_due = True
        return False

    async def accept(self, event: Event) -> None:
        """Queue one event, waiting for room up to ``publish_timeout``."""
        if self._yield_due:  # try_accept queued it; a producer that never awaits must yield
            self._yield_due = False
            await asyncio.sleep(0)
            return
        depth = self._offer(event)
        if depth < 0:
            await self._put_waiting(event)
        elif depth % _YIELD_EVERY == 0:
            # A producer that never awaits anything else would starve the pump and pile
            # events up; let it run every few hundred events.
            await asyncio.sleep(0)

    async def accept_batch(self, events: Sequence[Event]) -> None:
        """Queue several events in order, each waiting for room as :meth:`accept` does."""
        offer = self._offer
        for event in events:
            depth = offer(event)
            if depth < 0:
                await self._put_waiting(event)
            elif depth % _YIELD_EVERY == 0:
                await asyncio.sleep(0)

    async def _put_waiting(self, event: Event) -> None:
        timeout = self._timeout
        mailbox = self._mailbox
        _log.debug("bus.backpressure", queue_size=len(mailbox), event_type=event.type)
        if not await mailbox.put(event, timeout):
            _log.warning(
                "bus.queue_full",
                event_id=event.id,
                event_type=event.type,
                queue_size=len(mailbox),
                publish_timeout=timeout,
            )
            raise QueueFullError(
                f"event bus mailbox full ({len(mailbox)} of {self._capacity} events) for "
                f"{timeout}s; event {event.type!r} was not published (is the bus started, and "
                "are its subscribers keeping up? raise events.max_queue_size or slow the "
                "producer)"
            )

    # -- positions -----------------------------------------------------------------------------

    def mark(self) -> int:
        """How many events were accepted so far (the mailbox is FIFO)."""
        return self._taken + len(self._mailbox)

    async def wait_delivered(self, mark: int) -> bool:
        """Wait until ``mark`` events have been delivered; False once the pump stops."""
        while self._delivered < mark:
            if self._pump is None or self._pump.done():
                return False
            waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._waiters.append((mark, waiter))
            if not await waiter:
                return self._delivered >= mark
        return True

    def _release_waiters(self, *, stopping: bool = False) -> None:
        done = self._delivered
        kept = []
        for target, waiter in self._waiters:
            if stopping or target <= done:
                if not waiter.done() and not waiter.get_loop().is_closed():
                    waiter.set_result(target <= done)
            else:
                kept.append((target, waiter))
        self._waiters = kept

    # -- the pump ------------------------------------------------------------------------------

    def alive_on(self, loop: asyncio.AbstractEventLoop) -> bool:
        """True when the pump runs on ``loop``."""
        task = self._pump
        return task is not None and not task.done() and task.get_loop() is loop

    async def start(self, deliver: Deliver) -> None:
        """Start the pump on the running loop, unless it already runs there."""
        loop = asyncio.get_running_loop()
        if self.alive_on(loop):
            return
        self._release_waiters(stopping=True)  # waiters of a dead loop
        self._state = TransportState.CONNECTED
        self.live_loop = loop
        self._pump = loop.create_task(self._run(deliver), name="mnemo-events bus")

    async def stop(self) -> None:
        """Stop the pump; queued events wait for the next start."""
        pump, self._pump = self._pump, None
        self.live_loop = None
        await cancel_and_wait(pump)
        self._release_waiters(stopping=True)
        if self._state is TransportState.CONNECTED:
            self._state = TransportState.STOPPED

    async def _run(self, deliver: Deliver) -> None:
        mailbox = self._mailbox
        while True:
            if not mailbox:
                if self._waiters:
                    self._release_waiters()
                await mailbox.wait()
                continue
            batch = mailbox.take(_DISPATCH_BATCH)
            self._taken += len(batch)
            await deliver(batch)
            self._delivered += len(batch)
            if self._waiters:
                self._release_waiters()
            await asyncio.sleep(0)

    def stats(self) -> dict[str, Any]:
        """Name, state, depth and capacity of the mailbox, and the two positions."""
        return {
            "name": self.name,
            "state": self._state.value,
            "pending": len(self._mailbox),
            "capacity": self._capacity,
            "accepted": self.mark(),
            "delivered": self._delivered,
        }
