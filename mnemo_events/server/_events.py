"""``/events``: publish (one or a batch), history, and the live stream as server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from mnemo_events._log import logger
from mnemo_events.event import Event
from mnemo_events.exceptions import InvalidPatternError
from mnemo_events.patterns import parse_pattern
from mnemo_events.schemas import is_registered, suggest_event_types
from mnemo_events.server._middleware import ApiError, query_int, read_json
from mnemo_events.server._state import SERVICE, Service

__all__ = ["HEARTBEAT_SECONDS", "routes"]

_log = logger("server")
_EVENT_KEYS = frozenset({"type", "data", "metadata"})
_MAX_HISTORY = 10_000
HEARTBEAT_SECONDS = 15.0
"""Seconds between keep-alive comments on an idle stream."""
_POLL_SECONDS = 0.5
"""How often an idle stream checks whether its client went away."""

routes = web.RouteTableDef()


def _item_problems(index: int | None, item: Any) -> list[str]:
    """Structural problems of one event in a request (schemas are checked by the bus)."""
    where = "body" if index is None else f"events[{index}]"
    if not isinstance(item, Mapping):
        return [f"{where}: expected an object with 'type', 'data', 'metadata'"]
    problems = [f"{where}: unknown key {key!r}" for key in sorted(set(item) - _EVENT_KEYS)]
    if "type" not in item:
        problems.append(f"{where}.type: required field is missing")
    elif not isinstance(item["type"], str):
        problems.append(f"{where}.type: expected a string, got {item['type']!r}")
    for key in ("data", "metadata"):
        if item.get(key) is not None and not isinstance(item[key], Mapping):
            problems.append(f"{where}.{key}: expected an object, got {type(item[key]).__name__}")
    return problems


def _warnings(events: list[Event]) -> list[str]:
    """A note for each event type that has no registered schema (often a typo)."""
    notes = []
    for event_type in dict.fromkeys(event.type for event in events):
        if not is_registered(event_type):
            close = suggest_event_types(event_type)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            notes.append(f"event type {event_type!r} has no registered schema{hint}")
    return notes


@routes.post("/events")
async def publish(request: web.Request) -> web.Response:
    """Publish one event (``{"type", "data", "metadata"}``) or a batch (``{"events": [...]}``
    or a JSON array); every event is checked before any is published, and the 202 comes once
    every matching webhook delivery is committed to the delivery store."""
    service = request.app[SERVICE]
    body = await read_json(request)
    single = isinstance(body, Mapping) and "events" not in body
    if isinstance(body, Mapping) and not single:
        extra = sorted(set(body) - {"events"})
        if extra:
            raise ApiError(422, "invalid batch", [f"body: unknown key {key!r}" for key in extra])
        body = body["events"]
    items = [body] if single else body
    if not isinstance(items, list):
        raise ApiError(422, "invalid batch", ["events: expected an array of events"])
    if not items:
        raise ApiError(422, "invalid batch", ["events: the batch is empty"])
    problems = [
        p for i, item in enumerate(items) for p in _item_problems(None if single else i, item)
    ]
    if problems:
        raise ApiError(422, "invalid event" if single else "invalid batch", problems)
    batch = [
        {"type": item["type"], "data": item.get("data") or {}, "metadata": item.get("metadata")}
        for item in items
    ]
    if single:
        events = [
            await service.bus.publish(batch[0]["type"], batch[0]["data"], batch[0]["metadata"])
        ]
    else:
        events = await service.bus.publish_batch(batch)
    await _durable(service)
    result: dict[str, Any] = (
        {"event": events[0].to_dict()}
        if single
        else {"count": len(events), "events": [event.to_dict() for event in events]}
    )
    notes = _warnings(events)
    if notes:
        result["warnings"] = notes
    return web.json_response(result, status=202)


async def _durable(service: Service) -> None:
    """Return once every delivery of the events published so far is committed to the
    delivery store: the 202 promises an event that survives a crash (SIGKILL) at any moment.

    The bus is waited for on the manager's subscription only (a slow stream client does not
    hold a publisher up), then the store's current batch commits: concurrent requests share
    one transaction, so throughput holds.

    Raises:
        BusNotRunningError: the bus stopped with those events undelivered (a 503).
        sqlite3.Error: the batch could not commit (a 503 naming the store).
    """
    manager = service.webhooks
    if not (service.settings.webhooks.enabled and manager.is_running):
        return  # no webhook deliveries to make durable
    subscription = manager.bus_subscription_id
    await service.bus.flush(subscription_ids=None if subscription is None else [subscription])
    try:
        await manager.flush()
    except sqlite3.Error as err:
        _log.error("server.publish_not_durable", error=type(err).__name__, detail=str(err))
        raise ApiError(
            503,
            "the events were published but their webhook deliveries could not be committed "
            "to the delivery store; retry the request",
            headers={"Retry-After": "1"},
        ) from None


def _pattern(request: web.Request, *names: str) -> str | None:
    """The first of the query parameters ``names`` given; every one given must be a valid
    pattern (a bad one is a 400 even when another comes first)."""
    found: str | None = None
    for name in names:
        value = request.query.get(name)
        if value is None:
            continue
        try:
            parse_pattern(value)
        except InvalidPatternError as err:
            raise ApiError(400, f"invalid query parameter {name!r}", [str(err)]) from None
        found = value if found is None else found
    return found


@routes.get("/events")
async def history(request: web.Request) -> web.Response:
    """Recent events, oldest first, filtered by ``type`` or ``pattern``; ``limit`` (50)."""
    bus = request.app[SERVICE].bus
    pattern = _pattern(request, "type", "pattern")
    events = await bus.get_history(pattern, limit=query_int(request, "limit", 50, 0, _MAX_HISTORY))
    return web.json_response({"count": len(events), "events": [e.to_dict() for e in events]})


def _sse(event: Event) -> bytes:
    data = event.to_json().decode("utf-8")
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode()


async def _next_or_none(
    pending: asyncio.Task[Event], closing: asyncio.Event, wait: float
) -> tuple[bool, Event | None]:
    """Wait for the next event; ``(True, None)`` when the service closes, ``(False, None)`` on
    a heartbeat timeout."""
    closed = asyncio.ensure_future(closing.wait())
    try:
        done, _ = await asyncio.wait(
            {pending, closed}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        closed.cancel()
    if pending in done:
        return False, pending.result()
    return closing.is_set(), None


def _disconnected(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@routes.get("/events/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    """The live stream of events matching ``pattern`` (default all) as ``text/event-stream``.

    Each message has ``id`` (the event id), ``event`` (its type) and ``data`` (the event's
    JSON); an idle stream gets a ``: keep-alive`` comment every 15 s. The stream ends when the
    client disconnects or the service shuts down.
    """
    service = request.app[SERVICE]
    pattern = _pattern(request, "pattern", "type") or ">"
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    events: AsyncIterator[Event] = service.bus.stream(pattern).__aiter__()
    # Subscribe before telling the client it is streaming: what it publishes next is seen.
    pending: asyncio.Task[Event] | None = asyncio.ensure_future(events.__anext__())
    await asyncio.sleep(0)
    service.stream_clients += 1
    try:
        await response.prepare(request)
        await response.write(f": streaming {pattern}\n\n".encode())
        loop = asyncio.get_running_loop()
        last_write = loop.time()
        while not service.closing.is_set():
            if pending is None:
                pending = asyncio.ensure_future(events.__anext__())
            closed, event = await _next_or_none(pending, service.closing, _POLL_SECONDS)
            if closed or (event is None and _disconnected(request)):
                break
            if event is None:
                if loop.time() - last_write >= HEARTBEAT_SECONDS:
                    await response.write(b": keep-alive\n\n")
                    last_write = loop.time()
                continue
            pending = None
            await response.write(_sse(event))
            last_write = loop.time()
    except StopAsyncIteration:
        pass  # the bus stopped
    except (ConnectionResetError, asyncio.CancelledError):
        _log.debug("server.stream_closed", pattern=pattern)
        raise
    finally:
        service.stream_clients -= 1
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        close = getattr(events, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
