"""The data of the webhook sender: webhooks, deliveries, attempts, statuses.

All frozen: a webhook is replaced, never mutated, so an attempt in flight keeps the
configuration it started with. A :class:`Webhook`'s ``repr`` and ``to_dict`` never show a
secret, nor a receiver credential (the value of an ``Authorization``, ``Cookie`` or
``*-Key``/``*-Token`` header, a URL password); only the object returned by
``register_webhook`` / ``rotate_secret`` carries the signing secret.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from yarl import URL

from mnemo_events._compat import MnemoCoreKeys
from mnemo_events._frozen import FrozenDict
from mnemo_events.config import RetryConfig
from mnemo_events.patterns import parse_pattern
from mnemo_events.webhooks.signature import mask_secret

__all__ = [
    "MASK",
    "Attempt",
    "Delivery",
    "DeliveryStatus",
    "RetiredSecret",
    "SignatureScheme",
    "Webhook",
    "WebhookStatus",
    "is_credential_header",
    "mask_headers",
    "mask_url",
    "resolve_secret",
    "unencodable",
]

SignatureScheme = Literal["mnemocore", "standard", "both"]
MASK = "****"
"""What a credential is shown as."""
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
_CREDENTIAL_SUFFIXES = ("-key", "-token", "-secret", "-password", "-auth")


def is_credential_header(name: str) -> bool:
    """Whether a custom header carries a credential: ``Authorization``, ``Cookie``, or a
    name ending in ``-Key``, ``-Token``, ``-Secret``, ``-Password`` or ``-Auth`` (any case)."""
    lowered = name.lower()
    return lowered in _CREDENTIAL_HEADERS or lowered.endswith(_CREDENTIAL_SUFFIXES)


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers with every credential value replaced by ``****``."""
    return {k: MASK if is_credential_header(k) else v for k, v in headers.items()}


def mask_url(url: str) -> str:
    """The URL with its password (``https://user:pass@host``) replaced by ``****``."""
    if "@" not in url:
        return url
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return MASK
    if parsed.raw_password is None:
        return url
    return str(parsed.with_password(MASK))


def unencodable(value: Any, where: str = "") -> str | None:
    """Where ``value`` (JSON-like: str, list, tuple, dict) holds a string that is not valid
    Unicode (a lone surrogate such as ``"\\ud800"``), as ``"description"`` or
    ``"headers['X-A']"``; ``None`` when every string encodes as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "the value"
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            key_text = key if isinstance(key, str) else repr(key)
            found = unencodable(key, f"{where} key" if where else "a key")
            if found is None:
                label = f"{where}[{key_text!r}]" if where else key_text
                found = unencodable(item, label)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = unencodable(item, f"{where}[{index}]")
            if found is not None:
                return found
    return None


class DeliveryStatus(StrEnum):
    """Where a delivery stands."""

    PENDING = "pending"
    """Recorded, no attempt finished yet."""
    RETRYING = "retrying"
    """At least one attempt failed; another is scheduled."""
    SUCCESS = "success"
    """An attempt got a 2xx."""
    FAILED = "failed"
    """Given up: attempts exhausted, 410 Gone, a refused address, or the webhook went away."""


def resolve_secret(secret: str | None, secret_ref: str | None) -> str | None:
    """The secret's value: inline, or read from the environment for ``env:NAME``."""
    if secret is not None:
        return secret
    if secret_ref is not None and secret_ref.startswith("env:"):
        return os.environ.get(secret_ref[4:]) or None
    return None


def _utc(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)


@dataclass(frozen=True, slots=True)
class RetiredSecret:
    """A secret being rolled out: still signed with until ``expires_at`` (unix seconds)."""

    secret: str | None
    secret_ref: str | None
    expires_at: float

    def __repr__(self) -> str:
        shown = mask_secret(self.secret) if self.secret is not None else self.secret_ref
        return f"RetiredSecret(secret={shown!r}, expires_at={_utc(self.expires_at).isoformat()})"


