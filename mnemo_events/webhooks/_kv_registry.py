"""The registered webhooks shared by a group of processes, in JetStream KV buckets.

Same interface as :class:`~mnemo_events.webhooks._registry.WebhookRegistry`: reads are
synchronous, from a local mirror that a KV watcher keeps current; writes go to the server and
return once it stored them, after which the mirror already shows them.

**Two buckets.** ``<prefix>_webhooks`` holds the definitions (key ``w.<id>``: url, patterns,
non-credential headers, retry settings, enabled, secret references, rotation expiry times),
and ``meta.registry_id``. ``<prefix>_webhook_secrets`` holds every secret value: the signing
secret, the previous secrets kept during a rotation grace period and the inline credential
header values (key ``s.<id>.<version>``). NATS permissions can so give a reader of events and
definitions no access at all to secrets.

**Atomic changes.** A secrets entry is written once and never changed (a new version is a new
key); the definition names its version (``secrets_version``). A change writes the new secrets
entry (when the secrets changed), then the definition with compare-and-set on its revision
(``update(..., last=revision)``): that one write is the commit. A conflict (another process
changed the webhook first) re-reads the webhook and runs the change again on it, so no update
is lost; the unused secrets entry is purged. The mirror shows a webhook only once it holds the
secrets version its definition names, so no reader ever pairs a definition with the secrets
of another version. After a commit the replaced secrets entry is purged.

Costs (one round trip is about 0.3 ms on loopback): ``get``/``find``/``all`` none (memory);
``put``/``change`` 1 round trip (2 when the secrets change, plus one purge afterwards),
plus 2 gets per conflict; ``remove`` 1, plus one purge; ``open`` one watcher per bucket,
reading every key once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from mnemo_events._log import logger
from mnemo_events.exceptions import WebhookNotFoundError, WebhookPersistenceError
from mnemo_events.webhooks._kv_chains import TRANSIENT, retrying
from mnemo_events.webhooks._kv_common import (
    DEFAULT_PREFIX,
    Follower,
    bucket_names,
    key_token,
    open_bucket,
    token_value,
    wrong_last,
)
from mnemo_events.webhooks._kv_webhooks import join_webhook, split_webhook
from mnemo_events.webhooks._registry import WebhookLookups, describe_failure
from mnemo_events.webhooks.models import Webhook

__all__ = ["JetStreamWebhookRegistry", "Listener"]

Listener = Callable[[str, Webhook | None], None]
"""Told of every change of a webhook: its id and the new webhook, or ``None`` once deleted."""
_log = logger("webhooks.registry")
_MAX_CONFLICTS = 64
"""Compare-and-set retries of one change before it gives up (others kept changing it)."""
_MARKER_TTL = 3600
"""Seconds a purge marker of a replaced secrets entry lives (then no trace is left)."""
_REGISTRY_ID_KEY = "meta.registry_id"


class _Conflict(Exception):
    """A compare-and-set write found another revision, or its answer was lost (``lost``):
    re-read and try again."""

    def __init__(self, *, lost: bool = False) -> None:
        super().__init__("lost answer" if lost else "another revision")
        self.lost = lost


@dataclass(frozen=True, slots=True)
class _Definition:
    revision: int
    doc: dict[str, Any]


class JetStreamWebhookRegistry(WebhookLookups):
    """Webhooks by id in JetStream KV (see the module docstring); make one with :meth:`open`."""

    def __init__(self, js: JetStreamContext, definitions: KeyValue, secret_bucket: KeyValue):
        """Use :meth:`open`, which creates the buckets and loads the mirror."""
        self._js = js
        self._defs_kv = definitions
        self._secrets_kv = secret_bucket
        self._defs: dict[str, _Definition] = {}
        self._gone: dict[str, int] = {}
        """Revision of the delete marker of each deleted webhook seen."""
        self._secret_docs: dict[tuple[str, str], dict[str, Any]] = {}
        self._webhooks: dict[str, Webhook] = {}
        self._shown: dict[str, tuple[int, str]] = {}
        """(definition revision, secrets version) of each webhook shown."""
        self._listeners: list[tuple[Listener, bool]] = []
        self._own_writes: dict[str, bytes | None] = {}
        """The definition this registry is writing for a webhook (``None``: deleting), so
        the watcher, which may bring it before the server's acknowledgement, knows it."""
        self._lock = asyncio.Lock()
        self._write_timeout = 10.0
        self._followers: list[Follower] = []
        self._registry_id = ""
        self._closed = False
        self.registry_id_saved = True
        """Always true: the identity lives in the definitions bucket from :meth:`open` on."""
        self.version = 0
        """Bumped on every change seen, so readers can cache derived data."""
        self.bad_entries = 0
        """Entries of the buckets that could not be read (each logged)."""
        self.listener_errors = 0
        """Listener calls that raised (each logged)."""

    @classmethod
    async def open(
        cls, js: JetStreamContext, *, prefix: str = DEFAULT_PREFIX, write_timeout: float = 10.0
    ) -> JetStreamWebhookRegistry:
        """Open the registry of ``prefix`` on a JetStream context (buckets created if missing),
        with every stored webhook loaded and a watcher keeping the mirror current.

        ``write_timeout``: how long the read-back after a conflict or a lost answer is tried
        again while the server is away.

        Raises:
            ValueError: a bad prefix.
            nats.errors.Error: the server cannot be reached or refuses (permissions).
        """
        names = bucket_names(prefix)
        definitions = await open_bucket(js, names["webhooks"], "mnemo-events webhooks")
        secret_bucket = await open_bucket(js, names["secrets"], "mnemo-events webhook secrets")
        registry = cls(js, definitions, secret_bucket)
        registry._write_timeout = write_timeout
        try:
            await registry._start()
        except BaseException:
            await registry.close()
            raise
        return registry

    async def _start(self) -> None:
        fresh = f"whr_{secrets.token_hex(12)}"
        try:
            await self._defs_kv.create(_REGISTRY_ID_KEY, fresh.encode())
            self._registry_id = fresh
        except KeyWrongLastSequenceError:  # made before (maybe right now by another process)
            entry = await self._defs_kv.get(_REGISTRY_ID_KEY)
            self._registry_id = (entry.value or b"").decode("ascii", "replace")
        for kv, handle in ((self._secrets_kv, self._seen_secret), (self._defs_kv, self._seen_def)):
            follower = Follower(kv, self._guard(kv, handle))
            self._followers.append(follower)
            await follower.start()
        loaded = [follower.ready for follower in self._followers]
        await asyncio.gather(*loaded)
        for webhook_id, definition in self._defs.items():
            if webhook_id not in self._webhooks:
                self.bad_entries += 1
                _log.error(
                    "webhooks.kv_secrets_missing",
                    bucket=self._secrets_kv._name,
                    webhook_id=webhook_id,
                    secrets_version=definition.doc.get("secrets_version"),
                )

    async def close(self) -> None:
        """Stop the watchers (the connection is the caller's). Reads still answer from the
        mirror as it was; writes are refused."""
        self._closed = True
        for follower in self._followers:
            await follower.stop()
        self._followers.clear()

    # -- reads -------------------------------------------------------------------------------

    @property
    def registry_id(self) -> str:
        """The registry's identity (``whr_...``), kept in the definitions bucket: every
        process on the same buckets has the same one."""
        return self._registry_id

    @property
    def path(self) -> None:
        """Always ``None``: there is no file."""
        return None

    @property
    def buckets(self) -> tuple[str, str]:
        """The names of the definitions bucket and of the secrets bucket."""
        return (self._defs_kv._name, self._secrets_kv._name)

    def all(self) -> list[Webhook]:
        """Every webhook, in registration order (``created_at``, then id)."""
        return sorted(self._webhooks.values(), key=lambda w: (w.created_at, w.id))

    def listen(self, callback: Listener, *, include_own: bool = False) -> Callable[[], None]:
        """Call ``callback(webhook_id, webhook_or_None)`` on every change of a webhook
        (registered, updated, rotated, enabled or disabled, deleted) made by any process;
        with ``include_own`` also on this registry's own writes (right after each), else only
        on the others'. The callback runs on the event loop and must not block; an exception
        from it is logged and counted. Returns a function that stops the calls."""
        entry = (callback, include_own)
        self._listeners.append(entry)

        def _stop() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(entry)

        return _stop

    # -- the mirror --------------------------------------------------------------------------

    def _guard(
        self, kv: KeyValue, handle: Callable[[KeyValue.Entry], None]
    ) -> Callable[[KeyValue.Entry], None]:
        def _guarded(entry: KeyValue.Entry) -> None:
            try:
                handle(entry)
            except Exception as err:  # one bad entry must not stop the mirror
                self.bad_entries += 1
                _log.error("webhooks.kv_bad_entry", bucket=kv._name, key=entry.key, error=repr(err))

        return _guarded

    def _seen_secret(self, entry: KeyValue.Entry) -> None:
        parts = entry.key.split(".")
        if len(parts) != 3 or parts[0] != "s":
            return
        key = (token_value(parts[1]), parts[2])
        if entry.operation in (KV_DEL, KV_PURGE):
            self._secret_docs.pop(key, None)
            return
        doc = json.loads(entry.value or b"")
        if not isinstance(doc, dict):
            raise ValueError("a secrets entry must be an object")
        self._secret_docs[key] = doc
        self._refresh(key[0], own=False)

    def _seen_def(self, entry: KeyValue.Entry) -> None:
        parts = entry.key.split(".")
        if len(parts) != 2 or parts[0] != "w":
            return
        webhook_id = token_value(parts[1])
        revision = entry.revision or 0
        if revision <= self._known_revision(webhook_id):
            return  # this process wrote it (or saw it) already
        deleted = entry.operation in (KV_DEL, KV_PURGE)
        writing = self._own_writes.get(webhook_id, b"")
        own = writing is None if deleted else writing == entry.value
        if deleted:
            self._forget(webhook_id, revision, own=own)
            return
        doc = json.loads(entry.value or b"")
        if not isinstance(doc, dict):
            raise ValueError("a definition must be an object")
        self._gone.pop(webhook_id, None)
        self._defs[webhook_id] = _Definition(revision, doc)
        self._refresh(webhook_id, own=own)

    def _known_revision(self, webhook_id: str) -> int:
        known = self._defs.get(webhook_id)
        return max(known.revision if known else 0, self._gone.get(webhook_id, 0))

    def _forget(self, webhook_id: str, revision: int, *, own: bool) -> None:
        self._gone[webhook_id] = revision
        gone = self._defs.pop(webhook_id, None)
        if gone is not None:
            self._secret_docs.pop((webhook_id, str(gone.doc.get("secrets_version"))), None)
        self._shown.pop(webhook_id, None)
        if self._webhooks.pop(webhook_id, None) is not None:
            self.version += 1
            self._tell(webhook_id, None, own=own)

    def _refresh(self, webhook_id: str, *, own: bool) -> None:
        """Show the webhook once its definition and the secrets it names are both here."""
        definition = self._defs.get(webhook_id)
        if definition is None:
            return
        version = str(definition.doc.get("secrets_version"))
        secret_part = self._secret_docs.get((webhook_id, version))
        if secret_part is None:
            return  # the secrets entry is on its way: keep showing the previous webhook
        shown = (definition.revision, version)
        if self._shown.get(webhook_id) == shown:
            return  # seen already (a late copy of an entry)
        webhook = join_webhook(definition.doc, secret_part)
        self._shown[webhook_id] = shown
        for key in [k for k in self._secret_docs if k[0] == webhook_id and k[1] != version]:
            del self._secret_docs[key]  # replaced versions (purged by their writer)
        self._webhooks[webhook_id] = webhook
        self.version += 1
        self._tell(webhook_id, webhook, own=own)

    def _tell(self, webhook_id: str, webhook: Webhook | None, *, own: bool) -> None:
        for callback, include_own in list(self._listeners):
            if own and not include_own:
                continue
            try:
                callback(webhook_id, webhook)
            except Exception as err:
                self.listener_errors += 1
                _log.error(
                    "webhooks.kv_listener_failed", webhook_id=webhook_id, error=type(err).__name__
                )

    async def _reread(self, webhook_id: str) -> None:
        """Bring one webhook's mirror up to the server's latest (after a conflict)."""
        token = key_token(webhook_id)
        try:
            entry = await retrying(lambda: self._defs_kv.get(f"w.{token}"), self._write_timeout)
        except KeyNotFoundError as err:
            marker = getattr(err, "entry", None)
            revision = getattr(marker, "revision", None) or self._known_revision(webhook_id) + 1
            self._forget(webhook_id, max(revision, self._known_revision(webhook_id)), own=False)
            return
        if (entry.revision or 0) <= self._known_revision(webhook_id):
            return
        doc = json.loads(entry.value or b"")
        version = str(doc.get("secrets_version"))
        if (webhook_id, version) not in self._secret_docs:
            secret_entry = await retrying(
                lambda: self._secrets_kv.get(f"s.{token}.{version}"), self._write_timeout
            )
            self._secret_docs[(webhook_id, version)] = json.loads(secret_entry.value or b"")
        self._gone.pop(webhook_id, None)
        self._defs[webhook_id] = _Definition(entry.revision or 0, doc)
        self._refresh(webhook_id, own=False)

    # -- writes ------------------------------------------------------------------------------

    async def put(self, webhook: Webhook) -> None:
        """Add or replace a webhook; returns once the server stored it.

        Raises:
            WebhookPersistenceError: the server refused or cannot be reached (nothing changed).
        """
        await self._commit(webhook.id, lambda _current: webhook, must_exist=False)

    async def change(self, webhook_id: str, update: Callable[[Webhook], Webhook]) -> Webhook:
        """Replace a webhook by ``update(current)``; the new webhook.

        ``update`` may run more than once: again on the newer webhook each time another
        process changed it first (compare-and-set), so no change is lost. A try whose answer
        was lost (a time-out) is sent again as it was, not recomputed, so it is stored once.

        Raises:
            WebhookNotFoundError: no such webhook (or it was deleted meanwhile).
            WebhookPersistenceError: the server refused or cannot be reached.
        """

        def _apply(current: Webhook | None) -> Webhook:
            if current is None:
                raise WebhookNotFoundError(f"no webhook with id {webhook_id!r}")
            return update(current)

        return await self._commit(webhook_id, _apply, must_exist=True)

    async def remove(self, webhook_id: str) -> Webhook:
        """Remove a webhook; the removed webhook. Of two removals of one webhook, from any
        processes, exactly one succeeds.

        Raises:
            WebhookNotFoundError: no such webhook.
            WebhookPersistenceError: the server refused or cannot be reached.
        """
        self._refuse_if_closed()
        async with self._lock, self._owning(webhook_id):
            for _ in range(_MAX_CONFLICTS):
                removed = self.get(webhook_id)
                definition = self._defs[webhook_id]
                key = f"w.{key_token(webhook_id)}"
                self._own_writes[webhook_id] = None
                try:
                    await self._defs_kv.delete(key, last=definition.revision)
                except Exception as err:
                    if not (wrong_last(err) or isinstance(err, TRANSIENT)):
                        raise self._failed(webhook_id, err, [removed]) from None
                    await self._guarded(webhook_id, [removed], self._reread(webhook_id))
                    if isinstance(err, TRANSIENT) and webhook_id not in self._webhooks:
                        return removed  # the delete whose answer was lost was stored
                    continue
                # The marker's revision is not returned; the watcher brings it.
                self._forget(webhook_id, definition.revision, own=True)
                version = str(definition.doc.get("secrets_version"))
                await self._purge_secrets(webhook_id, version)
                return removed
        raise self._too_busy(webhook_id)

    async def _commit(
        self,
        webhook_id: str,
        update: Callable[[Webhook | None], Webhook],
        *,
        must_exist: bool,
    ) -> Webhook:
        self._refuse_if_closed()
        async with self._lock, self._owning(webhook_id):
            # A try whose answer was lost can still be stored after the read that follows it
            # (the server may answer the read first). So every write id sent is remembered,
            # and while the webhook's revision has not moved, the lost try is sent again as
            # it was (same write id, same compare-and-set base) instead of running ``update``
            # again: at most one of them is stored, and either is recognised as ours.
            ours: dict[str, Webhook] = {}
            lost: tuple[int, str] | None = None  # (base revision, write id) of a lost try
            for _ in range(_MAX_CONFLICTS):
                current = self._webhooks.get(webhook_id)
                if must_exist and current is None:
                    raise WebhookNotFoundError(f"no webhook with id {webhook_id!r}")
                base = self._known_revision(webhook_id)
                if lost is not None and lost[0] == base:
                    write_id = lost[1]
                    changed = ours[write_id]
                else:
                    changed = update(current)
                    write_id = secrets.token_hex(8)
                    ours[write_id] = changed
                lost = None
                try:
                    await self._write(webhook_id, changed, write_id)
                except _Conflict as conflict:
                    seen = [changed] if current is None else [changed, current]
                    await self._guarded(webhook_id, seen, self._reread(webhook_id))
                    stored = self._defs.get(webhook_id)
                    mine = None if stored is None else ours.get(str(stored.doc.get("write_id")))
                    if mine is not None:
                        return mine  # a try whose answer was lost was stored after all
                    if conflict.lost:
                        lost = (base, write_id)
                    continue
                return changed
        raise self._too_busy(webhook_id)

    @contextlib.asynccontextmanager
    async def _owning(self, webhook_id: str) -> AsyncIterator[None]:
        try:
            yield
        finally:
            self._own_writes.pop(webhook_id, None)

    async def _write(self, webhook_id: str, webhook: Webhook, write_id: str) -> None:
        """Write one webhook (secrets entry, then the definition by compare-and-set).

        The definition carries ``write_id``, so a try whose answer was lost (a time-out) is
        recognised when the webhook is read again.

        Raises:
            _Conflict: another process wrote the definition first, or the server's answer
                was lost (the caller reads the webhook again to know).
            WebhookPersistenceError: any other failure (nothing was stored).
        """
        if webhook.id != webhook_id:
            raise ValueError(f"a change of webhook {webhook_id!r} returned {webhook.id!r}")
        token = key_token(webhook_id)
        known = self._defs.get(webhook_id)
        old_version = None if known is None else str(known.doc.get("secrets_version"))
        definition, secret_part = split_webhook(webhook, time.time())
        same = old_version is not None and self._secret_docs.get((webhook_id, old_version)) == (
            secret_part
        )
        version = old_version if same and old_version is not None else secrets.token_hex(8)
        definition["secrets_version"] = version
        definition["write_id"] = write_id
        body = json.dumps(definition, ensure_ascii=False).encode("utf-8")
        try:
            if not same:
                secret_body = json.dumps(secret_part, ensure_ascii=False).encode("utf-8")
                await self._secrets_kv.put(f"s.{token}.{version}", secret_body)
            self._own_writes[webhook_id] = body
            try:
                if known is None:
                    revision = await self._defs_kv.create(f"w.{token}", body)
                else:
                    revision = await self._defs_kv.update(f"w.{token}", body, last=known.revision)
            except KeyWrongLastSequenceError:
                if not same:
                    await self._purge_secrets(webhook_id, version)
                raise _Conflict from None
            except TRANSIENT:
                # Maybe stored: its secrets entry stays (garbage if it was not, a dangling
                # definition if it were purged), and the caller reads the webhook again.
                raise _Conflict(lost=True) from None
        except _Conflict:
            raise
        except Exception as err:
            if not same:
                await self._purge_secrets(webhook_id, version)
            raise self._failed(webhook_id, err, [webhook]) from None
        stored = json.loads(body)
        if not same:
            self._secret_docs[(webhook_id, version)] = secret_part
        self._gone.pop(webhook_id, None)
        self._defs[webhook_id] = _Definition(revision, stored)
        self._refresh(webhook_id, own=True)
        if not same and old_version is not None:
            await self._purge_secrets(webhook_id, old_version)

    async def _purge_secrets(self, webhook_id: str, version: str) -> None:
        """Remove a secrets entry that no definition names any more (best effort: one left
        behind is logged; it holds a secret, but only where secrets are kept anyway)."""
        self._secret_docs.pop((webhook_id, version), None)
        try:
            await self._secrets_kv.purge(
                f"s.{key_token(webhook_id)}.{version}", msg_ttl=_MARKER_TTL
            )
        except Exception as err:
            _log.warning(
                "webhooks.kv_secret_purge_failed",
                bucket=self._secrets_kv._name,
                webhook_id=webhook_id,
                error=type(err).__name__,
            )

    async def _guarded(self, webhook_id: str, seen: list[Webhook], step: Any) -> None:
        try:
            await step
        except Exception as err:
            raise self._failed(webhook_id, err, seen) from None

    def _failed(
        self, webhook_id: str, err: BaseException, seen: list[Webhook]
    ) -> WebhookPersistenceError:
        """The error (and log line) of a failed write: bucket, webhook and the problem, with
        every secret of the webhooks involved masked; nothing changed."""
        problem = describe_failure(err, seen)
        bucket = self._defs_kv._name
        _log.error("webhooks.persist_failed", bucket=bucket, webhook_id=webhook_id, error=problem)
        return WebhookPersistenceError(
            f"cannot write webhook {webhook_id!r} to the KV bucket {bucket!r}: {problem}; "
            "nothing was changed"
        )

    def _too_busy(self, webhook_id: str) -> WebhookPersistenceError:
        return WebhookPersistenceError(
            f"webhook {webhook_id!r} in the KV bucket {self._defs_kv._name!r} was changed by "
            f"others {_MAX_CONFLICTS} times in a row; nothing was changed"
        )

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise WebhookPersistenceError(
                f"the KV webhook registry on {self._defs_kv._name!r} is closed"
            )
