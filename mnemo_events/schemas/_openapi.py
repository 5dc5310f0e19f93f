"""The OpenAPI 3.1 document of the webhooks: what a receiving endpoint is sent, per event type.

Each registered event type becomes a ``webhooks`` entry: a ``POST`` whose body is the
delivered envelope (``id``, ``type``, ``data``, ``metadata``, ``published_at``) with ``data``
referencing the type's payload schema under ``components.schemas``, and whose headers carry the
HMAC signature, the event type, the delivery id and the attempt number.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from mnemo_events.schemas._registry import SchemaRegistry, default_registry

__all__ = ["SIGNATURE_HEADER", "export_openapi_spec"]

SIGNATURE_HEADER = "X-MnemoCore-Signature"
"""The header carrying ``t=<unix>,v1=<hex>``."""

_SIGNATURE_DOC = (
    "HMAC-SHA256 signature of the delivery: `t=<unix seconds>,v1=<hex digest>`, the digest "
    'computed with the webhook secret (UTF-8 bytes) over `"{t}.{raw body}"`. While a secret is '
    "rotated several `v1=` entries may appear; accept the request if any matches. Verify against "
    "the raw body bytes, and refuse timestamps older than your tolerance (e.g. 300 s). Sent "
    "unless the webhook's `signature_scheme` is `standard`."
)
_STANDARD_DOC = (
    "Standard Webhooks signature, sent when the webhook's `signature_scheme` is `standard` or "
    "`both`: space-separated `v1,<base64>` entries, each an HMAC-SHA256 with the base64-decoded "
    'key after `whsec_` over `"{webhook-id}.{webhook-timestamp}.{raw body}"`.'
)
_B64 = "[A-Za-z0-9+/]+={0,2}"
_PARAMETERS: dict[str, dict[str, Any]] = {
    "Signature": {
        "name": SIGNATURE_HEADER,
        "in": "header",
        "required": False,
        "description": _SIGNATURE_DOC,
        "schema": {"type": "string", "pattern": "^t=[0-9]+(,v1=[0-9a-f]{64})+$"},
        "example": (
            "t=1709150400,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"
        ),
    },
    "Delivery": {
        "name": "X-MnemoCore-Delivery",
        "in": "header",
        "required": True,
        "description": "Id of the delivery, the same on every retry: deduplicate on it.",
        "schema": {"type": "string"},
    },
    "Attempt": {
        "name": "X-MnemoCore-Attempt",
        "in": "header",
        "required": True,
        "description": "Attempt number of this delivery, 1 for the first.",
        "schema": {"type": "integer", "minimum": 1},
    },
    "StandardId": {
        "name": "webhook-id",
        "in": "header",
        "required": False,
        "description": "Standard Webhooks message id: the delivery id (scheme `standard`/`both`).",
        "schema": {"type": "string"},
    },
    "StandardTimestamp": {
        "name": "webhook-timestamp",
        "in": "header",
        "required": False,
        "description": "Standard Webhooks timestamp, unix seconds (scheme `standard`/`both`).",
        "schema": {"type": "integer", "minimum": 0},
    },
    "StandardSignature": {
        "name": "webhook-signature",
        "in": "header",
        "required": False,
        "description": _STANDARD_DOC,
        "schema": {"type": "string", "pattern": f"^v1,{_B64}( v1,{_B64})*$"},
    },
}
_ENVELOPE_DOC = {
    "id": "Event id, `evt_` and 32 hex digits; the same for every endpoint and retry.",
    "metadata": "Context the publisher attached (agent id, trace ids, ...).",
    "published_at": "When the event was published (ISO 8601 with offset).",
}


def _component_name(event_type: str, taken: set[str]) -> str:
    base = "".join(part[:1].upper() + part[1:] for part in re.split(r"[._-]+", event_type))
    name, number = base, 2
    while name in taken:
        name, number = f"{base}{number}", number + 1
    taken.add(name)
    return name


def _relocate(node: Any, component: str, defs: Mapping[str, str]) -> Any:
    """Rewrite a schema's internal ``$ref``s to point into ``components.schemas``."""
    if isinstance(node, list):
        return [_relocate(item, component, defs) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith("#"):
            pointer = value[1:]
            if pointer.startswith("/$defs/"):
                name, _, rest = pointer[len("/$defs/") :].partition("/")
                out[key] = f"#/components/schemas/{defs[name]}" + (f"/{rest}" if rest else "")
            else:
                out[key] = f"#/components/schemas/{component}{pointer}"
        elif key not in ("$schema", "$defs"):
            out[key] = _relocate(value, component, defs)
    return out


def _add_schema(
    schemas: dict[str, Any], taken: set[str], component: str, schema: Mapping[str, Any]
) -> None:
    """Place a JSON Schema (and its ``$defs``, hoisted) under ``components.schemas``."""
    raw_defs: Mapping[str, Any] = schema.get("$defs", {})
    defs = {
        name: _component_name(f"{component}.{re.sub(r'[^A-Za-z0-9_-]', '_', name)}", taken)
        for name in raw_defs
    }
    schemas[component] = _relocate(schema, component, defs)
    for name, sub in raw_defs.items():
        schemas[defs[name]] = _relocate(sub, component, defs)


def _envelope(event_type: str, payload: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"The body POSTed to a webhook for a `{event_type}` event.",
        "required": ["id", "type", "data", "metadata", "published_at"],
        "properties": {
            "id": {"type": "string", "pattern": "^evt_", "description": _ENVELOPE_DOC["id"]},
            "type": {"type": "string", "const": event_type},
            "data": {"$ref": f"#/components/schemas/{payload}"},
            "metadata": {"type": "object", "description": _ENVELOPE_DOC["metadata"]},
            "published_at": {
                "type": "string",
                "format": "date-time",
                "description": _ENVELOPE_DOC["published_at"],
            },
        },
    }


def _webhook(event_type: str, envelope: str) -> dict[str, Any]:
    summary = f"A `{event_type}` event"
    parameters: list[dict[str, Any]] = [
        {"$ref": f"#/components/parameters/{name}"} for name in _PARAMETERS
    ]
    parameters.insert(
        1,
        {
            "name": "X-MnemoCore-Event",
            "in": "header",
            "required": True,
            "description": "The event type, also in the body's `type`.",
            "schema": {"type": "string", "const": event_type},
        },
    )
    return {
        "post": {
            "summary": summary,
            "operationId": f"on_{re.sub(r'[^A-Za-z0-9_]', '_', event_type)}",
            "parameters": parameters,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": envelope}}},
            },
            "responses": {
                "2XX": {"description": "Delivery acknowledged; nothing is retried."},
                "default": {
                    "description": "Any other status, a redirect or a timeout: the delivery is "
                    "retried with exponential backoff, then recorded as failed."
                },
            },
        }
    }


