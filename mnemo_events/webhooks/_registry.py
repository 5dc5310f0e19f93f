"""The registered webhooks, kept in memory and persisted to a JSON file.

Writes are atomic (a temporary file in the same directory, written, fsynced, renamed over the
old one, then the directory fsynced) and owner-only (mode 0600). Every change runs under one
lock and writes a snapshot taken under it, so concurrent registrations all land in the file.
A file that cannot be read or parsed (or holds a bad pattern, or a string that is not valid
Unicode) raises :class:`WebhookPersistenceError` naming it and the webhook, and is never
overwritten: the registry refuses to start from a corrupt file.

A save that fails, whatever the exception (disk full, a directory gone, an unencodable
string, a cancellation), undoes the change in memory too, so memory and file never disagree.
Its log line and error name the file and the problem, never the document or a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mnemo_events._frozen import FrozenDict
from mnemo_events._log import logger
from mnemo_events.config import RetryConfig
from mnemo_events.exceptions import (
    InvalidPatternError,
    WebhookConfigError,
    WebhookNotFoundError,
    WebhookPersistenceError,
)
from mnemo_events.patterns import parse_pattern
from mnemo_events.webhooks._mnemocore_file import (
    is_mnemocore_document,
    keep_original,
    load_mnemocore,
)
from mnemo_events.webhooks._validation import validate_credentials
from mnemo_events.webhooks.models import RetiredSecret, Webhook, unencodable

__all__ = [
    "FILE_FORMAT",
    "WebhookLookups",
    "WebhookRegistry",
    "webhook_from_json",
    "webhook_to_json",
]

FILE_FORMAT = "mnemo-events/webhooks"
_VERSION = 1
_log = logger("webhooks.registry")


def webhook_to_json(webhook: Webhook, *, now: float | None = None) -> dict[str, Any]:
    """The stored form of a webhook, secrets included (the file is owner-only)."""
    current = time.time() if now is None else now
    return {
        "id": webhook.id,
        "url": webhook.url,
        "events": list(webhook.events),
        "secret": webhook.secret,
        "secret_ref": webhook.secret_ref,
        "previous_secrets": [
            {"secret": old.secret, "secret_ref": old.secret_ref, "expires_at": old.expires_at}
            for old in webhook.previous_secrets
            if old.expires_at > current
        ],
        "headers": dict(webhook.headers),
        "enabled": webhook.enabled,
        "disabled_reason": webhook.disabled_reason,
        "retry_config": webhook.retry_config.model_dump(),
        "signature_scheme": webhook.signature_scheme,
        "description": webhook.description,
        "created_at": webhook.created_at.isoformat(),
        "updated_at": webhook.updated_at.isoformat(),
    }


def webhook_from_json(raw: Any) -> Webhook:
    """Rebuild a webhook from :func:`webhook_to_json` output.

    Raises:
        ValueError: a field is missing or malformed (the caller adds the file name).
    """
    if not isinstance(raw, dict):
        raise ValueError(f"a webhook entry must be an object, not {type(raw).__name__}")
    try:
        scheme = raw.get("signature_scheme", "mnemocore")
        if scheme not in ("mnemocore", "standard", "both"):
            raise ValueError(f"unknown signature_scheme {scheme!r}")
        events = raw["events"]
        headers = raw.get("headers") or {}
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise ValueError("events must be a list of strings")
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ValueError("headers must map strings to strings")
        for index, pattern in enumerate(events):
            try:
                parse_pattern(pattern)
            except InvalidPatternError as err:
                raise ValueError(f"events[{index}]: {err}") from None
        bad = unencodable(raw)
        if bad is not None:
            raise ValueError(f"{bad} is not valid Unicode (a lone surrogate)")
        try:
            validate_credentials(str(raw["url"]), headers)
        except WebhookConfigError as err:
            raise ValueError(str(err)) from None
        return Webhook(
            id=str(raw["id"]),
            url=str(raw["url"]),
            events=tuple(events),
            secret=raw.get("secret"),
            secret_ref=raw.get("secret_ref"),
            previous_secrets=tuple(
                RetiredSecret(old.get("secret"), old.get("secret_ref"), float(old["expires_at"]))
                for old in raw.get("previous_secrets") or []
            ),
            headers=FrozenDict(headers),
            enabled=bool(raw.get("enabled", True)),
            disabled_reason=raw.get("disabled_reason"),
            retry_config=RetryConfig.model_validate(raw.get("retry_config") or {}),
            signature_scheme=scheme,
            description=raw.get("description"),
            created_at=datetime.fromisoformat(raw["created_at"]),
            updated_at=datetime.fromisoformat(raw["updated_at"]),
        )
    except KeyError as err:
        raise ValueError(f"missing field {err.args[0]!r}") from None
    except (TypeError, AttributeError, ValidationError) as err:
        raise ValueError(str(err)) from None


def _load(path: Path) -> dict[str, Webhook]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as err:
        raise WebhookPersistenceError(f"cannot read the webhook file {path}: {err}") from err
    fix = "it was left untouched; fix it or move it away"
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise WebhookPersistenceError(
            f"the webhook file {path} is not valid JSON ({err}); {fix}"
        ) from err
    if is_mnemocore_document(raw):
        return load_mnemocore(raw, path)
    if not isinstance(raw, dict) or not isinstance(raw.get("webhooks"), list):
        raise WebhookPersistenceError(
            f"the webhook file {path} does not hold a 'webhooks' list; {fix}"
        )
    webhooks: dict[str, Webhook] = {}
    for index, entry in enumerate(raw["webhooks"]):
        try:
            webhook = webhook_from_json(entry)
        except ValueError as err:
            name = entry.get("id") if isinstance(entry, dict) else None
            which = f"webhooks[{index}]" + (f" (id {name!r})" if isinstance(name, str) else "")
            raise WebhookPersistenceError(
                f"the webhook file {path} has a bad entry {which}: {err}; {fix}"
            ) from None
        webhooks[webhook.id] = webhook
    return webhooks


def _stored_registry_id(path: Path) -> str | None:
    """The ``registry_id`` a webhook file carries (files written before it have none)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = raw.get("registry_id") if isinstance(raw, dict) else None
    return found if isinstance(found, str) and found.isascii() and found.isprintable() else None