@dataclass(frozen=True, slots=True, eq=False)
class Webhook:
    """One registered endpoint and what it receives.

    ``secret`` is the inline secret, or ``None`` when ``secret_ref`` (``"env:NAME"``) names an
    environment variable holding it. Objects handed out by ``get_webhook``/``list_webhooks``
    carry a masked ``secret``.
    """

    id: str
    url: str
    events: tuple[str, ...]
    secret: str | None
    secret_ref: str | None = None
    headers: Mapping[str, str] = field(default_factory=FrozenDict)
    enabled: bool = True
    retry_config: RetryConfig = field(default_factory=RetryConfig)
    signature_scheme: SignatureScheme = "mnemocore"
    description: str | None = None
    disabled_reason: str | None = None
    previous_secrets: tuple[RetiredSecret, ...] = ()
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def matches(self, event_type: str) -> bool:
        """Whether an event type matches one of this webhook's patterns."""
        return any(parse_pattern(pattern).matches(event_type) for pattern in self.events)

    def matches_event(self, event_type: str) -> bool:
        """MnemoCore's name for :meth:`matches`."""
        return self.matches(event_type)

    def active_secrets(self, now: float) -> list[str]:
        """The secret values to sign with at ``now``: the current one, then unexpired old ones."""
        values = [resolve_secret(self.secret, self.secret_ref)]
        values += [
            resolve_secret(old.secret, old.secret_ref)
            for old in self.previous_secrets
            if old.expires_at > now
        ]
        return [value for value in values if value]

    def rotated(self, secret: str | None, secret_ref: str | None, expires_at: float) -> Webhook:
        """A copy with a new secret that keeps signing with the old one until ``expires_at``
        (not at all if that is already past); expired retired secrets are dropped."""
        now = time.time()
        keep = tuple(old for old in self.previous_secrets if old.expires_at > now)
        if expires_at > now:
            keep = (RetiredSecret(self.secret, self.secret_ref, expires_at), *keep)
        return dataclasses.replace(
            self,
            secret=secret,
            secret_ref=secret_ref,
            previous_secrets=keep,
            updated_at=datetime.now(UTC),
        )

    def disabled(self, reason: str) -> Webhook:
        """A disabled copy saying why."""
        return dataclasses.replace(
            self, enabled=False, disabled_reason=reason, updated_at=datetime.now(UTC)
        )

    def masked(self) -> Webhook:
        """A copy whose secrets and receiver credentials are masked, for listings."""
        return dataclasses.replace(
            self,
            url=mask_url(self.url),
            headers=FrozenDict(mask_headers(self.headers)),
            secret=mask_secret(self.secret),
            previous_secrets=tuple(
                dataclasses.replace(old, secret=mask_secret(old.secret))
                for old in self.previous_secrets
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with masked secrets and credentials (for APIs and the CLI)."""
        return {
            "id": self.id,
            "url": mask_url(self.url),
            "events": list(self.events),
            "secret": mask_secret(self.secret),
            "secret_ref": self.secret_ref,
            "headers": mask_headers(self.headers),
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "retry_config": self.retry_config.model_dump(),
            "signature_scheme": self.signature_scheme,
            "description": self.description,
            "rotating_secrets": len(self.previous_secrets),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    def __repr__(self) -> str:
        return (
            f"Webhook(id={self.id!r}, url={mask_url(self.url)!r}, events={list(self.events)!r}, "
            f"enabled={self.enabled!r}, secret={mask_secret(self.secret)!r}, "
            f"secret_ref={self.secret_ref!r}, signature_scheme={self.signature_scheme!r})"
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP attempt of a delivery."""

    number: int
    """1 for the first attempt; keeps counting across redeliveries."""
    started_at: datetime
    outcome: Literal["success", "retry", "failed"]
    status_code: int | None
    error: str | None
    latency_ms: float | None
    response_body: str | None
    """The start of the response body, up to the manager's ``response_body_limit``."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one webhook, across all its attempts and redeliveries."""

    id: str
    webhook_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: float | None
    last_response: str | None
    attempt_log: tuple[Attempt, ...] = ()
    """Filled by ``get_delivery``; empty in history listings."""

    @property
    def success(self) -> bool:
        """Whether the delivery reached its endpoint."""
        return self.status is DeliveryStatus.SUCCESS

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        raw = dataclasses.asdict(self)
        for key, value in raw.items():
            if isinstance(value, datetime):
                raw[key] = value.isoformat()
        raw["status"] = self.status.value
        raw["attempt_log"] = [
            {**dataclasses.asdict(a), "started_at": a.started_at.isoformat()}
            for a in self.attempt_log
        ]
        return raw


@dataclass(frozen=True, slots=True)
class WebhookStatus(MnemoCoreKeys):
    """The health of one webhook, from the delivery store.

    Also readable as a mapping with MnemoCore's keys (``status["total_deliveries"]``,
    ``"successful_deliveries"``, ``"failed_deliveries"``, ``"pending_deliveries"``,
    ``"success_rate"``: 0.0 before any finished) and those of :meth:`to_dict`.
    """

    webhook_id: str
    enabled: bool
    disabled_reason: str | None
    deliveries: Mapping[str, int]
    """Counts by status: ``pending``, ``retrying``, ``success``, ``failed``, ``total``."""
    success_rate: float | None
    """``success / (success + failed)``; ``None`` before any delivery finished."""
    consecutive_failures: int
    last_delivery_at: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        raw = dataclasses.asdict(self)
        for key, value in raw.items():
            if isinstance(value, datetime):
                raw[key] = value.isoformat()
        raw["deliveries"] = dict(self.deliveries)
        return raw

    def _mnemocore_items(self) -> dict[str, Any]:
        counts = self.deliveries
        return self.to_dict() | {
            "total_deliveries": counts.get("total", 0),
            "successful_deliveries": counts.get("success", 0),
            "failed_deliveries": counts.get("failed", 0),
            "pending_deliveries": counts.get("pending", 0) + counts.get("retrying", 0),
            "success_rate": self.success_rate or 0.0,
        }
