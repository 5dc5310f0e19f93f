"""The request and response schemas of the service's OpenAPI document."""

from __future__ import annotations

from typing import Any

__all__ = ["EVENT_TYPE_SCHEMA", "PATTERN_SCHEMA", "service_schemas"]

_STR = {"type": "string"}
_SEGMENT = "[A-Za-z0-9_][A-Za-z0-9_-]*"
EVENT_TYPE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": f"^{_SEGMENT}(\\.{_SEGMENT})*$",
    "examples": ["memory.created"],
}
"""An event type, as :func:`mnemo_events.patterns.validate_event_type` accepts it."""
PATTERN_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": f"^(>|\\*\\*|({_SEGMENT}|\\*)(\\.({_SEGMENT}|\\*))*(\\.(>|\\*\\*))?)$",
    "examples": ["memory.*", ">"],
}
"""A subscription pattern, as :func:`mnemo_events.patterns.parse_pattern` accepts it."""
_OBJ = {"type": "object"}
_ISO = {"type": "string", "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def service_schemas() -> dict[str, Any]:
    """Request and response bodies of the service, for ``components.schemas``."""
    event_props = {
        "type": EVENT_TYPE_SCHEMA,
        "data": {
            "type": ["object", "null"],
            "description": "The payload, checked against the type's schema (null: {}).",
        },
        "metadata": {"type": ["object", "null"], "description": "Context such as agent_id."},
    }
    webhook_fields = {
        "url": {"type": "string", "format": "uri"},
        "events": {
            "type": "array",
            "items": PATTERN_SCHEMA,
            "minItems": 1,
            "examples": [["memory.*"]],
        },
        "secret": {"type": ["string", "null"]},
        "secret_ref": {"type": ["string", "null"], "description": "`env:NAME`"},
        "headers": {"type": ["object", "null"], "additionalProperties": _STR},
        "enabled": {"type": "boolean"},
        "retry_config": {"type": ["object", "null"]},
        "signature_scheme": {"type": "string", "enum": ["mnemocore", "standard", "both"]},
        "description": {"type": ["string", "null"]},
    }
    return {
        "Problem": {
            "type": "object",
            "required": ["error", "status", "detail", "problems"],
            "properties": {
                "error": _STR,
                "status": {"type": "integer"},
                "detail": _STR,
                "problems": {"type": "array", "items": _STR},
            },
        },
        "EventIn": {
            "type": "object",
            "required": ["type"],
            "additionalProperties": False,
            "properties": event_props,
        },
        "EventBatchIn": {
            "type": "object",
            "required": ["events"],
            "additionalProperties": False,
            "properties": {"events": {"type": "array", "items": _ref("EventIn"), "minItems": 1}},
        },
        "Event": {
            "type": "object",
            "required": ["id", "type", "data", "metadata", "published_at"],
            "properties": {
                "id": _STR,
                **event_props,
                "data": _OBJ,
                "metadata": _OBJ,
                "published_at": _ISO,
            },
        },
        "EventList": {
            "type": "object",
            "properties": {
                "count": {"type": "integer"},
                "events": {"type": "array", "items": _ref("Event")},
            },
        },
        "Published": {
            "type": "object",
            "properties": {
                "event": _ref("Event"),
                "count": {"type": "integer"},
                "events": {"type": "array", "items": _ref("Event")},
                "warnings": {"type": "array", "items": _STR},
            },
        },
        "WebhookIn": {
            "type": "object",
            "required": ["url", "events"],
            "additionalProperties": False,
            "properties": webhook_fields,
        },
        "WebhookPatch": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": webhook_fields,
        },
        "Webhook": {
            "type": "object",
            "required": ["id", "url", "events", "enabled"],
            "properties": {
                "id": _STR,
                **webhook_fields,
                "disabled_reason": {"type": ["string", "null"]},
                "rotating_secrets": {"type": "integer"},
                "created_at": _ISO,
                "updated_at": _ISO,
                "status": _OBJ,
            },
        },
        "WebhookList": {
            "type": "object",
            "properties": {
                "count": {"type": "integer"},
                "webhooks": {"type": "array", "items": _ref("Webhook")},
            },
        },
        "RotateSecretIn": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "secret": {"type": ["string", "null"]},
                "secret_ref": {"type": ["string", "null"]},
                "grace_seconds": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 2_592_000,
                    "description": "Seconds the old secret still signs (default 86400, at most "
                    "30 days).",
                },
            },
        },
        "Delivery": {
            "type": "object",
            "required": ["id", "webhook_id", "event_id", "status", "attempts"],
            "properties": {
                "id": _STR,
                "webhook_id": _STR,
                "event_id": _STR,
                "event_type": _STR,
                "status": {"type": "string", "enum": ["pending", "retrying", "success", "failed"]},
                "attempts": {"type": "integer"},
                "attempt_log": {"type": "array", "items": _OBJ},
            },
        },
        "DeliveryList": {
            "type": "object",
            "properties": {
                "count": {"type": "integer"},
                "deliveries": {"type": "array", "items": _ref("Delivery")},
            },
        },
        "Metrics": {
            "type": "object",
            "properties": {"bus": _OBJ, "webhooks": _OBJ, "server": _OBJ},
        },
        "Health": {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "bus": _STR,
                "transport": {
                    "type": "object",
                    "description": "The bus transport and its connection state.",
                    "properties": {"name": _STR, "state": _STR},
                },
                "webhooks": _STR,
            },
        },
    }
