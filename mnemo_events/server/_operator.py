"""What operators need beyond the core routes: metrics wiring and ``POST /webhooks/{id}/test``.

:func:`install` is the one call ``create_app`` makes: it gives the app its own Prometheus
registry (:class:`~mnemo_events.server._metrics.ServiceMetrics`), times every request, observes
handler calls and webhook attempts while the app runs, and adds the test route.

``POST /webhooks/{id}/test`` sends a signed sample event of a chosen type to that one webhook,
as Svix's "send example" does: a real delivery through the webhook's pipeline (recorded in
the store, retried, visible under its deliveries), not published on the bus, so no other
webhook or subscriber sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from mnemo_events._log import logger
from mnemo_events.event import Event
from mnemo_events.schemas import (
    get_json_schema,
    is_registered,
    suggest_event_types,
    validate_event,
)
from mnemo_events.server._metrics import METRICS, ServiceMetrics, metrics_middleware
from mnemo_events.server._middleware import ApiError, read_json
from mnemo_events.server._state import SERVICE
from mnemo_events.server._webhooks import webhook_or_404
from mnemo_events.webhook_manager import WebhookManager

__all__ = ["install", "routes", "sample_payload"]

_log = logger("server")
routes = web.RouteTableDef()
_TEST_FIELDS = frozenset({"event_type", "data"})
DEFAULT_TEST_TYPE = "memory.created"


def install(app: web.Application) -> None:
    """Wire metrics and the operator routes into ``app`` (called once by ``create_app``)."""
    metrics = ServiceMetrics(app[SERVICE])
    app[METRICS] = metrics
    app.middlewares.insert(0, metrics_middleware(metrics))  # outermost: sees final codes
    app.router.add_routes(routes)

    async def _observe(_: web.Application) -> None:
        metrics.install()

    async def _stop_observing(_: web.Application) -> None:
        metrics.uninstall()

    app.on_startup.append(_observe)
    app.on_cleanup.append(_stop_observing)


def _sample(schema: Mapping[str, Any], name: str) -> Any:
    """A value valid for one JSON Schema node (the common keywords only)."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key, []) if o.get("type") != "null"]
        if options:
            return _sample(options[0], name)
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 2))
        value = (low + high) / 2
        return (
            int(value)
            if kind == "integer" and int(value) > low
            else (low + 1 if kind == "integer" else value)
        )
    if kind == "boolean":
        return True
    if kind == "array":
        return [_sample(schema.get("items", {}), name)] * max(schema.get("minItems", 0), 1)
    if kind == "object":
        properties = schema.get("properties", {})
        return {key: _sample(properties[key], key) for key in schema.get("required", [])}
    if schema.get("format") == "date-time":
        return "2026-01-01T00:00:00Z"
    text = f"sample_{name}"
    return text.ljust(schema.get("minLength", 0), "x")


def sample_payload(event_type: str) -> dict[str, Any]:
    """A payload valid for ``event_type``'s schema: its required fields with sample values."""
    value = _sample(get_json_schema(event_type), "data")
    return value if isinstance(value, dict) else {}


def _send_test(manager: WebhookManager, webhook_id: str, event: Event) -> str:
    """Queue ``event`` for one webhook only; the new delivery's id."""
    # The manager has no public per-webhook send yet; this is the path its own fan-out takes
    # for one actor (the delivery is recorded in the store first, then attempted).
    actor = manager._running().actors[webhook_id]
    job = actor._new_job(event)
    if job is None:
        raise ApiError(503, "the delivery could not be recorded; see the service log")
    actor._admit(job)
    return job.delivery_id


@routes.post("/webhooks/{webhook_id}/test")
async def test_webhook(request: web.Request) -> web.Response:
    """Send a signed sample event (``event_type``, default memory.created; ``data`` optional,
    else a sample built from the schema) to this webhook only; 202 with the delivery id."""
    manager = request.app[SERVICE].webhooks
    if not manager.is_running:
        raise ApiError(503, "the webhook manager is not running", headers={"Retry-After": "1"})
    webhook_id = request.match_info["webhook_id"]
    webhook = webhook_or_404(manager, webhook_id)  # 404
    body: Any = await read_json(request)  # the document requires a body; `{}` takes defaults
    if not isinstance(body, Mapping):
        raise ApiError(422, "invalid request body", ["body: expected a JSON object"])
    problems = [f"{key}: unknown field" for key in body if key not in _TEST_FIELDS]
    event_type = body.get("event_type", DEFAULT_TEST_TYPE)
    if not isinstance(event_type, str) or not is_registered(event_type):
        hint = suggest_event_types(event_type) if isinstance(event_type, str) else []
        problems.append(
            f"event_type: {event_type!r} is not a registered event type"
            + (f" (did you mean {', '.join(hint)}?)" if hint else "")
        )
    data = body.get("data")
    if data is not None and not isinstance(data, Mapping):
        problems.append("data: expected an object")
    if problems:
        raise ApiError(422, "invalid request body", problems)
    payload = dict(data) if data is not None else sample_payload(event_type)
    ok, errors = validate_event(event_type, payload)
    if not ok:
        raise ApiError(422, f"data is not a valid {event_type} payload", errors)
    if not webhook.enabled:
        raise ApiError(409, f"webhook {webhook_id} is disabled; enable it before testing it")
    if not webhook.matches(event_type):
        raise ApiError(
            422,
            f"webhook {webhook_id} does not subscribe to {event_type!r} (its patterns: "
            f"{', '.join(webhook.events)})",
        )
    event = Event.create(event_type, payload, {"test": True})
    delivery_id = _send_test(manager, webhook_id, event)
    _log.info(
        "server.webhook_test_sent",
        webhook_id=webhook_id,
        event_type=event_type,
        delivery_id=delivery_id,
    )
    return web.json_response(
        {"delivery_id": delivery_id, "event_id": event.id, "event_type": event_type},
        status=202,
        headers={"Location": f"/deliveries/{delivery_id}"},
    )
