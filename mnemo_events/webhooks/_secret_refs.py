"""Secret references: what a ``secret_ref`` (or a credential header given as one) may say,
how it is resolved at send time, and which headers count as credentials.

Three forms of reference, all resolved only when an attempt is signed, never stored resolved:

- ``env:NAME``: the environment variable ``NAME`` (mnemo-events' own form);
- ``NAME``: a bare environment variable name (MnemoCore's form);
- anything else (``vault://hooks/a``) is handed to the manager's ``secret_resolver``; without
  one it is refused at registration.

A resolver is a plain callable ``resolver(ref) -> str`` (MnemoCore's
``WebhookSecretResolver``). Whatever it raises is counted and logged by type only: its
message may carry the secret or a backend's internals.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Protocol

from yarl import URL

from mnemo_events._log import logger
from mnemo_events.exceptions import WebhookConfigError

__all__ = [
    "UNAVAILABLE",
    "WebhookSecretResolver",
    "is_credential_header",
    "is_reference",
    "refuse_url_credentials",
    "resolve_header_refs",
    "resolve_ref",
    "resolve_webhook_secret_from_environment",
]

_log = logger("webhooks")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URI_REF = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")
_CREDENTIAL_NAMES = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)
_CREDENTIAL_WORDS = ("token", "secret", "password", "passwd", "apikey", "api-key", "auth")
UNAVAILABLE = "Webhook signing secret unavailable"
"""The one message a delivery records when a reference cannot be resolved."""


class WebhookSecretResolver(Protocol):
    """Resolves an opaque secret reference (``vault://...``) to the secret, at send time."""

    def __call__(self, secret_ref: str) -> str:
        """The secret named by ``secret_ref``; raise anything when it is unavailable."""
        ...


def resolve_webhook_secret_from_environment(secret_ref: str) -> str:
    """The default resolver: ``env:NAME`` or a bare ``NAME``, read from the environment.

    Raises:
        LookupError: the variable is unset or empty, or the reference is not an env name.
    """
    name = secret_ref[4:] if secret_ref.startswith("env:") else secret_ref
    value = os.environ.get(name) if _ENV_NAME.fullmatch(name) else None
    if not value:
        raise LookupError("webhook signing secret is unavailable")
    return value


def is_reference(value: str, *, custom_resolver: bool) -> bool:
    """Whether ``value`` is a reference rather than a literal (for credential headers)."""
    if value.startswith("env:"):
        return bool(_ENV_NAME.fullmatch(value[4:]))
    return custom_resolver and bool(_URI_REF.fullmatch(value))


def is_credential_header(name: str) -> bool:
    """Whether a header name suggests it carries a credential (``Authorization``,
    ``Cookie``, ``X-API-Key``, ``X-Customer-Token``, ...)."""
    lowered = name.lower()
    return lowered in _CREDENTIAL_NAMES or any(word in lowered for word in _CREDENTIAL_WORDS)


def resolve_ref(ref: str, resolver: Callable[[str], str] | None, webhook_id: str) -> str | None:
    """Resolve one reference; ``None`` (logged by error type only) when it cannot be.

    ``env:`` references always read the environment; anything else goes to ``resolver``
    (the environment resolver when none was injected).
    """
    resolve = resolver or resolve_webhook_secret_from_environment
    if ref.startswith("env:"):
        resolve = resolve_webhook_secret_from_environment
    try:
        value = resolve(ref)
    except Exception as err:  # a resolver's message may hold the secret: log its type only
        _log.error("webhooks.secret_unavailable", webhook_id=webhook_id, error=type(err).__name__)
        return None
    if not isinstance(value, str) or not value:
        _log.error("webhooks.secret_unavailable", webhook_id=webhook_id, error="empty")
        return None
    return value


def resolve_header_refs(
    headers: dict[str, str],
    declared: Mapping[str, str],
    resolver: Callable[[str], str] | None,
    webhook_id: str,
) -> str | None:
    """Replace, in ``headers``, each credential header of ``declared`` given as a reference
    by its resolved value; the error to record when one cannot be resolved."""
    custom = resolver is not None
    for name, value in declared.items():
        if is_credential_header(name) and is_reference(value, custom_resolver=custom):
            resolved = resolve_ref(value, resolver, webhook_id)
            if resolved is None:
                return f"header {name}: {UNAVAILABLE.lower()}"
            headers[name] = resolved
    return None


def refuse_url_credentials(url: object) -> None:
    """Refuse a webhook URL carrying ``user:password@``: it would be stored and logged.

    Checked before any other URL check, so no later message can echo the password.

    Raises:
        WebhookConfigError: naming the host only.
    """
    if not isinstance(url, str):
        return
    try:
        parsed = URL(url.strip())
    except (ValueError, TypeError):
        return  # the URL checks that follow say what is wrong
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise WebhookConfigError(
            f"webhook url for host {parsed.raw_host!r} must not carry credentials "
            "(user:password@); send them in a credential header given as a secret reference"
        )
