"""A webhook as two KV documents: its definition, which holds no secret value, and its
secrets (the signing secret, the previous secrets of a rotation, the inline credential
header values), stored in separate buckets by the KV registry.

Both come from the file registry's stored form (:func:`webhook_to_json`), so a webhook read
back from KV passes the same checks as one read from ``webhooks.json``.
"""

from __future__ import annotations

from typing import Any

from mnemo_events.webhooks._registry import webhook_from_json, webhook_to_json
from mnemo_events.webhooks.models import Webhook, is_credential_header

__all__ = ["join_webhook", "split_webhook"]


def split_webhook(webhook: Webhook, now: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The definition (no secret value in it) and the secrets of a webhook.

    Expired rotation secrets are dropped, as the file registry does.
    """
    full = webhook_to_json(webhook, now=now)
    headers: dict[str, str] = full.pop("headers")
    previous: list[dict[str, Any]] = full.pop("previous_secrets")
    secret_part = {
        "secret": full.pop("secret"),
        "previous": [old["secret"] for old in previous],
        "headers": {k: v for k, v in headers.items() if is_credential_header(k)},
    }
    full["header_names"] = list(headers)
    full["headers"] = {k: v for k, v in headers.items() if not is_credential_header(k)}
    full["previous_secrets"] = [
        {"secret_ref": old["secret_ref"], "expires_at": old["expires_at"]} for old in previous
    ]
    return full, secret_part


def join_webhook(definition: dict[str, Any], secret_part: dict[str, Any]) -> Webhook:
    """The webhook of a definition and its secrets (the inverse of :func:`split_webhook`).

    Raises:
        ValueError: a field is missing or malformed.
    """
    try:
        values = dict(secret_part.get("headers") or {}) | dict(definition.get("headers") or {})
        names = definition.get("header_names") or list(values)
        old_values = list(secret_part.get("previous") or [])
        old_meta = list(definition.get("previous_secrets") or [])
        if len(old_values) != len(old_meta):
            raise ValueError("the secrets do not match the definition's rotation")
        raw = {
            key: value
            for key, value in definition.items()
            if key not in ("header_names", "secrets_version", "write_id")
        }
        raw["headers"] = {name: values[name] for name in names}
        raw["secret"] = secret_part.get("secret")
        raw["previous_secrets"] = [
            {"secret": value, **meta} for value, meta in zip(old_values, old_meta, strict=True)
        ]
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"malformed entry ({type(err).__name__}: {err})") from None
    return webhook_from_json(raw)
