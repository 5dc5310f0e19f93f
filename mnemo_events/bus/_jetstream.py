"""The JetStream transport: the bus across processes and machines, on a NATS stream.

::

    publish() ─▶ validate ─▶ js.publish(<prefix>.<type>, Nats-Msg-Id=<event id>) ─▶ stream
                             returns once the stream acknowledged (stored) it      │
    every bus on the stream ◀── live feed (ordered consumer, from now) ◀───────────┤
      (once it has a local subscription)                                           │
    subscribe(durable=...)  ◀── durable pull consumer (ack, nak + backoff, term) ◀─┘

The live feed runs only in a bus that has a local (non-durable) subscription, an observer or
a stream: a publisher-only process does not read the whole stream back (measured: that
reading cost such a publisher about a third of its rate). Until the feed runs, the events
this process stores are handed to its bus right after their acknowledgement (for its history
and counters: no subscriber exists to receive them); the first local subscription starts the
feed after the last event this process stored and after the stream's end as last read (at
start, then each second), so every event stored after the subscribe call reaches it.

``accept`` returns once the stream has stored the event, so an event whose ``publish``
returned survives this process and the server's restart. The event id is the message id, so a
publish retried after a lost acknowledgement is stored once (within the stream's duplicate
window). While the server is away, ``accept`` retries until ``publish_timeout`` and then raises
:class:`~mnemo_events.exceptions.TransportTimeoutError` (a ``QueueFullError``) naming the
server. The live feed and the durable subscriptions reconnect by themselves and resume after
the last event they handled.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import api
from nats.nuid import NUID

from mnemo_events._log import logger
from mnemo_events.bus._aio import cancel_and_wait
from mnemo_events.bus._jetstream_config import JetStreamConfig, safe_server, split_servers
from mnemo_events.bus._jetstream_durable import DurableSubscription
from mnemo_events.bus._jetstream_feed import LiveFeed
from mnemo_events.bus._jetstream_replay import read_history, read_stream, read_stream_sequenced
from mnemo_events.bus._transport import TransportState
from mnemo_events.event import Event
from mnemo_events.exceptions import TransportError, TransportTimeoutError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from nats.js.client import JetStreamContext

__all__ = ["JetStreamTransport"]

_log = logger("bus")
_RETRY_DELAYS = (0.02, 0.05, 0.1, 0.2, 0.5)
_ACK_WAIT = 2.0
"""Seconds one publish attempt waits for the stream's acknowledgement before retrying."""
_STREAM_NOT_FOUND = 10059
_ATOMIC_DISABLED = 10174
_BATCH_INCOMPLETE = 10176
"""A part of an atomic batch went missing (a connection lost mid-batch): send it again."""
_BATCH_DUPLICATE = 10201
"""An event of an atomic batch is stored already (a retry of a batch that was committed)."""
_WINDOW = 1_000
"""Events of a batch sent before their acknowledgements are awaited (the server's largest
atomic batch too)."""
_ASYNC_PENDING_SAFE = 3_000
_END_REFRESH = 1.0
"""Seconds between reads of the stream's end while no live feed runs."""
_OWN_LIMIT = 50_000
_RETRYABLE = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.TooManyStalledMsgsError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.FlushTimeoutError,
    TimeoutError,
    ConnectionError,
)

Deliver = Callable[[list[Event]], Awaitable[None]]


