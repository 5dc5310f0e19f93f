"""Resuming ``GET /events/stream`` from the JetStream stream, when the bus runs on one.

On JetStream each message's ``id`` is ``<event id>@<stream sequence>``. A sequence is where the
event sits in the stream, so a client reconnecting with that id resumes with a seek (a consumer
from ``sequence + 1``) instead of a search: the stream cannot be looked up by event id, and the
in-process history holds only the last ``events.history_size`` events. The event id stays in
front, so the id still names the event, and the service checks that the stream still holds
that event at that sequence (a stream deleted and recreated reuses sequences): if not, the
event id alone is looked up in the history, as on the in-process bus. The same id works after
a restart of the service, or against another service on the same stream.

::

    Last-Event-ID: evt_…@S ─▶ catch-up round: reset the live queue, replay S+1 … end-now
                              └─ the live queue overflowed meanwhile? another round from there
                            ─▶ live: queued events, those at or before the last replayed
                               sequence skipped (each event once, in stream order)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from mnemo_events.event import Event

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["SEPARATOR", "Sequenced", "parse_sse_id", "resume_point", "sse_id"]

SEPARATOR = "@"
"""Between the event id and the stream sequence in a message ``id``."""


class Sequenced(Protocol):
    """What the resumption needs of the JetStream transport."""

    def replay_sequenced(self, pattern: str, since: int) -> AsyncIterator[tuple[int, Event]]:
        """Stored events matching ``pattern`` from sequence ``since``, with sequences."""
        ...

    def sequence_of(self, event_id: str) -> int | None:
        """The stream sequence of an event the live feed delivered recently."""
        ...

    async def stream_bounds(self) -> tuple[int, int]:
        """The stream's first and last sequences now."""
        ...

    async def message_id_at(self, seq: int) -> str | None:
        """The event id stored at ``seq``, or None."""
        ...


def sse_id(event_id: str, seq: int | None) -> str:
    """The message ``id`` of an event: ``<event id>@<sequence>``, or the event id alone."""
    return f"{event_id}{SEPARATOR}{seq}" if seq else event_id


def parse_sse_id(raw: str) -> tuple[str, int | None]:
    """The event id and the stream sequence in a ``Last-Event-ID`` (None: no sequence)."""
    event_id, separator, tail = raw.rpartition(SEPARATOR)
    if separator and event_id and tail.isdigit() and tail.isascii() and len(tail) <= 19:
        return event_id, int(tail)
    return raw, None


async def resume_point(stream: Sequenced, event_id: str, seq: int) -> tuple[int, int] | None:
    """Where a client that saw ``event_id`` at ``seq`` resumes: ``(after, missing)``.

    ``after`` is the sequence to resume after; ``missing`` how many sequences between ``seq``
    and the stream's first one are gone (aged out or purged: a gap). None when the stream
    does not hold that event at that sequence (another stream, or a recreated one).
    """
    first, _ = await stream.stream_bounds()
    if seq < first:
        return first - 1, first - 1 - seq
    if await stream.message_id_at(seq) == event_id:
        return seq, 0
    return None
