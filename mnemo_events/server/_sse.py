"""``GET /events/stream``: the live events as server-sent events, resumable and bounded.

Each client has its own queue of at most ``server.stream_queue_size`` events, filled by a
bus subscription that never waits (so one slow client cannot slow the bus, publishers or
other clients). A client that falls that far behind is *stalled*: it gets one last message,
``event: mnemo:resume``, naming the id of the last event written to it, and the connection
is closed. Reconnecting with the header ``Last-Event-ID: <that id>`` (browsers' EventSource
and :mod:`mnemo_events.remote` do it by themselves) replays from the bus history every
matching event published after that one, then goes on live. When the id is no longer in the
history (``events.history_size``), an ``event: mnemo:gap`` message says so before the live
events: what was missed cannot be replayed.

On a JetStream transport the ids are ``<event id>@<stream sequence>`` and a resuming client
gets every later event from the stream itself, however many, across restarts of the service
(:mod:`mnemo_events.server._sse_jetstream`); the gap is then only what the stream's own
limits dropped.

Control messages use event names with a colon, which no event type can contain.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from mnemo_events._log import logger
from mnemo_events.bus._jetstream_bus import jetstream_of
from mnemo_events.event import Event
from mnemo_events.exceptions import InvalidPatternError, TransportError
from mnemo_events.patterns import parse_pattern
from mnemo_events.server._middleware import ApiError
from mnemo_events.server._sse_jetstream import Sequenced, parse_sse_id, resume_point, sse_id
from mnemo_events.server._state import SERVICE

__all__ = [
    "GAP_EVENT",
    "HEARTBEAT_SECONDS",
    "RESUME_EVENT",
    "RETRY_MILLISECONDS",
    "SSE_STATS",
    "SseStats",
    "routes",
    "setup",
]

_log = logger("server")

HEARTBEAT_SECONDS = 15.0
"""Seconds between keep-alive comments on an idle stream."""
RETRY_MILLISECONDS = 3000
"""The ``retry:`` sent with the first event: how long a client waits before reconnecting."""
RESUME_EVENT = "mnemo:resume"
"""The last message to a stalled client: reconnect with ``Last-Event-ID``."""
GAP_EVENT = "mnemo:gap"
"""Sent first on a resumed stream whose ``Last-Event-ID`` is no longer in the history."""
_POLL_SECONDS = 0.5
"""How often an idle stream checks whether its client went away."""
_LAST_WRITE_SECONDS = 2.0
"""How long the last message to a stalled client may wait for room in the socket."""
_LINGER_SECONDS = 10.0
"""How long a stalled client's connection may stay half-closed before it is aborted."""

routes = web.RouteTableDef()


@dataclass
class SseStats:
    """Counters of the stream route of one service."""

    stalled: int = 0
    """Clients disconnected because their queue was full."""
    resumed: int = 0
    """Streams opened with a ``Last-Event-ID`` found in the history."""
    gaps: int = 0
    """Streams opened with a ``Last-Event-ID`` no longer in the history."""
    replayed: int = 0
    """Events sent from the history (or the JetStream stream) to resuming clients."""
    catch_up_failures: int = 0
    """Resumptions from the stream that ended because it could not be read (logged)."""
    catch_up_rounds: int = 0
    """Rounds of reading the JetStream stream for resuming clients (one each, plus one per
    live queue that overflowed meanwhile)."""


SSE_STATS = web.AppKey("mnemo_events.sse_stats", SseStats)


def setup(app: web.Application) -> None:
    """Add the stream route and its counters to ``app`` (before it starts)."""
    app[SSE_STATS] = SseStats()
    app.router.add_routes(routes)