def export_openapi_spec(
    registry: SchemaRegistry | None = None,
    *,
    title: str = "mnemo-events webhooks",
    version: str | None = None,
) -> dict[str, Any]:
    """An OpenAPI 3.1 document describing every registered event type as a webhook.

    Args:
        registry: the registry to describe (default: the process-wide one).
        title: ``info.title``.
        version: ``info.version`` (default: the installed mnemo-events version).
    """
    from mnemo_events import __version__  # late: the package imports this module

    registry = registry if registry is not None else default_registry
    schemas: dict[str, Any] = {}
    webhooks: dict[str, Any] = {}
    taken: set[str] = set()
    for event_type in registry.event_types():
        payload = _component_name(event_type, taken)
        envelope = _component_name(f"{event_type}.event", taken)
        _add_schema(schemas, taken, payload, registry.json_schema(event_type))
        schemas[envelope] = _envelope(event_type, payload)
        webhooks[event_type] = _webhook(event_type, f"#/components/schemas/{envelope}")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version or __version__,
            "description": "Events a mnemo-events engine POSTs to registered webhooks, signed "
            f"with HMAC-SHA256 in the `{SIGNATURE_HEADER}` header.",
        },
        "webhooks": webhooks,
        "components": {"schemas": schemas, "parameters": copy.deepcopy(_PARAMETERS)},
    }
