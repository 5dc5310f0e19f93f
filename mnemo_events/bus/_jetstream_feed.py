"""The live feed: every event of the stream, in stream order, handed to this process's bus.

::

    stream ──ordered push consumer──▶ inbox ──cb──▶ deque ──pump──▶ deliver(batch) ──▶ bus
           (ephemeral, no acks,        (flow control answered by the pump once the events
            flow control, heartbeats)   before it are delivered)

The consumer is ephemeral and in memory, as nats-py's own ordered consumer; unlike that one it
is recreated by this task (never by a stray background task) from the sequence after the last
delivered event whenever a consumer sequence skips (a slow-consumer drop), heartbeats stop
(the server went away and came back without our consumer), or creating it failed. So a bus
sees each event once, in order, across server restarts.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from nats.js import api

from mnemo_events._log import logger
from mnemo_events.bus._aio import wake
from mnemo_events.event import Event

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription
    from nats.js.client import JetStreamContext

__all__ = ["LiveFeed", "decode_event"]

_log = logger("bus")
_HEARTBEAT = 1.0
_BATCH = 512
_HIGH_WATER = 8_192
_RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0)
_SEQUENCES_KEPT = 65_536
"""Events per generation whose stream sequence the feed remembers (two generations)."""

Deliver = Callable[[list[Event]], Awaitable[None]]
Connect = Callable[[], Awaitable[tuple["Client", "JetStreamContext"]]]


def decode_event(data: bytes) -> Event:
    """The event in a stream message (the JSON of ``Event.to_json``).

    Raises:
        EventValidationError, ValueError: the message is not an event.
    """
    return Event.from_dict(json.loads(data))


class _Reset(Exception):
    """The consumer must be recreated from the next undelivered sequence."""


class LiveFeed:
    """One ordered consumer on the stream, read by one task, delivering decoded events."""

    def __init__(
        self,
        *,
        connect: Connect,
        stream: str,
        subject: str,
        deliver: Deliver,
        next_seq: int | None,
        on_delivered: Callable[[int], None],
        own: Callable[[str], Event | None] = lambda _id: None,
    ) -> None:
        self._connect = connect
        self._stream = stream
        self._subject = subject
        self._deliver = deliver
        self.next_seq = next_seq
        """The stream sequence to deliver next; None: the stream's end when first connected."""
        self._on_delivered = on_delivered
        self._own = own
        """This process's own events by id: delivered as they are, without decoding."""
        self._items: deque[Msg] = deque()
        self._getter: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self._last_cseq = 0
        self.resets = 0
        """Times the consumer was recreated (gaps, lost heartbeats, server restarts)."""
        self.undecodable = 0
        """Stream messages that were not events (logged, skipped)."""
        self.delivered = 0
        """Events handed to the bus."""
        self._sequences: dict[str, int] = {}
        self._older_sequences: dict[str, int] = {}

    def sequence_of(self, event_id: str) -> int | None:
        """The stream sequence of an event this feed delivered recently (the last 65,536 to
        131,072), else None: what the service's stream of server-sent events puts in its ids."""
        seq = self._sequences.get(event_id)
        return seq if seq is not None else self._older_sequences.get(event_id)

    async def run(self) -> None:
        """Deliver until cancelled, recreating the consumer whenever it breaks."""
        failures = 0
        while True:
            sub: Subscription | None = None
            consumer: str | None = None
            try:
                nc, js = await self._connect()
                sub, consumer = await self._open(nc, js)
                failures = 0
                await self._pump(nc)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.resets += 1
                delay = _RETRY_DELAYS[min(failures, len(_RETRY_DELAYS) - 1)]
                failures += 1
                _log.warning(
                    "bus.jetstream_feed_reset",
                    stream=self._stream,
                    next_seq=self.next_seq,
                    reason=repr(err),
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
            finally:
                await self._close(sub, consumer)

    async def _open(self, nc: Client, js: JetStreamContext) -> tuple[Subscription, str]:
        if self.next_seq is None:
            self.next_seq = (await js.stream_info(self._stream)).state.last_seq + 1
        self._items.clear()
        self._last_cseq = 0
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, cb=self._on_msg)
        config = api.ConsumerConfig(
            deliver_subject=inbox,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.next_seq,
            ack_policy=api.AckPolicy.NONE,
            max_deliver=1,
            filter_subject=self._subject,
            flow_control=True,
            idle_heartbeat=_HEARTBEAT,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=30.0,
        )
        try:
            info = await js.add_consumer(self._stream, config=config)
        except BaseException:
            await _quietly(sub.unsubscribe())
            raise
        return sub, info.name

    async def _on_msg(self, msg: Msg) -> None:
        """The inbox callback (nats-py's task): queue, and hold back beyond the high water."""
        self._items.append(msg)
        wake(self._getter)
        while len(self._items) >= _HIGH_WATER:
            room = asyncio.get_running_loop().create_future()
            self._room = room
            await room

    async def _pump(self, nc: Client) -> None:
        items = self._items
        while True:
            if not items:
                waiter = asyncio.get_running_loop().create_future()
                self._getter = waiter
                try:
                    async with asyncio.timeout(_HEARTBEAT * 3):
                        await waiter
                except TimeoutError:
                    raise _Reset("no heartbeat from the server for 3 s") from None
                finally:
                    self._getter = None
                continue
            events: list[Event] = []
            last_sseq = 0
            sequences = self._sequences
            for _ in range(min(len(items), _BATCH)):
                msg = items.popleft()
                headers = msg.headers
                if headers and headers.get(api.Header.STATUS) == "100":
                    await self._flush(events, last_sseq)
                    events, last_sseq = [], 0
                    self._control(headers)
                    if msg.reply:
                        await nc.publish(msg.reply)  # flow control: all before it delivered
                    continue
                cseq, sseq = _sequences(msg)
                if cseq != self._last_cseq + 1:
                    await self._flush(events, last_sseq)
                    raise _Reset(f"consumer sequence {cseq} after {self._last_cseq}")
                self._last_cseq = cseq
                last_sseq = sseq
                event = self._own(headers.get("Nats-Msg-Id", "")) if headers else None
                if event is None:
                    try:
                        event = decode_event(msg.data)
                    except Exception as err:
                        self.undecodable += 1
                        _log.error(
                            "bus.jetstream_undecodable",
                            stream=self._stream,
                            seq=sseq,
                            error=repr(err),
                        )
                        continue
                events.append(event)
                sequences[event.id] = sseq
                if len(sequences) >= _SEQUENCES_KEPT:  # two generations: O(1), bounded
                    self._older_sequences, self._sequences = sequences, {}
                    sequences = self._sequences
            await self._flush(events, last_sseq)
            if self._room is not None and len(items) < _HIGH_WATER // 2:
                wake(self._room)
                self._room = None

    def _control(self, headers: dict[str, str]) -> None:
        """A heartbeat names the last consumer sequence sent: a skip means lost messages."""
        last = headers.get(api.Header.LAST_CONSUMER)
        if last is not None and int(last) != self._last_cseq:
            raise _Reset(f"heartbeat says consumer sequence {last}, delivered {self._last_cseq}")

    async def _flush(self, events: list[Event], last_sseq: int) -> None:
        if last_sseq == 0:
            return
        if events:
            await self._deliver(events)
            self.delivered += len(events)
        self.next_seq = last_sseq + 1
        self._on_delivered(last_sseq)

    async def _close(self, sub: Subscription | None, consumer: str | None) -> None:
        wake(self._room)
        self._room = None
        if sub is not None:
            await _quietly(sub.unsubscribe())
        if consumer is not None:
            try:
                _, js = await asyncio.wait_for(self._connect(), 0.5)
                await _quietly(js.delete_consumer(self._stream, consumer))
            except Exception as err:  # an ephemeral consumer also expires (inactive_threshold)
                _log.debug("bus.jetstream_cleanup_failed", consumer=consumer, error=repr(err))


def _sequences(msg: Msg) -> tuple[int, int]:
    """The consumer and stream sequences in a message's acknowledgement subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`` (and the form
    with a domain and an account hash first): two tokens, without building nats-py's whole
    ``Metadata`` with its timestamp (under cProfile that was 5% of a ``publish_batch`` on a
    bus reading its own events back).
    """
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[6]), int(tokens[5])
    meta = msg.metadata  # the newer form (or not an acknowledgement subject: it raises)
    return meta.sequence.consumer, meta.sequence.stream


async def _quietly(step: Awaitable[object]) -> None:
    """Run a best-effort clean-up step, bounded to 1 s, ignoring its failure."""
    try:
        await asyncio.wait_for(step, 1.0)
    except Exception as err:
        _log.debug("bus.jetstream_cleanup_failed", error=repr(err))
