"""``/events``: publish (one or a batch) and history; the live stream is in ``_sse``."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from mnemo_events._log import logger
from mnemo_events.event import Event
from mnemo_events.exceptions import InvalidPatternError
from mnemo_events.patterns import parse_pattern
from mnemo_events.schemas import is_registered, suggest_event_types
from mnemo_events.server._middleware import ApiError, query_int, read_json
from mnemo_events.server._sse import HEARTBEAT_SECONDS
from mnemo_events.server._state import SERVICE, Service

__all__ = ["HEARTBEAT_SECONDS", "routes"]

_log = logger("server")
_EVENT_KEYS = frozenset({"type", "data", "metadata"})
_MAX_HISTORY = 10_000

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
