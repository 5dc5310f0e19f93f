"""What the JetStream KV registry and delivery store share: bucket names, keys, scans, CAS.

Every bucket is a JetStream KV bucket (file storage, history 1), created if missing. Ids
become key tokens: an id made only of ``[A-Za-z0-9_-]`` is its own token; any other id is
``=`` followed by its URL-safe base64 (no padding), so a dot or a space in an id can never
split a key into more tokens than its layout has.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from nats.js import JetStreamContext, api
from nats.js.errors import (
    APIError,
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KV_DEL, KV_MARKER_REASON, KV_OP, KV_PURGE, KeyValue

__all__ = [
    "DEFAULT_PREFIX",
    "Follower",
    "bucket_names",
    "key_token",
    "open_bucket",
    "scan",
    "token_value",
    "wrong_last",
]

DEFAULT_PREFIX = "mnemo"
"""The default prefix of the bucket names."""
_PLAIN = re.compile(r"[A-Za-z0-9_-]+")
_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,64}")


def bucket_names(prefix: str) -> dict[str, str]:
    """The four bucket names of one prefix: ``webhooks`` (definitions), ``secrets``,
    ``deliveries`` and ``state``.

    Raises:
        ValueError: the prefix is not 1-64 characters of ``[A-Za-z0-9_-]``.
    """
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(
            f"the KV bucket prefix must be 1-64 characters of [A-Za-z0-9_-], got {prefix!r}"
        )
    return {
        "webhooks": f"{prefix}_webhooks",
        "secrets": f"{prefix}_webhook_secrets",
        "deliveries": f"{prefix}_deliveries",
        "state": f"{prefix}_webhook_state",
    }


def key_token(value: str) -> str:
    """``value`` as one key token (see the module docstring); :func:`token_value` inverts it."""
    if _PLAIN.fullmatch(value):
        return value
    return "=" + base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii").rstrip("=")


def token_value(token: str) -> str:
    """The id a :func:`key_token` token stands for."""
    if not token.startswith("="):
        return token
    raw = token[1:]
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")


def wrong_last(err: BaseException) -> bool:
    """Whether a write failed its compare-and-set: the key has another revision (nats-py
    translates this for ``create``/``update`` only, not for ``delete`` or a raw publish)."""
    if isinstance(err, KeyWrongLastSequenceError):
        return True
    return isinstance(err, APIError) and err.err_code in (10071, 10164)


async def open_bucket(js: JetStreamContext, name: str, description: str) -> KeyValue:
    """The bucket ``name``, created (file storage, history 1, per-message TTL allowed) if
    missing. Two processes creating it at once get the same bucket: the stream's creation is
    idempotent for an identical configuration."""
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        return await js.create_key_value(
            bucket=name, description=description, history=1, storage=api.StorageType.FILE
        )


async def scan(kv: KeyValue, keys: str) -> AsyncIterator[KeyValue.Entry]:
    """Every live entry whose key matches ``keys`` (a subject pattern), once each, latest
    value; a key that existed when the scan began is never missed.

    First one ephemeral ordered consumer (last value per subject), one message per matching
    key. Its end marker alone is not enough: with history 1 a key rewritten while the
    consumer runs loses the message the consumer was about to read, and its new message lands
    after the marker (or the marker comes at once). So the stream's subject list, read once
    the consumer is done, names every key there is, and each key the consumer did not bring
    is read by itself (one request each, ``_GET_WINDOW`` at a time). A server answers at most
    100,000 subjects per stream-info request: keep a scanned key range below that.
    """
    seen: set[str] = set()
    watcher = await kv.watch(keys, ignore_deletes=True)
    try:
        async for entry in watcher:
            if entry is None:  # the consumer's end marker
                break
            if entry.operation not in (KV_DEL, KV_PURGE) and entry.key not in seen:
                seen.add(entry.key)
                yield entry
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    prefix: str = kv._pre
    info = await kv._js.stream_info(kv._stream, subjects_filter=f"{prefix}{keys}")
    missed = [
        subject[len(prefix) :]
        for subject in (info.state.subjects or {})
        if subject[len(prefix) :] not in seen
    ]
    for start in range(0, len(missed), _GET_WINDOW):
        window = missed[start : start + _GET_WINDOW]
        for found in await asyncio.gather(*(_live(kv, key) for key in window)):
            if found is not None:
                yield found


_GET_WINDOW = 256
"""How many keys a scan reads at once by themselves."""


async def _live(kv: KeyValue, key: str) -> KeyValue.Entry | None:
    """A key's latest value, or ``None`` when it was deleted or purged meanwhile."""
    try:
        return await kv.get(key)
    except KeyNotFoundError:  # KeyDeletedError is one
        return None


class Follower:
    """Every change of a bucket's keys, handed to ``handle(entry)`` on the event loop: the
    latest value of each key first, then each write as it happens; :attr:`ready` resolves
    once the first part is done.

    An ordered consumer like ``kv.watchall()``'s, with a 1 s idle heartbeat instead of 5 s:
    when the server restarts (its ephemeral consumer gone), the client notices two missed
    heartbeats and recreates the consumer from the next stream sequence, so no change is
    missed and the mirror catches up within seconds, not twenty.
    """

    HEARTBEAT = 1.0

    def __init__(self, kv: KeyValue, handle: Callable[[KeyValue.Entry], None]) -> None:
        self._kv = kv
        self._handle = handle
        self._sub: Any = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def start(self) -> Follower:
        """Create the consumer; the initial values arrive after this returns."""
        kv = self._kv
        pre: str = kv._pre
        setup: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        async def _on_message(msg: Any) -> None:
            if not setup.done():
                await setup
            meta = msg.metadata
            op = None
            if msg.header and KV_OP in msg.header:
                op = msg.header.get(KV_OP)
            elif msg.header and KV_MARKER_REASON in msg.header:
                op = KV_DEL if msg.header.get(KV_MARKER_REASON) == "Remove" else KV_PURGE
            self._handle(
                KeyValue.Entry(
                    bucket=kv._name,
                    key=msg.subject[len(pre) :],
                    value=msg.data,
                    revision=meta.sequence.stream,
                    delta=meta.num_pending,
                    created=None,
                    operation=op,
                )
            )
            if meta.num_pending == 0 and not self.ready.done():
                self.ready.set_result(None)

        self._sub = await kv._js.subscribe(
            f"{pre}>",
            stream=kv._stream,
            cb=_on_message,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
            idle_heartbeat=self.HEARTBEAT,
            inactive_threshold=300.0,
        )
        try:
            info = await self._sub.consumer_info()
        except BaseException:
            setup.cancel()
            await self._sub.unsubscribe()
            raise
        setup.set_result(True)
        # An empty bucket by the server's count: the client's own count (``delivered``) misses
        # messages the server already sent that are still on the way, and would say "ready"
        # before they were handled.
        sent = 0 if info.delivered is None else info.delivered.consumer_seq
        if info.num_pending == 0 and sent == 0 and not self.ready.done():
            self.ready.set_result(None)
        return self

    async def stop(self) -> None:
        """Delete the consumer (quietly if the connection is gone)."""
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection is closed: the consumer goes with it
                return
