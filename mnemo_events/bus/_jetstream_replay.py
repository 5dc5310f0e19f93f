"""Reading the stored past: ``get_history`` and ``bus.replay`` on a JetStream transport.

Both read through a short-lived ephemeral pull consumer without acknowledgements, filtered by
the pattern's subject, from a start sequence or time up to the stream's last sequence at the
moment of the call (what is published meanwhile belongs to the live stream). The consumer is
deleted afterwards and would expire by itself anyway.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from nats.js import api

from mnemo_events._log import logger
from mnemo_events.bus._jetstream_feed import decode_event
from mnemo_events.event import Event
from mnemo_events.patterns import parse_pattern

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.client import JetStreamContext

__all__ = ["read_history", "read_stream", "read_stream_sequenced"]

_log = logger("bus")
_FETCH = 256
_FETCH_WAIT = 2.0

Connect = Callable[[], Awaitable[tuple["Client", "JetStreamContext"]]]


def _subject(prefix: str, pattern: str | None) -> str:
    return parse_pattern(pattern or ">").to_nats_subject(prefix)


async def _read(
    js: JetStreamContext, stream: str, subject: str, since: datetime | int, until_seq: int
) -> AsyncIterator[tuple[int, Event]]:
    """Events on ``subject`` from ``since`` (a sequence or a time) up to ``until_seq``, with
    their stream sequences."""
    config = api.ConsumerConfig(
        ack_policy=api.AckPolicy.NONE,
        filter_subject=subject,
        mem_storage=True,
        num_replicas=1,
        inactive_threshold=30.0,
        max_deliver=1,
    )
    if isinstance(since, datetime):
        config.deliver_policy = api.DeliverPolicy.BY_START_TIME
        config.opt_start_time = since
    else:
        config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = max(since, 1)
    info = await js.add_consumer(stream, config=config)
    try:
        if not info.num_pending:
            return
        sub = await js.pull_subscribe_bind(info.name, stream=stream)
        try:
            while True:
                msgs = await sub.fetch(_FETCH, timeout=_FETCH_WAIT)
                for msg in msgs:
                    meta = msg.metadata
                    if meta.sequence.stream > until_seq:
                        return
                    try:
                        event = decode_event(msg.data)
                    except Exception as err:
                        _log.error(
                            "bus.jetstream_undecodable",
                            stream=stream,
                            seq=meta.sequence.stream,
                            error=repr(err),
                        )
                    else:
                        yield meta.sequence.stream, event
                    if meta.sequence.stream >= until_seq or meta.num_pending == 0:
                        return
        finally:
            await _bounded(sub.unsubscribe())
    finally:
        await _bounded(js.delete_consumer(stream, info.name))


async def read_history(
    js: JetStreamContext, stream: str, prefix: str, pattern: str | None, limit: int
) -> list[Event]:
    """The newest ``limit`` stored events matching ``pattern``, oldest first.

    Looks back over a window of the stream that grows fourfold until it holds ``limit``
    matching events or covers the whole stream.
    """
    if limit <= 0:
        return []
    subject = _subject(prefix, pattern)
    state = (await js.stream_info(stream)).state
    first, last = state.first_seq, state.last_seq
    if last == 0 or state.messages == 0:
        return []
    window = limit
    while True:
        start = max(first, last - window + 1)
        if start > first:
            probe = await js.add_consumer(
                stream,
                config=api.ConsumerConfig(
                    ack_policy=api.AckPolicy.NONE,
                    filter_subject=subject,
                    deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=start,
                    mem_storage=True,
                    num_replicas=1,
                    inactive_threshold=10.0,
                ),
            )
            await _bounded(js.delete_consumer(stream, probe.name))
            if (probe.num_pending or 0) < limit:
                window *= 4
                continue
        newest: deque[Event] = deque(maxlen=limit)
        async for _, event in _read(js, stream, subject, start, last):
            newest.append(event)
        return list(newest)


async def read_stream(
    connect: Connect, stream: str, prefix: str, pattern: str, since: datetime | int
) -> AsyncIterator[Event]:
    """Every stored event matching ``pattern`` from ``since`` up to the stream's end now.

    ``since`` is a timezone-aware time or a stream sequence (1 is the first).
    """
    async for _, event in read_stream_sequenced(connect, stream, prefix, pattern, since):
        yield event


async def read_stream_sequenced(
    connect: Connect, stream: str, prefix: str, pattern: str, since: datetime | int
) -> AsyncIterator[tuple[int, Event]]:
    """As :func:`read_stream`, each event with its stream sequence."""
    subject = _subject(prefix, pattern)
    _, js = await connect()
    last = (await js.stream_info(stream)).state.last_seq
    async for pair in _read(js, stream, subject, since, last):
        yield pair


async def _bounded(step: Awaitable[object]) -> None:
    try:
        await asyncio.wait_for(step, 1.0)
    except Exception as err:
        _log.debug("bus.jetstream_cleanup_failed", error=repr(err))
