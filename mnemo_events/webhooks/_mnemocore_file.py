"""Reading MnemoCore's ``webhooks.json`` (its version ``"2.0"`` format), once.

A MnemoCore file loads as our webhooks: ``events: []`` (every event) becomes ``[">"]``, its
``secret_ref`` (a bare environment variable name or a resolver reference) is kept as is and
resolved at send time, ``retry_config`` maps field for field. The first save writes our
format; the original is kept beside it first (``webhooks.json.mnemocore-2.0``), never
overwritten. Like MnemoCore, a credential header stored in plaintext is refused.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mnemo_events._frozen import FrozenDict
from mnemo_events._log import logger
from mnemo_events.config import RetryConfig
from mnemo_events.exceptions import (
    InvalidPatternError,
    SensitiveWebhookHeaderError,
    WebhookPersistenceError,
)
from mnemo_events.patterns import parse_pattern
from mnemo_events.webhooks._secret_refs import is_credential_header, is_reference
from mnemo_events.webhooks.models import Webhook

__all__ = ["is_mnemocore_document", "keep_original", "load_mnemocore", "original_kept_as"]

_VERSION = "2.0"
_SUFFIX = ".mnemocore-2.0"
_log = logger("webhooks.registry")


def is_mnemocore_document(raw: Any) -> bool:
    """Whether a parsed webhook file is MnemoCore's version 2.0 format (not ours)."""
    return isinstance(raw, dict) and raw.get("version") == _VERSION and "format" not in raw


def _when(value: Any) -> datetime:
    if not isinstance(value, str):
        return datetime.now(UTC)
    stamp = datetime.fromisoformat(value)
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _webhook(entry: Any) -> Webhook:
    if not isinstance(entry, dict):
        raise ValueError(f"an entry must be an object, not {type(entry).__name__}")
    for key in ("id", "url"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ValueError(f"{key!r} must be a non-empty string")
    events = entry.get("events") or [">"]
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise ValueError("'events' must be a list of strings")
    for pattern in events:
        parse_pattern(pattern)
    headers = entry.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ValueError("'headers' must map strings to strings")
    for name, value in headers.items():
        if is_credential_header(name) and not is_reference(value, custom_resolver=False):
            raise SensitiveWebhookHeaderError(
                f"header {name!r} of webhook {entry['id']!r} holds a credential in plaintext"
            )
    secret = entry.get("secret") or None
    secret_ref = entry.get("secret_ref") or None
    if secret is None and secret_ref is None:
        raise ValueError("needs a 'secret_ref' (or a 'secret')")
    return Webhook(
        id=entry["id"],
        url=entry["url"],
        events=tuple(dict.fromkeys(events)),
        secret=secret,
        secret_ref=None if secret is not None else secret_ref,
        headers=FrozenDict(headers),
        enabled=bool(entry.get("enabled", True)),
        retry_config=RetryConfig.model_validate(entry.get("retry_config") or {}),
        created_at=_when(entry.get("created_at")),
        updated_at=_when(entry.get("updated_at")),
    )


def load_mnemocore(raw: dict[str, Any], path: Path) -> dict[str, Webhook]:
    """The webhooks of a MnemoCore 2.0 document read from ``path``.

    Raises:
        SensitiveWebhookHeaderError: a credential header is stored in plaintext.
        WebhookPersistenceError: the document is malformed (naming the entry and why).
    """
    fix = "it was left untouched; fix it or move it away"
    entries = raw.get("webhooks")
    if not isinstance(entries, list):
        raise WebhookPersistenceError(
            f"the MnemoCore webhook file {path} does not hold a 'webhooks' list; {fix}"
        )
    webhooks: dict[str, Webhook] = {}
    for index, entry in enumerate(entries):
        try:
            webhook = _webhook(entry)
        except SensitiveWebhookHeaderError as err:
            raise SensitiveWebhookHeaderError(f"the MnemoCore webhook file {path}: {err}") from None
        except (ValueError, TypeError, InvalidPatternError, ValidationError) as err:
            raise WebhookPersistenceError(
                f"the MnemoCore webhook file {path} has a bad entry webhooks[{index}]: {err}; {fix}"
            ) from None
        if webhook.id in webhooks:
            raise WebhookPersistenceError(
                f"the MnemoCore webhook file {path} holds the id {webhook.id!r} twice; {fix}"
            )
        webhooks[webhook.id] = webhook
    _log.info("webhooks.mnemocore_loaded", path=str(path), webhooks=len(webhooks))
    return webhooks


def original_kept_as(path: Path) -> Path:
    """Where the MnemoCore original of ``path`` is kept: the first free
    ``<name>.mnemocore-2.0[.N]`` beside it."""
    candidate = path.with_name(path.name + _SUFFIX)
    number = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}{_SUFFIX}.{number}")
        number += 1
    return candidate


def keep_original(path: Path) -> Path:
    """Copy the MnemoCore file at ``path`` beside it (before it is rewritten); the copy."""
    kept = original_kept_as(path)
    shutil.copy2(path, kept)
    _log.info("webhooks.mnemocore_migrated", path=str(path), original=str(kept))
    return kept