class JetStreamTransport:
    """The bus on a JetStream stream, shared by every process that uses the same stream.

    Args:
        servers: one URL, a comma-separated list or a list (``nats://127.0.0.1:4222``).
        stream: the stream's name (created if missing, file storage).
        subject_prefix: event type ``memory.created`` is subject ``<prefix>.memory.created``.
        credentials: a ``.creds`` file; ``user``/``password``/``token`` for the other schemes.
        tls: an SSL context (else one is built from the ``tls_*`` files of ``config``).
        publish_timeout: seconds ``accept`` keeps retrying while the server is away (the bus
            passes its ``events.publish_timeout`` when it builds the transport from a URL).
        config: every setting at once; keyword arguments given here replace its fields.
    """

    def __init__(
        self,
        servers: str | Sequence[str] | None = None,
        *,
        stream: str | None = None,
        subject_prefix: str | None = None,
        credentials: str | None = None,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
        publish_timeout: float = 5.0,
        config: JetStreamConfig | None = None,
        **limits: Any,
    ) -> None:
        given: dict[str, Any] = {
            "servers": split_servers(servers) if isinstance(servers, str) else servers,
            "stream": stream,
            "subject_prefix": subject_prefix,
            "credentials": credentials,
            "user": user,
            "password": password,
            "token": token,
            **limits,
        }
        base = config or JetStreamConfig()
        updates = {key: value for key, value in given.items() if value is not None}
        self.config = JetStreamConfig.model_validate({**base.model_dump(), **updates})
        self.publish_timeout = publish_timeout
        self._tls = tls
        self._prefix = self.config.subject_prefix
        self._subjects: dict[str, str] = {}
        self._servers = ", ".join(safe_server(url) for url in self.config.servers)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._nc_loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._stream_ready = False
        self._nuid = NUID()
        self._atomic = False
        """Whether the stream takes atomic batches (known once connected)."""
        self._state = TransportState.NEW
        self._feed: LiveFeed | None = None
        self._feed_task: asyncio.Task[None] | None = None
        self._feed_wanted = False
        """A local subscription exists (or existed): the bus needs the live feed."""
        self._deliver: Deliver | None = None
        self._started_loop: asyncio.AbstractEventLoop | None = None
        self._next_seq: int | None = None
        self._accepted_seq = 0
        self._delivered_seq = 0
        self._waiters: list[tuple[int, asyncio.Future[bool]]] = []
        self._durables: dict[str, DurableSubscription] = {}
        self._own: dict[str, Event] = {}
        """Events sent from here and not yet back through the feed (skips their decoding:
        measured, decoding cost the publisher a third of its rate)."""
        self._retired: list[DurableSubscription] = []
        self._counts = {
            "published": 0,
            "duplicates": 0,
            "publish_retries": 0,
            "publish_failures": 0,
            "disconnects": 0,
            "reconnects": 0,
        }

    # -- the Transport protocol -------------------------------------------------------------------

    @property
    def name(self) -> str:
        """``"jetstream"``."""
        return "jetstream"

    @property
    def state(self) -> TransportState:
        """NEW, CONNECTED, DISCONNECTED (the server went away; retrying) or STOPPED."""
        return self._state

    @property
    def pending(self) -> int:
        """Events this process had stored and its bus has not received back yet."""
        return max(self._accepted_seq - self._delivered_seq, 0) if self._feed_task else 0

    @property
    def servers(self) -> str:
        """The server URLs without credentials, as errors and logs name them."""
        return self._servers

    def subject_of(self, event_type: str) -> str:
        """The subject of an event type: ``<prefix>.<type>``."""
        subject = self._subjects.get(event_type)
        if subject is None:
            subject = f"{self._prefix}.{event_type}"
            if len(self._subjects) < 10_000:
                self._subjects[event_type] = subject
        return subject

    async def start(self, deliver: Deliver) -> None:
        """Connect, make sure the stream exists, and feed the bus from now on.

        Events this process published before are delivered too; after a ``stop()`` the feed
        resumes after the last event it delivered.

        Raises:
            TransportError: no server answered within ``connect_timeout``.
        """
        loop = asyncio.get_running_loop()
        if self._started_loop is loop and self._deliver is not None:
            return
        _, js = await self._connection()
        self._release_waiters(stopping=True)
        first_own = self._first_unseen()
        if first_own is None or not self._feed_wanted:  # "from now": fixed before it returns
            end = (await js.stream_info(self.config.stream)).state.last_seq + 1
            self._known_end = max(self._known_end, end)
            first_own = first_own or end
        self._deliver, self._started_loop = deliver, loop
        if self._feed_wanted:
            self._launch_feed(loop, first_own)
        else:
            self._end_task = loop.create_task(self._follow_end(), name="mnemo-events stream end")
        for durable in self._durables.values():
            durable.start()

    def want_feed(self) -> None:
        """A local subscription was made: run the live feed from now on (at once if running).

        Every event stored after this call is delivered: the feed starts after the last
        event this process stored and after the stream's end as last read (at start, then
        each second), so the events others stored in that last second may come too.
        """
        if self._feed_wanted:
            return
        self._feed_wanted = True
        loop = self._started_loop
        if loop is None or self._deliver is None or loop.is_closed():
            return  # start() launches it
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._launch_from_now(loop)
        else:
            loop.call_soon_threadsafe(self._launch_from_now, loop)

    def _launch_from_now(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._deliver is None or self._started_loop is not loop:
            return
        # Never after an event stored since this call: the last stream end this process knows
        # (read at start, then each second while no feed runs) or after its last stored event.
        # Events stored meanwhile by others (at most about a second's) are delivered as well.
        first = max(self._first_unseen() or 0, self._known_end, self._accepted_seq + 1)
        self._launch_feed(loop, first)

    async def _follow_end(self) -> None:
        """While no feed runs, keep the stream's end fresh (where a first subscription starts)."""
        while not self._feed_wanted:
            await asyncio.sleep(_END_REFRESH)
            try:
                _, js = await self._connection()
                end = (await js.stream_info(self.config.stream)).state.last_seq + 1
            except Exception as err:  # keeps the older end: more events, never fewer
                _log.debug("bus.jetstream_client_error", servers=self._servers, error=repr(err))
                continue
            self._known_end = max(self._known_end, end)

    _end_task: asyncio.Task[None] | None = None
    _known_end = 0

    def _launch_feed(self, loop: asyncio.AbstractEventLoop, first: int | None) -> None:
        task = self._feed_task
        if task is not None and not task.done() and task.get_loop() is loop:
            return
        deliver = self._deliver
        assert deliver is not None
        if first is not None and first - 1 > self._delivered_seq:
            self._delivered_seq = first - 1  # nothing before the feed's start is owed to it
        feed = LiveFeed(
            connect=self._connection,
            stream=self.config.stream,
            subject=f"{self._prefix}.>",
            deliver=deliver,
            next_seq=first,
            on_delivered=self._on_delivered,
            own=self._take_own,
        )
        self._feed = feed
        self._feed_task = loop.create_task(feed.run(), name="mnemo-events jetstream feed")

    def _first_unseen(self) -> int | None:
        if self._next_seq is not None:
            return self._next_seq
        if self._accepted_seq:
            return self._first_accepted
        return None

    async def stop(self) -> None:
        """Stop the feed and the durable subscriptions, then close the connection."""
        task, self._feed_task = self._feed_task, None
        self._deliver = self._started_loop = None
        end_task, self._end_task = self._end_task, None
        await cancel_and_wait(end_task)
        await cancel_and_wait(task)
        if self._feed is not None:
            self._next_seq = self._feed.next_seq
        self._own.clear()
        retired, self._retired = self._retired, []
        await asyncio.gather(*(d.stop() for d in [*self._durables.values(), *retired]))
        self._release_waiters(stopping=True)
        await self._close()
        if self._state is not TransportState.NEW:
            self._state = TransportState.STOPPED

    async def accept(self, event: Event) -> None:
        """Store one event in the stream; returns once the stream acknowledged it.

        Raises:
            TransportTimeoutError: no acknowledgement within ``publish_timeout`` (the message
                names the servers); the event may or may not be stored, and a retry with
                the same event is stored at most once.
            TransportError: the server refused the event (its reason is in the message).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        await self._store(event, deadline)

    async def accept_batch(self, events: Sequence[Event]) -> None:
        """Store several events in the list's order, 1,000 at a time.

        Each window is one atomic batch (``atomic_batches``, the default, on a server that
        has them): stored whole, in order, after the events stored before it, or not at all;
        a window whose commit is not acknowledged is sent again until ``publish_timeout``,
        and one that is partly stored already (a commit whose acknowledgement was lost, or
        an event published before) is stored one event at a time, each once, in order.
        Otherwise the window's acknowledgements are pipelined, and events whose
        acknowledgement does not come are retried one by one (stored once thanks to their
        ids): only then can order differ from the list's.

        Raises:
            TransportTimeoutError, TransportError: as :meth:`accept`, for the first event
                that could not be stored; the windows before it are stored.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        for start in range(0, len(events), _WINDOW):
            window = events[start : start + _WINDOW]
            await self._connection(deadline)
            if self._atomic:
                await self._store_atomic(window, deadline)
            else:
                await self._store_window(window, deadline)

    async def _store_atomic(self, events: Sequence[Event], deadline: float) -> None:
        loop = asyncio.get_running_loop()
        self._remember(events)
        attempt = 0
        last_error: BaseException | None = None
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0 and attempt > 0:
                break
            try:
                nc, _ = await self._connection(deadline)
                if not self._atomic:  # the stream was recreated without atomic batches
                    await self._store_window(events, deadline)
                    return
                ack = await self._send_batch(nc, events, max(min(remaining, _ACK_WAIT), 0.05))
            except nats.js.errors.APIError as err:
                code = err.err_code
                if code == _BATCH_DUPLICATE:
                    # Some are stored: one at a time, in order; each is stored once.
                    for event in events:
                        await self._store(event, deadline)
                    return
                if code == _ATOMIC_DISABLED:
                    self._atomic = False
                    self._stream_ready = False  # look again (and switch it on if allowed)
                elif code == _STREAM_NOT_FOUND:
                    self._stream_ready = False
                elif code != _BATCH_INCOMPLETE:
                    self._counts["publish_failures"] += 1
                    raise TransportError(
                        f"JetStream on {self._servers} refused a batch of {len(events)} "
                        f"events from {events[0].type!r} ({events[0].id}): "
                        f"{err.description or err}"
                    ) from None
                last_error = err
            except _RETRYABLE as err:
                last_error = err
            else:
                self._note_batch_ack(ack, len(events))
                await self._hand_over(events, ack.seq)
                return
            attempt += 1
            await self._back_off(attempt, deadline)
        first = events[0]
        raise self._gave_up(
            first,
            f"a batch of {len(events)} events from {first.type!r} ({first.id})",
            attempt,
            last_error,
        )

    async def _send_batch(self, nc: Client, events: Sequence[Event], ack_wait: float) -> api.PubAck:
        """Send one atomic batch (a fresh batch id each attempt); the commit's acknowledgement.

        Raises:
            nats.js.errors.APIError: the server refused the batch (its code says why).
        """
        batch_id = self._nuid.next().decode()
        subject_of = self.subject_of
        publish = nc.publish
        last = len(events)
        for number, event in enumerate(events[:-1], 1):
            await publish(
                subject_of(event.type),
                event.to_json(),
                headers={
                    "Nats-Msg-Id": event.id,
                    api.Header.BATCH_ID: batch_id,
                    api.Header.BATCH_SEQUENCE: str(number),
                },
            )
        event = events[-1]
        try:
            reply = await nc.request(
                subject_of(event.type),
                event.to_json(),
                timeout=ack_wait,
                headers={
                    "Nats-Msg-Id": event.id,
                    api.Header.BATCH_ID: batch_id,
                    api.Header.BATCH_SEQUENCE: str(last),
                    api.Header.BATCH_COMMIT: "1",
                },
            )
        except nats.errors.NoRespondersError:
            raise nats.js.errors.NoStreamResponseError from None
        response = json.loads(reply.data)
        if "error" in response:
            raise nats.js.errors.APIError.from_error(response["error"])
        return api.PubAck.from_response(response)

    async def _store_window(self, events: Sequence[Event], deadline: float) -> None:
        loop = asyncio.get_running_loop()
        sent: list[tuple[Event, asyncio.Future[api.PubAck]]] = []
        unsent: list[Event] = []
        try:
            _, js = await self._connection(deadline)
            publish = js.publish_async
            # nats-py bounds unacknowledged async publishes (4,000); below that bound its
            # semaphore never waits, and passing no wait_stall saves a wait_for task per
            # event (measured: it quartered the rate).
            stall = None
            if js.publish_async_pending() + len(events) > _ASYNC_PENDING_SAFE:
                stall = max(deadline - loop.time(), 0.001)
            subject_of = self.subject_of
            self._remember(events)
            for event in events:
                future = await publish(
                    subject_of(event.type),
                    event.to_json(),
                    wait_stall=stall,
                    headers={"Nats-Msg-Id": event.id},
                )
                sent.append((event, future))
        except _RETRYABLE:
            unsent = list(events[len(sent) :])
        retry: list[Event] = []
        if sent:
            # One attempt's wait, not the whole publish_timeout: time is left for retries.
            wait = max(min(deadline - loop.time(), _ACK_WAIT), 0.001)
            _, late = await asyncio.wait([future for _, future in sent], timeout=wait)
            for future in late:
                future.cancel()
        stored: list[tuple[int, Event]] = []
        for event, future in sent:
            if future.cancelled() or future.exception() is not None:
                retry.append(event)
            else:
                ack = future.result()
                self._note_ack(ack)
                if not ack.duplicate:
                    stored.append((ack.seq, event))
        if stored:
            stored.sort(key=lambda pair: pair[0])
            await self._hand_over([event for _, event in stored], stored[-1][0])
        for event in [*retry, *unsent]:
            self._counts["publish_retries"] += 1
            await self._store(event, deadline)

    def mark(self) -> int:
        """The stream sequence of the last event this process stored."""
        return self._accepted_seq

    async def wait_delivered(self, mark: int) -> bool:
        """Wait until the feed has delivered stream sequence ``mark``; False if not feeding.

        Also False once the server has been away for ``connect_timeout`` while waiting: the
        events are stored in the stream (nothing is lost), but this process cannot read them
        back, and ``stop()`` must not wait for a server that may never return.
        """
        loop = asyncio.get_running_loop()
        away_since: float | None = None
        waiter: asyncio.Future[bool] | None = None
        while self._delivered_seq < mark:
            task = self._feed_task
            if task is None or task.done():
                return False
            if self._state is TransportState.DISCONNECTED:
                away_since = loop.time() if away_since is None else away_since
                if loop.time() - away_since >= self.config.connect_timeout:
                    return False
            else:
                away_since = None
            if waiter is None:
                waiter = loop.create_future()
                self._waiters.append((mark, waiter))
            try:
                # Woken by the feed; re-checked every quarter second for a lost server.
                released = await asyncio.wait_for(asyncio.shield(waiter), 0.25)
            except TimeoutError:
                continue
            if not released:  # the transport is stopping
                return self._delivered_seq >= mark
            waiter = None
        return True

    def stats(self) -> dict[str, Any]:
        """Connection state, servers, stream, publish and feed counters, durable figures."""
        nc = self._nc
        url = nc.connected_url if nc is not None and nc.is_connected else None
        feed = self._feed
        return {
            "name": self.name,
            "state": self._state.value,
            "servers": self._servers,
            "connected_server": safe_server(url.geturl()) if url is not None else None,
            "stream": self.config.stream,
            "subject_prefix": self._prefix,
            "pending": self.pending,
            "last_stored_seq": self._accepted_seq,
            "last_delivered_seq": self._delivered_seq,
            **self._counts,
            "feed": "live" if self._feed_task is not None else "off (no local subscription)",
            "feed_delivered": feed.delivered if feed else 0,
            "feed_resets": feed.resets if feed else 0,
            "undecodable": feed.undecodable if feed else 0,
            "durables": [durable.figures() for durable in self._durables.values()],
        }

    # -- durable subscriptions, history, replay ------------------------------------------------

    def add_durable(self, durable: DurableSubscription) -> None:
        """Run a durable subscription on this transport (started now if the bus runs)."""
        self._durables[durable.id] = durable
        if self._deliver is not None:  # running
            durable.start()

    def forget_durable(self, subscription_id: str) -> bool:
        """Stop and forget a durable subscription (its consumer stays on the server).

        Its task is cancelled now and awaited by the next :meth:`stop`.
        """
        durable = self._durables.pop(subscription_id, None)
        if durable is None:
            return False
        self._retired.append(durable)
        durable.cancel()
        return True

    @property
    def durables(self) -> dict[str, DurableSubscription]:
        """The durable subscriptions by subscription id."""
        return self._durables

    def durable_for(self, **options: Any) -> DurableSubscription:
        """A durable subscription reading this transport's stream (not yet added)."""
        return DurableSubscription(
            connect=self._connection,
            stream=self.config.stream,
            prefix=self._prefix,
            max_ack_pending=self.config.max_ack_pending,
            **options,
        )

    async def history(self, pattern: str | None, limit: int) -> list[Event]:
        """The newest ``limit`` events matching ``pattern`` in the stream, oldest first."""
        _, js = await self._connection()
        return await read_history(js, self.config.stream, self._prefix, pattern, limit)

    def replay(self, pattern: str, since: datetime | int) -> AsyncIterator[Event]:
        """The stored events matching ``pattern`` from ``since`` to the stream's end now."""
        return read_stream(self._connection, self.config.stream, self._prefix, pattern, since)

    def replay_sequenced(self, pattern: str, since: int) -> AsyncIterator[tuple[int, Event]]:
        """As :meth:`replay` from a stream sequence, each event with its sequence."""
        return read_stream_sequenced(
            self._connection, self.config.stream, self._prefix, pattern, since
        )

    def sequence_of(self, event_id: str) -> int | None:
        """The stream sequence of an event the live feed delivered recently, else None."""
        feed = self._feed
        return feed.sequence_of(event_id) if feed is not None else None

    async def stream_bounds(self) -> tuple[int, int]:
        """The first and last sequences the stream holds now (``first > last``: empty).

        Raises:
            TransportError: the server did not answer (its URL is named).
        """
        _, js = await self._connection()
        try:
            state = (await js.stream_info(self.config.stream)).state
        except (nats.errors.Error, TimeoutError) as err:
            raise TransportError(
                f"JetStream on {self._servers}: cannot read stream {self.config.stream!r} "
                f"({type(err).__name__})"
            ) from None
        return state.first_seq, state.last_seq

    async def message_id_at(self, seq: int) -> str | None:
        """The ``Nats-Msg-Id`` (event id) stored at stream sequence ``seq``; None if none is.

        Raises:
            TransportError: the server did not answer (its URL is named).
        """
        _, js = await self._connection()
        try:
            msg = await js.get_msg(self.config.stream, seq)
        except nats.js.errors.NotFoundError:
            return None
        except (nats.errors.Error, TimeoutError) as err:
            raise TransportError(
                f"JetStream on {self._servers}: cannot read sequence {seq} of stream "
                f"{self.config.stream!r} ({type(err).__name__})"
            ) from None
        return (msg.headers or {}).get("Nats-Msg-Id")

    # -- internals ----------------------------------------------------------------------------

    async def _store(self, event: Event, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        subject = self.subject_of(event.type)
        payload = event.to_json()
        self._remember((event,))
        headers = {"Nats-Msg-Id": event.id}
        attempt = 0
        last_error: BaseException | None = None
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0 and attempt > 0:
                break
            try:
                _, js = await self._connection(deadline)
                ack = await js.publish(
                    subject, payload, timeout=max(min(remaining, _ACK_WAIT), 0.05), headers=headers
                )
            except nats.js.errors.APIError as err:
                if err.err_code != _STREAM_NOT_FOUND:
                    self._counts["publish_failures"] += 1
                    raise TransportError(
                        f"JetStream on {self._servers} refused event {event.type!r} "
                        f"({event.id}): {err.description or err}"
                    ) from None
                self._stream_ready = False  # deleted under us: recreate it, then retry
                last_error = err
            except _RETRYABLE as err:
                last_error = err
            else:
                self._note_ack(ack)
                if not ack.duplicate:
                    await self._hand_over((event,), ack.seq)
                return
            attempt += 1
            await self._back_off(attempt, deadline)
        raise self._gave_up(event, f"event {event.type!r} ({event.id})", attempt, last_error)

    async def _back_off(self, attempt: int, deadline: float) -> None:
        """Count a publish retry and wait before attempt ``attempt + 1`` (never past the
        deadline)."""
        self._counts["publish_retries"] += 1
        delay = _RETRY_DELAYS[min(attempt - 1, len(_RETRY_DELAYS) - 1)]
        await asyncio.sleep(max(min(delay, deadline - asyncio.get_running_loop().time()), 0))

    def _gave_up(
        self, first: Event, what: str, attempts: int, last_error: BaseException | None
    ) -> TransportTimeoutError:
        """Count and log a publish that ran out of ``publish_timeout``; the error to raise."""
        self._counts["publish_failures"] += 1
        _log.warning(
            "bus.jetstream_publish_failed",
            event_id=first.id,
            event_type=first.type,
            servers=self._servers,
            attempts=attempts,
            publish_timeout=self.publish_timeout,
            error=repr(last_error),
        )
        return TransportTimeoutError(
            f"{what} was not acknowledged by JetStream on {self._servers} within "
            f"publish_timeout={self.publish_timeout}s after {attempts} attempts (last error: "
            f"{type(last_error).__name__}); is the server up? Publishing again stores each "
            "event at most once"
        )

    async def _hand_over(self, events: Sequence[Event], last_seq: int) -> None:
        """Events this process just stored, handed to its bus while no feed reads them back.

        Only for the bus's history and counters: without a local subscription there is no
        subscriber to receive them. Once the feed is wanted it delivers them instead.
        """
        deliver = self._deliver
        if self._feed_wanted or deliver is None:
            return
        if last_seq > self._delivered_seq:
            self._delivered_seq = last_seq
            self._next_seq = last_seq + 1
        await deliver(list(events))

    def _take_own(self, event_id: str) -> Event | None:
        return self._own.pop(event_id, None)

    def _remember(self, events: Sequence[Event]) -> None:
        own = self._own
        if self._feed_task is None:
            return
        if len(own) > _OWN_LIMIT:  # publishes that never came back (failed, or no feed)
            for stale in list(own)[: len(own) // 2]:
                del own[stale]
        for event in events:
            own[event.id] = event

    def _note_ack(self, ack: api.PubAck) -> None:
        if ack.duplicate:
            self._counts["duplicates"] += 1
        else:
            self._counts["published"] += 1
        if not self._accepted_seq:
            self._first_accepted = ack.seq
        if ack.seq > self._accepted_seq:
            self._accepted_seq = ack.seq

    def _note_batch_ack(self, ack: api.PubAck, count: int) -> None:
        """An atomic batch's commit: ``count`` events stored up to sequence ``ack.seq``."""
        self._counts["published"] += count
        if not self._accepted_seq:
            self._first_accepted = ack.seq - count + 1
        if ack.seq > self._accepted_seq:
            self._accepted_seq = ack.seq

    _first_accepted = 0

    def _on_delivered(self, seq: int) -> None:
        self._delivered_seq = seq
        if self._waiters:
            self._release_waiters()

    def _release_waiters(self, *, stopping: bool = False) -> None:
        done = self._delivered_seq
        kept = []
        for target, waiter in self._waiters:
            if stopping or target <= done:
                if not waiter.done() and not waiter.get_loop().is_closed():
                    waiter.set_result(target <= done)
            else:
                kept.append((target, waiter))
        self._waiters = kept

    async def _connection(self, deadline: float | None = None) -> tuple[Client, JetStreamContext]:
        """The connection on the running loop, connecting (and creating the stream) if needed.

        Raises:
            TransportError: no server answered in time.
        """
        loop = asyncio.get_running_loop()
        while True:
            nc, js = self._nc, self._js
            if nc is not None and js is not None and self._nc_loop is loop and not nc.is_closed:
                if not self._stream_ready:
                    await self._ensure_stream(js)
                return nc, js
            if self._connecting is not None and self._connecting.get_loop() is loop:
                await asyncio.shield(self._connecting)
                continue
            self._connecting = loop.create_future()
            try:
                await self._connect(loop, deadline)
            finally:
                self._connecting.set_result(None)
                self._connecting = None

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> None:
        self._nc = self._js = None  # a connection of a loop that is gone cannot be closed
        cfg = self.config
        timeout = cfg.connect_timeout
        if deadline is not None:
            timeout = max(min(timeout, deadline - loop.time()), 0.05)
        nc = Client()
        options: dict[str, Any] = {
            "servers": cfg.servers,
            "name": "mnemo-events",
            "connect_timeout": max(int(timeout), 1),
            "reconnect_time_wait": cfg.reconnect_wait,
            "max_reconnect_attempts": -1,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
        }
        if cfg.credentials:
            options["user_credentials"] = cfg.credentials
        if cfg.user:
            options["user"] = cfg.user
        if cfg.password is not None:
            options["password"] = cfg.password.get_secret_value()
        if cfg.token is not None:
            options["token"] = cfg.token.get_secret_value()
        context = self._tls or _tls_context(cfg)
        if context is not None:
            options["tls"] = context
        try:
            async with asyncio.timeout(timeout):
                await nc.connect(**options)
        except (TimeoutError, OSError, nats.errors.Error) as err:
            await _close_quietly(nc)
            raise TransportError(
                f"cannot connect to NATS at {self._servers} within {timeout:.1f}s "
                f"({type(err).__name__}); is nats-server running with -js?"
            ) from None
        self._nc, self._js, self._nc_loop = nc, nc.jetstream(timeout=_ACK_WAIT), loop
        self._stream_ready = False
        self._state = TransportState.CONNECTED
        _log.info("bus.jetstream_connected", servers=self._servers, stream=cfg.stream)
        await self._ensure_stream(self._js)

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        cfg = self.config
        try:
            info = await js.stream_info(cfg.stream)
            self._atomic = bool(info.config.allow_atomic)
            if cfg.atomic_batches and not self._atomic:
                await self._allow_atomic(js, info.config)
        except nats.js.errors.NotFoundError:
            config = api.StreamConfig(
                name=cfg.stream,
                subjects=[f"{self._prefix}.>"],
                storage=api.StorageType.FILE,
                retention=api.RetentionPolicy.LIMITS,
                discard=api.DiscardPolicy.OLD,
                max_age=cfg.max_age_seconds or None,
                max_bytes=cfg.max_bytes,
                max_msgs=cfg.max_msgs,
                duplicate_window=cfg.duplicate_window_seconds,
                allow_atomic=cfg.atomic_batches or None,
            )
            try:
                created = await js.add_stream(config)
            except nats.js.errors.BadRequestError:
                # created meanwhile by another process
                info = await js.stream_info(cfg.stream)
                self._atomic = bool(info.config.allow_atomic)
            else:
                self._atomic = bool(created.config.allow_atomic)
                _log.info("bus.jetstream_stream_created", stream=cfg.stream, prefix=self._prefix)
        except _RETRYABLE:
            raise
        except nats.js.errors.Error as err:
            raise TransportError(f"JetStream on {self._servers}: {err}") from None
        self._stream_ready = True

    async def _allow_atomic(self, js: JetStreamContext, config: api.StreamConfig) -> None:
        """Switch atomic batches on for a stream made without them, once; else say why not."""
        if self._atomic_refused:
            return
        config.allow_atomic = True
        try:
            updated = await js.update_stream(config)
            self._atomic = bool(updated.config.allow_atomic)
            reason = None if self._atomic else "the server keeps allow_atomic off (before 2.12?)"
        except nats.js.errors.APIError as err:
            reason = f"{err.description or err}"
        if reason is not None:
            self._atomic_refused = True
            _log.warning(
                "bus.jetstream_atomic_unavailable",
                stream=self.config.stream,
                reason=reason,
                hint="publish_batch pipelines one acknowledgement per event instead; a batch "
                "retried after a fault may then be stored out of order",
            )

    _atomic_refused = False

    async def _close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and self._nc_loop is asyncio.get_running_loop():
            await _close_quietly(nc)
        self._nc_loop = None

    async def _on_error(self, err: Exception) -> None:
        _log.debug("bus.jetstream_client_error", servers=self._servers, error=repr(err))

    async def _on_disconnected(self) -> None:
        if self._nc is not None:
            self._counts["disconnects"] += 1
            self._state = TransportState.DISCONNECTED
            _log.warning("bus.jetstream_disconnected", servers=self._servers)

    async def _on_reconnected(self) -> None:
        self._counts["reconnects"] += 1
        self._state = TransportState.CONNECTED
        _log.warning("bus.jetstream_reconnected", servers=self._servers)


def _tls_context(cfg: JetStreamConfig) -> ssl.SSLContext | None:
    if not (cfg.tls_ca_file or cfg.tls_cert_file or cfg.tls_key_file):
        return None
    context = ssl.create_default_context(cafile=cfg.tls_ca_file)
    if cfg.tls_cert_file:
        context.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
    return context


async def _close_quietly(nc: Client) -> None:
    try:
        await asyncio.wait_for(nc.close(), 2.0)
    except Exception as err:
        _log.debug("bus.jetstream_cleanup_failed", error=repr(err))
