"""Checks on what a caller registers: patterns, headers, secrets, retry settings.

Each function returns the normalised value or raises :class:`WebhookConfigError` naming the
field and the bad value. The URL and its address policy live in :mod:`ssrf`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, cast

from pydantic import ValidationError
from yarl import URL

from mnemo_events._frozen import FrozenDict
from mnemo_events.config import RetryConfig
from mnemo_events.exceptions import InvalidPatternError, WebhookConfigError
from mnemo_events.patterns import parse_pattern
from mnemo_events.webhooks._secret_refs import is_reference
from mnemo_events.webhooks._sender import RESERVED_HEADERS
from mnemo_events.webhooks.models import SignatureScheme, Webhook, unencodable
from mnemo_events.webhooks.signature import standard_key

__all__ = [
    "UPDATABLE_FIELDS",
    "validate_changes",
    "validate_credentials",
    "validate_description",
    "validate_events",
    "validate_headers",
    "validate_retry_config",
    "validate_scheme",
    "validate_secret",
    "validate_unicode",
]

UPDATABLE_FIELDS = frozenset(
    {
        "url",
        "events",
        "secret",
        "secret_ref",
        "headers",
        "enabled",
        "retry_config",
        "signature_scheme",
        "description",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCHEMES = ("mnemocore", "standard", "both")


def validate_events(events: Iterable[str] | str) -> tuple[str, ...]:
    """The subscription patterns, parsed with the bus's wildcard rules."""
    if isinstance(events, str):
        raise WebhookConfigError(
            f"events must be a list of patterns, not the string {events!r} (try [{events!r}])"
        )
    patterns = tuple(events)
    if not patterns:
        raise WebhookConfigError("events must name at least one pattern (e.g. ['memory.*'])")
    for index, pattern in enumerate(patterns):
        try:
            parse_pattern(pattern)
        except InvalidPatternError as err:
            raise WebhookConfigError(f"events[{index}]: {err}") from err
    return tuple(dict.fromkeys(patterns))


def validate_headers(headers: Mapping[str, str] | None) -> FrozenDict:
    """Custom headers: valid names, single-line values, none that the sender sets itself."""
    if headers is None:
        return FrozenDict()
    if not isinstance(headers, Mapping):
        raise WebhookConfigError(f"headers must be a mapping, not {type(headers).__name__}")
    clean: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise WebhookConfigError(f"header name {name!r} is not a valid HTTP header name")
        if name.lower() in RESERVED_HEADERS:
            raise WebhookConfigError(
                f"header {name!r} is set by the webhook sender and cannot be overridden"
            )
        if not isinstance(value, str) or any(ch in value for ch in "\r\n\0"):
            # The value is not echoed: it may be a credential.
            raise WebhookConfigError(
                f"header {name!r} must have a single-line string value "
                f"(got {type(value).__name__}, value not shown)"
            )
        if name.lower() in (key.lower() for key in clean):
            raise WebhookConfigError(f"header {name!r} is given twice (names are case-blind)")
        clean[name] = value
    return FrozenDict(clean)


def validate_unicode(fields: Mapping[str, Any]) -> None:
    """Every string given (url, events, headers, description, secrets) is valid Unicode.

    A lone surrogate (``"\\ud800"``) cannot be written as UTF-8: taken in, it would make every
    later save of the webhook file fail. The value is not echoed (it may be a secret).
    """
    where = unencodable(dict(fields))
    if where is not None:
        raise WebhookConfigError(
            f"{where}: not valid Unicode (it holds a lone surrogate such as '\\ud800'); "
            "send UTF-8 text"
        )


def validate_description(description: Any) -> str | None:
    """A free-text description: a string or ``None``."""
    if description is not None and not isinstance(description, str):
        raise WebhookConfigError(
            f"description must be a string or None, not {type(description).__name__}"
        )
    return description


def validate_credentials(url: str, headers: Mapping[str, str]) -> None:
    """A URL with credentials (``https://user:pass@host``) and an ``Authorization`` header
    together are refused: the request could carry only one of them."""
    if any(name.lower() == "authorization" for name in headers) and "@" in url:
        try:
            has_userinfo = URL(url).raw_user is not None
        except (ValueError, TypeError):
            has_userinfo = False
        if has_userinfo:
            raise WebhookConfigError(
                "webhook url has credentials (user:password@) and an Authorization header is "
                "given too: a request can carry only one; keep one of them"
            )


