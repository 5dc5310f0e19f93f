"""``/webhooks`` and ``/deliveries``: register and manage endpoints, inspect and redeliver."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from mnemo_events.exceptions import WebhookNotFoundError
from mnemo_events.server._middleware import ApiError, decode_json, query_int, read_body, read_json
from mnemo_events.server._state import SERVICE
from mnemo_events.webhook_manager import DeliveryStatus, Webhook, WebhookManager

__all__ = ["MAX_GRACE_SECONDS", "routes"]

routes = web.RouteTableDef()

MAX_GRACE_SECONDS = 30 * 86400
"""Longest grace period of a rotated secret (30 days)."""

_STR = (str,)
_OPT_STR = (str, type(None))
# Field -> accepted JSON types; the manager checks the values themselves.
_FIELDS: dict[str, tuple[type, ...]] = {
    "url": _STR,
    "events": (list,),
    "secret": _OPT_STR,
    "secret_ref": _OPT_STR,
    "headers": (dict, type(None)),
    "enabled": (bool,),
    "retry_config": (dict, type(None)),
    "signature_scheme": _STR,
    "description": _OPT_STR,
}
_ROTATE_FIELDS: dict[str, tuple[type, ...]] = {
    "secret": _OPT_STR,
    "secret_ref": _OPT_STR,
    "grace_seconds": (int, float),
}
_JSON_NAMES = {
    str: "a string",
    list: "an array",
    dict: "an object",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def _checked(
    body: Any, fields: Mapping[str, tuple[type, ...]], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The body as a dict after checking its keys and their JSON types (422 otherwise)."""
    if not isinstance(body, Mapping):
        raise ApiError(422, "invalid request body", ["body: expected a JSON object"])
    problems = [f"{key}: unknown field" for key in body if key not in fields]
    problems += [f"{key}: required field is missing" for key in required if key not in body]
    for key, value in body.items():
        allowed = fields.get(key)
        if allowed is None:
            continue
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        if not ok:
            names = " or ".join(dict.fromkeys(_JSON_NAMES[t] for t in allowed))
            problems.append(f"{key}: expected {names}, got {value!r}")
    if isinstance(body.get("events"), list) and not all(
        isinstance(item, str) for item in body["events"]
    ):
        problems.append("events: expected an array of pattern strings")
    if problems:
        raise ApiError(422, "invalid request body", problems)
    return dict(body)


def _manager(request: web.Request) -> WebhookManager:
    manager = request.app[SERVICE].webhooks
    if not manager.is_running:
        raise ApiError(503, "the webhook manager is not running", headers={"Retry-After": "1"})
    return manager


def _with_secret(webhook: Webhook) -> dict[str, Any]:
    """The webhook as JSON with its new secret shown (only on register and rotate)."""
    shown = webhook.to_dict()
    shown["secret"] = webhook.secret
    return shown


@routes.post("/webhooks")
async def register(request: web.Request) -> web.Response:
    """Register a webhook; the response is the only place a generated secret is shown."""
    manager = _manager(request)
    body = _checked(await read_json(request), _FIELDS, ("url", "events"))
    url, events = body.pop("url"), body.pop("events")
    webhook = await manager.register_webhook(url, events, **body)
    return web.json_response(
        _with_secret(webhook), status=201, headers={"Location": f"/webhooks/{webhook.id}"}
    )


