"""The counters of each webhook in the KV delivery store's ``<prefix>_webhook_state``
bucket (key ``s.<webhook_id>``), and the identity of the registry the buckets serve
(``meta.registry_id``).

``save`` writes a webhook's counters as one process sees them (last writer wins, as the
SQLite store does); ``bump`` is the group's form: a compare-and-set read-modify-write of the
shared counters, so concurrent bumps from any processes are each counted exactly once.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from mnemo_events.exceptions import DeliveryStoreCorruptError
from mnemo_events.webhooks._kv_chains import WriteChains
from mnemo_events.webhooks._kv_common import key_token, scan, wrong_last
from mnemo_events.webhooks._kv_records import decode, encode, state_of, state_record
from mnemo_events.webhooks._store_rows import WebhookState

__all__ = ["SharedCounters"]

_MAX_CONFLICTS = 256
"""Compare-and-set rounds of one bump before it gives up (others kept bumping)."""
_REGISTRY_ID_KEY = "meta.registry_id"

Failed = Callable[[str, str, BaseException], None]
"""Told of a write that failed for good: what, the key, the error (it logs and counts)."""


class SharedCounters:
    """The counters bucket of one store (see the module docstring)."""

    def __init__(
        self, kv: KeyValue, chains: WriteChains, *, failed: Failed, stored: Callable[[], None]
    ) -> None:
        self._kv = kv
        self._chains = chains
        self._failed = failed
        self._stored = stored
        self._latest: dict[str, WebhookState] = {}

    async def check_registry(self, registry_id: str, deliveries: str) -> None:
        """Record ``registry_id`` as the registry these buckets serve, or check that it is.

        Raises:
            DeliveryStoreCorruptError: they serve another registry (nothing was written).
        """
        try:
            await self._kv.create(_REGISTRY_ID_KEY, registry_id.encode())
            return
        except Exception as err:
            if not wrong_last(err):
                raise
        found = ((await self._kv.get(_REGISTRY_ID_KEY)).value or b"").decode("utf-8", "replace")
        if found != registry_id:
            raise DeliveryStoreCorruptError(
                f"delivery store (KV bucket {deliveries!r}) belongs to another webhook "
                f"registry (registry_id {found!r}, but the registry says {registry_id!r}); it "
                "was left untouched: use another bucket prefix, or the registry it belongs to"
            )

    def save(self, state: WebhookState) -> None:
        """Write a webhook's counters as they are now, in the background (writes queued
        for one webhook coalesce: the latest wins)."""
        self._latest[state.webhook_id] = WebhookState(
            webhook_id=state.webhook_id,
            consecutive_failures=state.consecutive_failures,
            last_delivery_at=state.last_delivery_at,
            last_success_at=state.last_success_at,
            last_failure_at=state.last_failure_at,
        )
        key = f"s.{key_token(state.webhook_id)}"

        async def _save() -> None:
            latest = self._latest.pop(state.webhook_id, None)
            if latest is None:
                return  # written already by an earlier queued save
            try:
                await self._chains.retrying(lambda: self._kv.put(key, encode(state_record(latest))))
            except Exception as err:
                self._failed("save_state", key, err)
                raise
            self._stored()

        self._chains.enqueue(f"state:{state.webhook_id}", _save)

    async def bump(
        self, webhook_id: str, *, success: bool, at: float, status_code: int | None
    ) -> WebhookState:
        """Count one finished delivery by compare-and-set; the counters after it.

        Each try carries a random token: a write that timed out but was stored is found by
        it on the next read, so it is not counted twice.
        """
        key = f"s.{key_token(webhook_id)}"
        token = secrets.token_hex(8)

        async def _bump() -> WebhookState:
            for _ in range(_MAX_CONFLICTS):
                current, revision = await self._read(key, webhook_id)
                if current.get("bump") == token:  # our earlier try was stored after all
                    return state_of(current)
                state = state_of(current)
                state.last_delivery_at = at
                if success:
                    state.consecutive_failures = 0
                    state.last_success_at = at
                else:
                    state.consecutive_failures += 1
                    state.last_failure_at = at
                value = encode(state_record(state, status_code) | {"bump": token})
                try:
                    await self._chains.retrying(lambda: self._kv.update(key, value, last=revision))  # noqa: B023
                except Exception as err:
                    if wrong_last(err):
                        continue  # bumped by another process first
                    raise
                self._stored()
                return state
            raise RuntimeError(
                f"the counters of webhook {webhook_id} in the KV bucket {self._kv._name!r} "
                f"were changed by others {_MAX_CONFLICTS} times in a row"
            )

        try:
            return await self._chains.enqueue(f"state:{webhook_id}", _bump)
        except Exception as err:
            self._failed("bump_state", key, err)
            raise

    async def _read(self, key: str, webhook_id: str) -> tuple[dict[str, Any], int]:
        try:
            entry = await self._chains.retrying(lambda: self._kv.get(key))
        except KeyNotFoundError as err:
            marker = getattr(err, "entry", None)
            revision = getattr(marker, "revision", None) or 0
            return state_record(WebhookState(webhook_id)), revision
        return decode(entry.value), entry.revision or 0

    async def every(self, on_bad: Callable[[KeyValue.Entry, Exception], None]) -> dict[str, Any]:
        """Every webhook's counters, by webhook id."""
        found: dict[str, WebhookState] = {}
        async for entry in scan(self._kv, "s.*"):
            try:
                state = state_of(decode(entry.value))
            except (ValueError, KeyError, TypeError) as err:
                on_bad(entry, err)
                continue
            found[state.webhook_id] = state
        return found