@dataclass(eq=False)
class _Client:
    """One client's bounded queue, fed by the bus without ever waiting."""

    queue: asyncio.Queue[Event]
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    catching_up: bool = False
    """Being resumed from the stream: a full queue is read again from there, not a stall."""
    overflowed: bool = False

    def offer(self, event: Event) -> None:
        """The bus subscription's observer: queue the event, or mark the client stalled."""
        if self.stalled.is_set():
            self.dropped += 1
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            if self.catching_up:
                self.overflowed = True  # the stream holds it: the next round reads it
                return
            self.dropped += 1
            self.stalled.set()

    def restart(self) -> None:
        """Empty the queue for a new round of catching up from the stream."""
        self.overflowed = False
        while not self.queue.empty():
            self.queue.get_nowait()

    def end(self) -> None:
        """The bus stopped: the stream ends after the queue."""
        self.ended.set()


def _message(event: Event, message_id: str, *, retry: bool = False) -> bytes:
    head = f"retry: {RETRY_MILLISECONDS}\n" if retry else ""
    data = event.to_json().decode("utf-8")
    return f"{head}id: {message_id}\nevent: {event.type}\ndata: {data}\n\n".encode()


def _control(name: str, detail: Mapping[str, object], last_id: str | None) -> bytes:
    id_line = f"id: {last_id}\n" if last_id else ""
    data = json.dumps(detail, ensure_ascii=False)
    return f"retry: {RETRY_MILLISECONDS}\n{id_line}event: {name}\ndata: {data}\n\n".encode()


def _stream_pattern(request: web.Request) -> str:
    for name in ("pattern", "type"):
        value = request.query.get(name)
        if value is not None:
            try:
                parse_pattern(value)
            except InvalidPatternError as err:
                raise ApiError(400, f"invalid query parameter {name!r}", [str(err)]) from None
            return value
    return ">"


def _last_event_id(request: web.Request) -> str | None:
    raw = request.headers.get("Last-Event-ID", "").strip()
    if len(raw) > 200 or not (raw.isascii() and raw.isprintable()):
        raise ApiError(400, "header 'Last-Event-ID' must be an event id such as 'evt_…'")
    return raw or None


def _after(history: list[Event], last_id: str) -> list[Event] | None:
    """The events after ``last_id`` in ``history``; None when it is not there."""
    for index in range(len(history) - 1, -1, -1):
        if history[index].id == last_id:
            return history[index + 1 :]
    return None


