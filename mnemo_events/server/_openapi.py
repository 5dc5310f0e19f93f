"""The service's OpenAPI 3.1 document: the schemas' webhook document plus the HTTP paths."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from mnemo_events.schemas import export_openapi_spec
from mnemo_events.server._dashboard import openapi_paths
from mnemo_events.server._openapi_schemas import PATTERN_SCHEMA, service_schemas
from mnemo_events.server._state import SERVICE

__all__ = ["query_parameters", "routes", "service_openapi"]

routes = web.RouteTableDef()

_AUTH: list[dict[str, list[str]]] = [{"bearerAuth": []}]
_STR = {"type": "string"}
_OBJ = {"type": "object"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR_TEXT = {
    400: "Malformed or non-strict JSON (NaN, Infinity, an overflowing number, an integer of "
    "more than 64 digits, nesting deeper than 100) or a bad query parameter.",
    401: "Missing or invalid API key.",
    404: "No such webhook or delivery.",
    408: "The request body was not fully sent within server.body_timeout.",
    409: "The delivery is still pending or retrying.",
    413: "The request body exceeds server.max_body_bytes.",
    422: "The payload is invalid; `problems` lists every problem.",
    503: "The bus queue is full, the event stream refused the event, or the service is stopping.",
}


def _errors(*codes: int) -> dict[str, Any]:
    """References to the shared error responses (401 always), plus a default."""
    responses: dict[str, Any] = {
        str(code): {"$ref": f"#/components/responses/E{code}"} for code in (401, *codes)
    }
    responses["default"] = _json(_ref("Problem"), "Unexpected error (no details are exposed).")
    return responses


def _op(
    summary: str,
    op_id: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    body_required: bool = True,
    params: list[dict[str, Any]] | None = None,
    auth: bool = True,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": op_id,
        "security": _AUTH if auth else [],
        "responses": responses,
    }
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": body}},
        }
    return operation


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _STR}


_PATTERN_Q = _query("pattern", "Event type or pattern (`memory.*`, `>`).", PATTERN_SCHEMA)
_TYPE_Q = _query("type", "Same as `pattern`.", PATTERN_SCHEMA)


def _limit_q(low: int, high: int, default: int) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": low, "maximum": high, "default": default}
    return _query("limit", "How many to return.", schema)


_WH = [_path_param("webhook_id")]
_DL = [_path_param("delivery_id")]


def _paths() -> dict[str, Any]:
    ok = _json
    return {
        "/events": {
            "post": _op(
                "Publish one event or a batch",
                "publishEvents",
                {"202": ok(_ref("Published"), "Accepted; delivered asynchronously.")}
                | _errors(400, 408, 413, 422, 503),
                body={
                    "oneOf": [
                        _ref("EventIn"),
                        _ref("EventBatchIn"),
                        {"type": "array", "items": _ref("EventIn"), "minItems": 1},
                    ]
                },
            ),
            "get": _op(
                "Recent events, oldest first",
                "listEvents",
                {"200": ok(_ref("EventList"), "The events.")} | _errors(400),
                params=[_TYPE_Q, _PATTERN_Q, _limit_q(0, 10_000, 50)],
            ),
        },
        "/events/stream": {
            "get": _op(
                "Live stream of events as server-sent events",
                "streamEvents",
                {
                    "200": {
                        "description": "`text/event-stream`: each message has `id` (the event id; "
                        "`<event id>@<stream sequence>` on a JetStream transport), "
                        "`event` (type) and `data` (the event JSON); the first has `retry`. "
                        "A client that falls `server.stream_queue_size` events behind gets "
                        "`event: mnemo:resume` and is disconnected; `mnemo:gap` says a "
                        "`Last-Event-ID` is no longer in the history (on JetStream: how many "
                        "events the stream's limits dropped).",
                        "content": {"text/event-stream": {"schema": _STR}},
                    }
                }
                | _errors(400),
                params=[
                    _PATTERN_Q,
                    _TYPE_Q,
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": "Resume after this event: the matching events "
                        "published since are replayed first, from the history (on a JetStream "
                        "transport, from the stream itself, across service restarts).",
                        "schema": {"type": "string", "maxLength": 200, "pattern": "^[ -~]*$"},
                    },
                ],
            )
        },
        "/webhooks": {
            "post": _op(
                "Register a webhook (the response shows its secret, once)",
                "registerWebhook",
                {"201": ok(_ref("Webhook"), "Registered.")} | _errors(400, 408, 413, 422),
                body=_ref("WebhookIn"),
            ),
            "get": _op(
                "List webhooks",
                "listWebhooks",
                {"200": ok(_ref("WebhookList"), "The webhooks, secrets masked.")} | _errors(400),
                params=[_query("enabled_only", "Only enabled webhooks.", {"type": "boolean"})],
            ),
        },
        "/webhooks/{webhook_id}": {
            "parameters": _WH,
            "get": _op(
                "A webhook and its status",
                "getWebhook",
                {"200": ok(_ref("Webhook"), "The webhook.")} | _errors(404),
            ),
            "patch": _op(
                "Update a webhook",
                "updateWebhook",
                {"200": ok(_ref("Webhook"), "Updated.")} | _errors(400, 404, 408, 413, 422),
                body=_ref("WebhookPatch"),
            ),
            "delete": _op(
                "Delete a webhook",
                "deleteWebhook",
                {"204": {"description": "Deleted."}} | _errors(404),
            ),
        },
        "/webhooks/{webhook_id}/rotate-secret": {
            "parameters": _WH,
            "post": _op(
                "Rotate the secret, keeping the old one valid for a grace period",
                "rotateSecret",
                {"200": ok(_ref("Webhook"), "Rotated; the new secret is shown once.")}
                | _errors(400, 404, 408, 413, 422),
                body=_ref("RotateSecretIn"),
                body_required=False,
            ),
        },
        "/webhooks/{webhook_id}/test": {
            "parameters": _WH,
            "post": _op(
                "Send a signed sample event of a chosen type to this webhook only",
                "testWebhook",
                {"202": ok(_OBJ, "Queued; `delivery_id` names the delivery.")}
                | _errors(400, 404, 409, 422),
                body={
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"event_type": _STR, "data": _OBJ},
                },
            ),
        },
        "/webhooks/{webhook_id}/deliveries": {
            "parameters": _WH,
            "get": _op(
                "A webhook's deliveries, newest first",
                "listDeliveries",
                {"200": ok(_ref("DeliveryList"), "The deliveries.")} | _errors(400, 404),
                params=[
                    _query(
                        "status",
                        "Only this status.",
                        {"type": "string", "enum": ["pending", "retrying", "success", "failed"]},
                    ),
                    _limit_q(1, 10_000, 100),
                ],
            ),
        },
        "/webhooks/{webhook_id}/replay-failed": {
            "parameters": _WH,
            "post": _op(
                "Send every failed delivery again",
                "replayFailed",
                {
                    "202": ok(
                        {"type": "object", "properties": {"replayed": {"type": "integer"}}},
                        "Queued.",
                    )
                }
                | _errors(404),
            ),
        },
        "/deliveries/{delivery_id}": {
            "parameters": _DL,
            "get": _op(
                "A delivery with its attempts",
                "getDelivery",
                {"200": ok(_ref("Delivery"), "The delivery.")} | _errors(404),
            ),
        },
        "/deliveries/{delivery_id}/redeliver": {
            "parameters": _DL,
            "post": _op(
                "Send a finished delivery again",
                "redeliver",
                {
                    "202": ok(
                        {"type": "object", "properties": {"delivery_id": _STR, "status": _STR}},
                        "Queued.",
                    )
                }
                | _errors(404, 409),
            ),
        },
        "/metrics": {
            "get": _op(
                "Prometheus text (OpenMetrics on request), or JSON with `Accept: application/json`",
                "getMetrics",
                {
                    "200": {
                        "description": "The metrics.",
                        "content": {
                            "application/json": {"schema": _ref("Metrics")},
                            "text/plain": {"schema": _STR},
                        },
                    }
                }
                | _errors(),
            ),
        },
        "/healthz": {
            "get": _op(
                "Liveness (no API key needed)",
                "healthz",
                {"200": ok(_ref("Health"), "Running."), "503": ok(_ref("Health"), "Not running.")},
                auth=False,
            ),
        },
        "/openapi.json": {
            "get": _op(
                "This document", "openapi", {"200": ok(_OBJ, "OpenAPI 3.1 document.")} | _errors()
            ),
        },
    }


def service_openapi() -> dict[str, Any]:
    """The webhook document of :func:`~mnemo_events.schemas.export_openapi_spec` extended
    with the service's paths, request and response schemas and its bearer-key security."""
    doc = copy.deepcopy(export_openapi_spec(title="mnemo-events"))
    doc["info"]["description"] = (
        "The mnemo-events service: publish and stream events, manage webhooks, read metrics. "
        "`webhooks` describes what each registered endpoint receives. "
        + doc["info"].get("description", "")
    )
    doc["paths"] = _paths() | openapi_paths()  # the dashboard's pages and files
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {}).update(service_schemas())
    components["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer", "description": "server.api_key"}
    }
    components["responses"] = {
        f"E{code}": _json(_ref("Problem"), text) for code, text in _ERROR_TEXT.items()
    }
    return doc


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this service."""
    service = request.app[SERVICE]
    if service.openapi is None:
        service.openapi = service_openapi()
    return web.json_response(service.openapi)


def query_parameters() -> dict[tuple[str, str], frozenset[str]]:
    """The query parameters each operation documents, by (METHOD, path template)."""
    table: dict[tuple[str, str], frozenset[str]] = {}
    for path, item in _paths().items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            names = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "query"}
            table[method.upper(), path] = frozenset(names)
    return table