def _encode(webhooks: list[Webhook], now: float, registry_id: str) -> bytes:
    document = {
        "format": FILE_FORMAT,
        "version": _VERSION,
        "registry_id": registry_id,
        "saved_at": datetime.now(UTC).isoformat(),
        "webhooks": [webhook_to_json(w, now=now) for w in webhooks],
    }
    return json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"


def _persist(
    path: Path, webhooks: list[Webhook], now: float, registry_id: str, *, keep_mnemocore: bool
) -> None:
    """Encode and write in one frame, so no caller's frame holds the encoded secrets.

    With ``keep_mnemocore`` the MnemoCore file being replaced is first kept beside it.
    """
    if keep_mnemocore:
        keep_original(path)
    _write_atomic(path, _encode(webhooks, now, registry_id))


def _secret_values(webhooks: list[Webhook]) -> list[str]:
    values = [w.secret for w in webhooks if w.secret]
    values += [old.secret for w in webhooks for old in w.previous_secrets if old.secret]
    values += [value for w in webhooks for value in w.headers.values() if value]
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def describe_failure(err: BaseException, webhooks: list[Webhook]) -> str:
    """What went wrong, for a log line or an error message: never the document or a secret.

    A ``UnicodeError`` carries the whole encoded document, so only its reason and position are
    kept; any other message is cut to 300 characters with every known secret masked.
    """
    if isinstance(err, UnicodeError):
        reason = getattr(err, "reason", "cannot encode")
        start = getattr(err, "start", None)
        where = "" if start is None else f" at position {start}"
        return f"{type(err).__name__}: {reason}{where}"
    text = str(err)
    for value in _secret_values(webhooks):
        text = text.replace(value, "****")
    text = text if len(text) <= 300 else text[:300] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _holds_mnemocore(path: Path) -> bool:
    try:
        return is_mnemocore_document(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return False


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class WebhookLookups:
    """Reads by id from a registry's webhooks (``_webhooks``), the same in every registry."""

    _webhooks: dict[str, Webhook]

    def get(self, webhook_id: str) -> Webhook:
        """The webhook with that id (secrets unmasked: internal use).

        Raises:
            WebhookNotFoundError: no such webhook.
        """
        try:
            return self._webhooks[webhook_id]
        except KeyError:
            raise WebhookNotFoundError(f"no webhook with id {webhook_id!r}") from None

    def find(self, webhook_id: str) -> Webhook | None:
        """The webhook with that id, or ``None``."""
        return self._webhooks.get(webhook_id)

    def __len__(self) -> int:
        return len(self._webhooks)


class WebhookRegistry(WebhookLookups):
    """Webhooks by id, persisted to ``path`` (``None``: memory only).

    Raises:
        WebhookPersistenceError: at construction, if the file exists but cannot be loaded.
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self._path = None if path is None else Path(path)
        self._webhooks: dict[str, Webhook] = {} if self._path is None else _load(self._path)
        self._mnemocore_original = self._path is not None and _holds_mnemocore(self._path)
        """The file is MnemoCore's: keep it beside ours before the first save rewrites it."""
        stored = None if self._path is None else _stored_registry_id(self._path)
        self._registry_id = stored or f"whr_{secrets.token_hex(12)}"
        self.registry_id_saved = stored is not None
        """Whether the file on disk carries :attr:`registry_id` (false until the first save
        of a new or older file): only then can a delivery store be bound to it."""
        self._lock = asyncio.Lock()
        self.version = 0
        """Bumped on every change, so readers can cache derived data."""

    @property
    def registry_id(self) -> str:
        """This registry's identity (``whr_...``), saved in its file: a delivery store records
        it and refuses to serve another registry."""
        return self._registry_id

    @property
    def path(self) -> Path | None:
        """The JSON file, or ``None``."""
        return self._path

    def all(self) -> list[Webhook]:
        """Every webhook, in registration order."""
        return list(self._webhooks.values())

    async def put(self, webhook: Webhook) -> None:
        """Add or replace a webhook and persist."""
        async with self._lock:
            before = dict(self._webhooks)
            self._webhooks[webhook.id] = webhook
            await self._save(before)

    async def change(self, webhook_id: str, update: Callable[[Webhook], Webhook]) -> Webhook:
        """Replace a webhook by ``update(current)`` and persist; the new webhook.

        ``update`` runs under the lock, so read-modify-write cycles do not interleave.

        Raises:
            WebhookNotFoundError: no such webhook.
        """
        async with self._lock:
            changed = update(self.get(webhook_id))
            before = dict(self._webhooks)
            self._webhooks[webhook_id] = changed
            await self._save(before)
            return changed

    async def remove(self, webhook_id: str) -> Webhook:
        """Remove a webhook and persist; the removed webhook.

        Raises:
            WebhookNotFoundError: no such webhook.
        """
        async with self._lock:
            removed = self.get(webhook_id)
            before = dict(self._webhooks)
            del self._webhooks[webhook_id]
            await self._save(before)
            return removed

    async def _save(self, before: dict[str, Webhook]) -> None:
        """Persist the current state; on any failure, restore ``before`` and raise.

        A cancellation waits for the write under way (milliseconds) before it is raised, so
        whether the change stays in memory follows whether it reached the file.
        """
        self.version += 1
        if self._path is None:
            return
        snapshot = list(self._webhooks.values())
        write = asyncio.ensure_future(
            asyncio.to_thread(
                _persist,
                self._path,
                snapshot,
                time.time(),
                self._registry_id,
                keep_mnemocore=self._mnemocore_original,
            )
        )
        cancelled = False
        while not write.done():
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                cancelled = True
            except Exception:  # read below from the finished future
                break
        failed = None if write.cancelled() else write.exception()
        if write.cancelled() or failed is not None:
            self._webhooks = before
            self.version += 1
            problem = "cancelled" if failed is None else describe_failure(failed, snapshot)
            _log.error("webhooks.persist_failed", path=str(self._path), error=problem)
            if cancelled:
                raise asyncio.CancelledError
            # Raised outside any except block, so the original error (whose frames hold the
            # encoded document) is neither chained nor rendered with this one.
            error = WebhookPersistenceError(
                f"cannot write the webhook file {self._path}: {problem}; the change was undone"
            )
            del failed, write, snapshot  # nor does this frame keep them for a renderer
            raise error
        self._mnemocore_original = False
        self.registry_id_saved = True
        if cancelled:
            raise asyncio.CancelledError