def validate_scheme(scheme: str) -> SignatureScheme:
    """The signature scheme: ``mnemocore`` (default), ``standard`` or ``both``."""
    if scheme not in _SCHEMES:
        raise WebhookConfigError(
            f"signature_scheme must be one of {', '.join(_SCHEMES)}, got {scheme!r}"
        )
    return cast(SignatureScheme, scheme)


def validate_secret(
    secret: str | None,
    secret_ref: str | None,
    scheme: SignatureScheme,
    *,
    field: str = "secret",
    custom_resolver: bool = False,
) -> None:
    """A secret given inline or as ``env:NAME`` (set now), fit for the signature scheme.

    MnemoCore's forms pass too, resolved only at send time: a bare environment variable name,
    and (with a ``secret_resolver`` injected) any ``scheme://`` reference.
    """
    if (
        isinstance(secret_ref, str)
        and not secret_ref.startswith("env:")
        and secret is None
        and (
            _ENV_NAME.fullmatch(secret_ref)
            or (custom_resolver and is_reference(secret_ref, custom_resolver=True))
        )
    ):
        return  # MnemoCore's forms: resolved at send time, not now
    if secret is not None and secret_ref is not None:
        raise WebhookConfigError(f"give either {field} or {field}_ref, not both")
    value = secret
    if secret is not None and (not isinstance(secret, str) or not secret.strip()):
        raise WebhookConfigError(f"{field} must be a non-empty string")
    if secret_ref is not None:
        name = secret_ref[4:] if isinstance(secret_ref, str) else ""
        if (
            not isinstance(secret_ref, str)
            or not secret_ref.startswith("env:")
            or not (_ENV_NAME.fullmatch(name))
        ):
            raise WebhookConfigError(
                f"{field}_ref must look like 'env:NAME' or NAME (an environment variable), "
                f"or be a reference an injected secret_resolver reads, got {secret_ref!r}"
            )
        value = os.environ.get(name)
        if not value:
            raise WebhookConfigError(
                f"{field}_ref {secret_ref!r}: the environment variable {name} is not set"
            )
    if value is not None and scheme != "mnemocore":
        standard_key(value)


def validate_changes(
    current: Webhook, fields: Mapping[str, Any], *, custom_resolver: bool = False
) -> dict[str, Any]:
    """The normalised changes of an ``update_webhook`` call (all but ``url``, which needs the
    asynchronous SSRF check), with the resulting secret checked against the scheme.

    ``enabled=True`` clears ``disabled_reason``; ``enabled=False`` sets it to "disabled by
    update".
    """
    unknown = set(fields) - UPDATABLE_FIELDS
    if unknown:
        raise WebhookConfigError(
            f"cannot update {sorted(unknown)}; updatable fields: {sorted(UPDATABLE_FIELDS)}"
        )
    validate_unicode(fields)
    changes: dict[str, Any] = {}
    if "events" in fields:
        changes["events"] = validate_events(fields["events"])
    if "headers" in fields:
        changes["headers"] = validate_headers(fields["headers"])
    if "retry_config" in fields:
        changes["retry_config"] = validate_retry_config(fields["retry_config"])
    if "signature_scheme" in fields:
        changes["signature_scheme"] = validate_scheme(fields["signature_scheme"])
    if "description" in fields:
        changes["description"] = validate_description(fields["description"])
    if "secret" in fields or "secret_ref" in fields:
        changes["secret"] = fields.get("secret")
        changes["secret_ref"] = fields.get("secret_ref")
        if changes["secret"] is None and changes["secret_ref"] is None:
            raise WebhookConfigError("secret: give a new secret or secret_ref to replace it")
    if "enabled" in fields:
        changes["enabled"] = bool(fields["enabled"])
        changes["disabled_reason"] = None if fields["enabled"] else "disabled by update"
    validate_secret(
        changes.get("secret", current.secret),
        changes.get("secret_ref", current.secret_ref),
        changes.get("signature_scheme", current.signature_scheme),
        custom_resolver=custom_resolver,
    )
    return changes


def validate_retry_config(retry_config: RetryConfig | Mapping[str, Any] | None) -> RetryConfig:
    """A :class:`RetryConfig`, from one or from a mapping of its fields."""
    if retry_config is None or isinstance(retry_config, RetryConfig):
        return retry_config or RetryConfig()
    try:
        return RetryConfig.model_validate(dict(retry_config))
    except (ValidationError, TypeError, ValueError) as err:
        raise WebhookConfigError(f"invalid retry_config: {err}") from err