def _disconnected(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


class _Writer:
    """Writes one stream; remembers the id of the last event handed to the socket."""

    def __init__(
        self, request: web.Request, response: web.StreamResponse, stream: Sequenced | None
    ) -> None:
        self.request = request
        self.response = response
        self.stream = stream
        """The JetStream transport, whose sequences go in the ids; None in memory."""
        self.last_id: str | None = None
        self._retry_sent = False
        self._last_write = asyncio.get_running_loop().time()

    async def event(self, event: Event, seq: int | None = None) -> None:
        """Send one event (the first carries ``retry:``); its id carries its stream
        sequence on JetStream."""
        if seq is None and self.stream is not None:
            seq = self.stream.sequence_of(event.id)
        message_id = sse_id(event.id, seq)
        data = _message(event, message_id, retry=not self._retry_sent)
        self._retry_sent = True
        # aiohttp hands the bytes to the transport before it waits for room, so once this
        # call starts the event is on its way even if the wait is cancelled.
        self.last_id = message_id
        await self.write(data)

    async def write(self, data: bytes) -> None:
        """Send raw bytes."""
        self._last_write = asyncio.get_running_loop().time()
        await self.response.write(data)

    async def replay(self, events: Iterable[Event]) -> None:
        """Send events from the history."""
        for event in events:
            await self.event(event)

    async def catch_up(
        self, client: _Client, stream: Sequenced, pattern: str, after: int, stats: SseStats
    ) -> int:
        """Send every stored event matching ``pattern`` after sequence ``after``, in rounds
        until the live queue kept up; the last sequence sent."""
        while True:
            client.restart()
            stats.catch_up_rounds += 1
            async for seq, event in stream.replay_sequenced(pattern, after + 1):
                await self.event(event, seq)
                stats.replayed += 1
                after = seq
            if not client.overflowed:
                client.catching_up = False  # no await since the check: nothing slips by
                return after

    async def live(self, client: _Client, skip: set[str], after_seq: int = 0) -> None:
        """Send queued events until the bus stops or the client goes away; events at or
        before stream sequence ``after_seq`` were already sent from the stream."""
        stream = self.stream
        while (event := await self._next(client)) is not None:
            if skip:
                if event.id in skip:
                    continue  # already replayed from the history
                skip.clear()  # live events come in order: no later one was replayed
            seq = None
            if stream is not None:
                seq = stream.sequence_of(event.id)
                if after_seq:
                    if seq is not None and seq <= after_seq:
                        continue  # already sent by the catch-up from the stream
                    after_seq = 0  # stream order: no later one was sent
            await self.event(event, seq)

    async def _next(self, client: _Client) -> Event | None:
        """The next queued event; None once the bus stopped or the client went away."""
        while True:
            try:
                async with asyncio.timeout(_POLL_SECONDS):
                    return await client.queue.get()
            except TimeoutError:
                if client.ended.is_set() or _disconnected(self.request):
                    return None
                if asyncio.get_running_loop().time() - self._last_write >= HEARTBEAT_SECONDS:
                    await self.write(b": keep-alive\n\n")


async def _until_first(*aws: asyncio.Future[Any]) -> None:
    await asyncio.wait(aws, return_when=asyncio.FIRST_COMPLETED)


@routes.get("/events/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    """The live stream of events matching ``pattern`` (default all) as ``text/event-stream``.

    Each message has ``id`` (the event id; ``<event id>@<stream sequence>`` on JetStream),
    ``event`` (its type) and ``data`` (the event's JSON); the first also has ``retry``. An
    idle stream gets a ``: keep-alive`` comment every 15 s. With a ``Last-Event-ID`` header
    the stream starts with the matching events published after that one (from the history,
    or from the stream on JetStream). A client that falls
    ``server.stream_queue_size`` events behind gets ``event: mnemo:resume`` and is
    disconnected. The stream ends when the client disconnects or the service shuts down.
    """
    service = request.app[SERVICE]
    stats = request.app[SSE_STATS]
    pattern = _stream_pattern(request)
    last_id = _last_event_id(request)
    client = _Client(asyncio.Queue(service.settings.server.stream_queue_size))
    stream: Sequenced | None = jetstream_of(service.bus.transport)
    after: int | None = None  # the stream sequence to resume after (JetStream)
    missing = 0
    if last_id is not None and stream is not None:
        event_id, seq = parse_sse_id(last_id)
        try:
            point = None if seq is None else await resume_point(stream, event_id, seq)
        except (TransportError, TimeoutError) as err:
            raise ApiError(
                503,
                f"cannot resume from the JetStream stream now ({type(err).__name__}); "
                "retry with the same Last-Event-ID",
                headers={"Retry-After": "1"},
            ) from None
        if point is not None:
            after, missing = point
            client.catching_up = True
        else:
            last_id = event_id  # no sequence, or not this stream's: look the event id up
    # Subscribe before reading the history and before answering: nothing published from now
    # on is missed; what is both in the history and queued is sent once.
    subscription = service.bus.observe(pattern).subscribe(
        on_next=client.offer, on_completed=client.end
    )
    backlog: list[Event] = []
    gap = False
    if after is not None:
        gap = missing > 0
        stats.gaps += gap
        stats.resumed += 1
    elif last_id is not None:
        history = await service.bus.get_history(pattern, limit=service.bus.config.history_size)
        found = _after(history, last_id)
        gap = found is None
        backlog = found or []
        stats.gaps += gap
        stats.resumed += not gap
        stats.replayed += len(backlog)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    writer = _Writer(request, response, stream)
    writer.last_id = request.headers.get("Last-Event-ID", "").strip() or None
    service.stream_clients += 1
    pump: asyncio.Task[None] | None = None
    waiters: list[asyncio.Task[Any]] = []
    try:
        await response.prepare(request)
        await response.write(f": streaming {pattern}\n\n".encode())
        if gap and after is not None:
            detail = {
                "last_event_id": writer.last_id,
                "missing": missing,
                "detail": f"{missing} events after this one are no longer in the stream (its "
                "limits dropped them): the stream resumes with the oldest it holds",
            }
            await writer.write(_control(GAP_EVENT, detail, None))
        elif gap:
            detail = {
                "last_event_id": last_id,
                "detail": "this event is no longer in the history (events.history_size): "
                "events published after it and before now cannot be replayed",
            }
            await writer.write(_control(GAP_EVENT, detail, None))
        if after is not None and stream is not None:
            pump = asyncio.ensure_future(
                _run_from_stream(writer, client, stream, pattern, after, stats)
            )
        else:
            pump = asyncio.ensure_future(_run(writer, client, backlog))
        waiters = [
            asyncio.ensure_future(client.stalled.wait()),
            asyncio.ensure_future(service.closing.wait()),
        ]
        await _until_first(pump, *waiters)
        if client.stalled.is_set() and not pump.done():
            subscription.dispose()  # drop nothing more on the floor while it is cut off
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            await _cut_off(request, writer, client, pattern, stats)
            return response
        if pump.done():
            pump.result()  # a write error surfaces here
    except ConnectionResetError:  # the client went away while events were being written
        _log.debug("server.stream_closed", pattern=pattern)
        return response
    except asyncio.CancelledError:
        _log.debug("server.stream_closed", pattern=pattern)
        raise
    finally:
        service.stream_clients -= 1
        subscription.dispose()
        for task in (pump, *waiters):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    await _finish(request, writer.response)
    return response


async def _run(writer: _Writer, client: _Client, backlog: list[Event]) -> None:
    await writer.replay(backlog)
    await writer.live(client, {event.id for event in backlog})


async def _run_from_stream(
    writer: _Writer, client: _Client, stream: Sequenced, pattern: str, after: int, stats: SseStats
) -> None:
    try:
        last = await writer.catch_up(client, stream, pattern, after, stats)
    except (ConnectionError, asyncio.CancelledError):
        raise
    except Exception as err:
        # The stream could not be read (its server went away): end this response; the
        # client reconnects with the id it saw last and resumes from there.
        stats.catch_up_failures += 1
        _log.warning(
            "server.stream_catch_up_failed",
            pattern=pattern,
            last_event_id=writer.last_id,
            error=f"{type(err).__name__}: {err}",
        )
        return
    await writer.live(client, set(), after_seq=last)


async def _cut_off(
    request: web.Request, writer: _Writer, client: _Client, pattern: str, stats: SseStats
) -> None:
    """Tell a stalled client how to resume, then close its connection."""
    stats.stalled += 1
    queued = client.queue.qsize()
    _log.warning(
        "server.stream_stalled",
        pattern=pattern,
        queue_size=client.queue.maxsize,
        last_event_id=writer.last_id,
    )
    detail = {
        "last_event_id": writer.last_id,
        "detail": f"this client fell {queued} events behind (server.stream_queue_size) and "
        "is disconnected; reconnect with the header 'Last-Event-ID: <last_event_id>' to "
        "resume from the history",
    }
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(_LAST_WRITE_SECONDS):
            await writer.write(_control(RESUME_EVENT, detail, writer.last_id))
    await _finish(request, writer.response, close=True)


async def _finish(
    request: web.Request, response: web.StreamResponse, *, close: bool = False
) -> None:
    """End the response; a client that does not read is closed instead of waited for."""
    try:
        async with asyncio.timeout(_LAST_WRITE_SECONDS):
            await response.write_eof()
    except ConnectionError:
        return
    except TimeoutError:
        close = True
    transport = request.transport
    if close and transport is not None and not transport.is_closing():
        # close() sends what is buffered first; abort() bounds how long that may take.
        transport.close()
        asyncio.get_running_loop().call_later(_LINGER_SECONDS, transport.abort)