@routes.get("/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    """Every webhook, secrets masked; ``enabled_only=true`` leaves disabled ones out."""
    manager = request.app[SERVICE].webhooks
    flag = request.query.get("enabled_only", "false").lower()
    if flag not in ("true", "false", "1", "0"):
        raise ApiError(400, f"query parameter 'enabled_only' must be true or false, got {flag!r}")
    webhooks = manager.list_webhooks(enabled_only=flag in ("true", "1"))
    return web.json_response({"count": len(webhooks), "webhooks": [w.to_dict() for w in webhooks]})


def webhook_or_404(manager: WebhookManager, webhook_id: str) -> Webhook:
    """The webhook, or the 404 (``get_webhook`` answers ``None`` for an unknown id)."""
    webhook = manager.get_webhook(webhook_id)
    if webhook is None:
        raise WebhookNotFoundError(f"no webhook with id {webhook_id!r}")
    return webhook


@routes.get("/webhooks/{webhook_id}")
async def get_webhook(request: web.Request) -> web.Response:
    """One webhook with its delivery status (counts, success rate, last delivery times)."""
    manager = _manager(request)
    webhook_id = request.match_info["webhook_id"]
    shown = webhook_or_404(manager, webhook_id).to_dict()
    shown["status"] = (await manager.get_webhook_status(webhook_id)).to_dict()
    return web.json_response(shown)


@routes.patch("/webhooks/{webhook_id}")
async def update(request: web.Request) -> web.Response:
    """Change some fields; ``enabled: true`` re-enables a webhook disabled after failures."""
    manager = _manager(request)
    webhook_id = request.match_info["webhook_id"]
    webhook_or_404(manager, webhook_id)  # 404 before 422
    body = _checked(await read_json(request), _FIELDS)
    if not body:
        raise ApiError(422, "nothing to update", [f"send one or more of {sorted(_FIELDS)}"])
    webhook = await manager.update_webhook(webhook_id, **body)
    return web.json_response(webhook.to_dict())


@routes.delete("/webhooks/{webhook_id}")
async def delete(request: web.Request) -> web.Response:
    """Remove a webhook; its unfinished deliveries are marked failed."""
    manager = _manager(request)
    webhook_id = request.match_info["webhook_id"]
    if not await manager.delete_webhook(webhook_id):
        raise WebhookNotFoundError(f"no webhook with id {webhook_id!r}")
    return web.Response(status=204)


@routes.post("/webhooks/{webhook_id}/rotate-secret")
async def rotate_secret(request: web.Request) -> web.Response:
    """Replace the secret (generated unless given), still signing with the old one for
    ``grace_seconds`` (default one day, at most :data:`MAX_GRACE_SECONDS`); the body is
    optional, and the response shows the new secret once."""
    manager = _manager(request)
    webhook_id = request.match_info["webhook_id"]
    webhook_or_404(manager, webhook_id)
    raw = await read_body(request)
    body = _checked(decode_json(raw) if raw.strip() else {}, _ROTATE_FIELDS)
    grace = float(body.get("grace_seconds", 86400))
    if not 0 <= grace <= MAX_GRACE_SECONDS:
        raise ApiError(
            422,
            "invalid request body",
            [f"grace_seconds: expected 0 to {MAX_GRACE_SECONDS} seconds, got {grace:g}"],
        )
    webhook = await manager.rotate_secret(
        webhook_id, body.get("secret"), grace, new_secret_ref=body.get("secret_ref")
    )
    return web.json_response(_with_secret(webhook))


@routes.get("/webhooks/{webhook_id}/deliveries")
async def deliveries(request: web.Request) -> web.Response:
    """A webhook's deliveries, newest first; ``status`` (pending, retrying, success, failed)
    filters, ``limit`` (100) bounds."""
    manager = _manager(request)
    webhook_id = request.match_info["webhook_id"]
    webhook_or_404(manager, webhook_id)
    status = request.query.get("status")
    if status is not None and status not in {s.value for s in DeliveryStatus}:
        choices = ", ".join(s.value for s in DeliveryStatus)
        raise ApiError(400, f"query parameter 'status' must be one of {choices}, got {status!r}")
    found = await manager.get_delivery_history(
        webhook_id, limit=query_int(request, "limit", 100, 1, 10_000), status=status
    )
    return web.json_response({"count": len(found), "deliveries": [d.to_dict() for d in found]})


@routes.post("/webhooks/{webhook_id}/replay-failed")
async def replay_failed(request: web.Request) -> web.Response:
    """Send every failed delivery of a webhook again."""
    manager = _manager(request)
    count = await manager.replay_failed(request.match_info["webhook_id"])
    return web.json_response({"replayed": count}, status=202)


@routes.get("/deliveries/{delivery_id}")
async def get_delivery(request: web.Request) -> web.Response:
    """One delivery with every attempt."""
    delivery = await _manager(request).get_delivery(request.match_info["delivery_id"])
    return web.json_response(delivery.to_dict())


@routes.post("/deliveries/{delivery_id}/redeliver")
async def redeliver(request: web.Request) -> web.Response:
    """Send a finished delivery again (same delivery id, a new round of attempts)."""
    delivery_id = await _manager(request).redeliver(request.match_info["delivery_id"])
    return web.json_response({"delivery_id": delivery_id, "status": "pending"}, status=202)
