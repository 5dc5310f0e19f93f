"""Webhook delivery: signed, retried, tracked and durable (the reference's public module).

::

    wm = WebhookManager("./data/webhooks.json", delivery_store_path="./data/deliveries.sqlite3")
    wm.attach(bus)                      # every matching event on the bus is delivered
    async with wm:                      # start() ... stop()
        hook = await wm.register_webhook("https://example.com/hook", ["memory.*"])
        hook.secret                     # generated, shown this once ("whsec_...")

Every delivery is recorded in SQLite before its first attempt and resumed by the next
``start()`` if the process dies first: at-least-once, with a stable ``X-MnemoCore-Delivery``
id for the receiver to deduplicate. See :mod:`mnemo_events.webhooks` for the parts.

**The crash boundary.** An event is safe from a crash (SIGKILL, OOM) once the delivery rows of
every webhook it matches are committed to the delivery store; ``await wm.flush()`` returns
when that holds for every event handed to the manager before the call (through ``deliver``,
or, when attached, published on the bus before the call). Before that, an event lives only in
memory (the bus mailbox, the manager) and a crash loses it. After it, every such delivery
survives with its delivery id and is attempted again by the next ``start()`` until it
succeeds or runs out of attempts. Commits are batched, so awaiting ``flush()`` after a burst
costs one transaction, not one per event.

**A group on JetStream.** ``WebhookManager(transport="nats://...")`` (or a
``JetStreamTransport``, or ``webhooks.transport`` in the settings) makes this manager one
member of a webhook group: every manager on the same stream shares the registry, the
delivery records and the work, and each delivery is attempted by one member at a time (see
:mod:`mnemo_events.webhooks._group`). The registry and the records then live in JetStream
KV, not in the files above; events come from the stream (an attached bus on the same stream
is not subscribed to; any other event handed to the manager is stored in the stream first).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import AbstractResolver
from pydantic import ValidationError
from reactivex import abc
from reactivex.disposable import Disposable

from mnemo_events._log import logger
from mnemo_events.config import RetryConfig, WebhooksConfig, group_transport, load_config
from mnemo_events.event import Event
from mnemo_events.exceptions import (
    BusClosedError,
    SensitiveWebhookHeaderError,
    UnsafeWebhookPersistenceError,
    WebhookConfigError,
    WebhookError,
    WebhookManagerNotRunningError,
    WebhookNotFoundError,
    WebhookPersistenceCommittedError,
    WebhookPersistenceError,
)
from mnemo_events.webhooks import _validation, ssrf
from mnemo_events.webhooks._registry import WebhookRegistry
from mnemo_events.webhooks._runtime import DeliveryRuntime
from mnemo_events.webhooks._secret_refs import (
    WebhookSecretResolver,
    is_credential_header,
    is_reference,
    refuse_url_credentials,
    resolve_webhook_secret_from_environment,
)
from mnemo_events.webhooks._store import DeliveryStore
from mnemo_events.webhooks.models import (
    Delivery,
    DeliveryStatus,
    Webhook,
    WebhookStatus,
)
from mnemo_events.webhooks.signature import (
    StandardWebhookSignature,
    WebhookSignature,
    generate_secret,
)

if TYPE_CHECKING:
    from mnemo_events.webhooks._group_mode import GroupMode
    from mnemo_events.webhooks._kv_registry import JetStreamWebhookRegistry

__all__ = [
    "Delivery",
    "DeliveryStatus",
    "RetryConfig",
    "SensitiveWebhookHeaderError",
    "StandardWebhookSignature",
    "UnsafeWebhookPersistenceError",
    "Webhook",
    "WebhookConfig",
    "WebhookDelivery",
    "WebhookManager",
    "WebhookManagerState",
    "WebhookPersistenceCommittedError",
    "WebhookPersistenceError",
    "WebhookRetryConfig",
    "WebhookSecretResolver",
    "WebhookSignature",
    "WebhookStatus",
    "get_webhook_manager",
    "reset_webhook_manager",
    "resolve_webhook_secret_from_environment",
]

_log = logger("webhooks")
_BACKLOG_LIMIT = 10_000
ALL_EVENTS = (">",)
"""What ``register_webhook(url, events=None)`` subscribes to: every event."""

WebhookConfig = Webhook
"""MnemoCore's name for a registered webhook: the same :class:`Webhook` (frozen; MnemoCore's
``matches_event`` is :meth:`Webhook.matches`, its ``to_dict`` is :meth:`Webhook.to_dict`)."""
WebhookRetryConfig = RetryConfig
"""MnemoCore's top-level name for :class:`~mnemo_events.config.RetryConfig`."""
WebhookDelivery = Delivery
"""MnemoCore's name for a delivery record: the same :class:`Delivery` (one record across all
attempts; MnemoCore's ``http_status`` is ``last_status_code``, ``attempt`` is ``attempts``)."""


class WebhookManagerState(Enum):
    """Where a :class:`WebhookManager` stands; only ``RUNNING`` sends and answers queries.

    ``NEW`` -> ``STARTING`` -> ``RUNNING`` -> ``STOPPED``, and ``STOPPED`` -> ``STARTING`` again
    on a restart (a failed start goes back to where it came from). Registration works in every
    state; store queries, ``flush`` and redelivery raise
    :class:`~mnemo_events.exceptions.WebhookManagerNotRunningError` outside ``RUNNING``.
    """

    NEW = "new"
    """Built, never started: events from an attached bus wait in a bounded backlog."""
    STARTING = "starting"
    """Opening the store and resuming deliveries; events still wait."""
    RUNNING = "running"
    """Sending."""
    STOPPED = "stopped"
    """Stopped: events are dropped (counted and logged) until the next ``start()``."""


_State = WebhookManagerState


class WebhookManager:
    """Registers webhooks and delivers matching events to them (see the module docstring).

    Settings come from ``config`` (a :class:`WebhooksConfig`; without one, both stores are in
    memory) and any keyword given here overrides it: the paths, ``allow_private_networks``
    and, as ``**settings``, any other field of :class:`WebhooksConfig` (``retention_days``,
    ``disable_after_failures``, ``max_in_flight_per_endpoint``, ``stop_timeout``,
    ``response_body_limit``, ``default_retry``, ``enabled``). ``resolver`` replaces the DNS
    resolver used for the SSRF checks and connections (tests use a static one). Call the
    methods from the event loop that runs the manager.

    ``transport`` (a NATS URL, JetStream settings or a ``JetStreamTransport``; default the
    ``transport`` setting when it names one) makes the manager a member of a webhook group
    on that stream (see the module docstring); without it the manager works alone.

    MnemoCore's two arguments: ``http_session`` is an application's aiohttp session, used for
    every attempt and never closed here (its connector resolves names, so the connection-time
    SSRF guard is the application's; URLs are still vetted at registration and IP literals
    at each attempt). ``secret_resolver(ref) -> str`` resolves every ``secret_ref`` (and
    credential header) that is not ``env:NAME``, when an attempt is signed.

    Raises:
        WebhookConfigError: an unknown or invalid setting.
        WebhookPersistenceError: the webhook file exists but cannot be loaded.
    """

    def __init__(
        self,
        persistence_path: str | os.PathLike[str] | None = None,
        *,
        delivery_store_path: str | os.PathLike[str] | None = None,
        allow_private_networks: bool | None = None,
        config: WebhooksConfig | None = None,
        resolver: AbstractResolver | None = None,
        http_session: aiohttp.ClientSession | None = None,
        secret_resolver: WebhookSecretResolver | None = None,
        transport: Any = None,
        **settings: Any,
    ) -> None:
        base = config or WebhooksConfig(persistence_path=None, delivery_store_path=None)
        overrides: dict[str, Any] = dict(settings)
        if persistence_path is not None:
            overrides["persistence_path"] = os.fspath(persistence_path)
        if delivery_store_path is not None:
            overrides["delivery_store_path"] = os.fspath(delivery_store_path)
        if allow_private_networks is not None:
            overrides["allow_private_networks"] = allow_private_networks
        unknown = set(overrides) - set(WebhooksConfig.model_fields)
        if unknown:
            raise WebhookConfigError(f"unknown WebhookManager setting(s): {sorted(unknown)}")
        try:
            self.config = WebhooksConfig.model_validate({**base.model_dump(), **overrides})
        except ValidationError as err:
            raise WebhookConfigError(f"invalid WebhookManager settings: {err}") from err
        if transport is None:
            transport = self.config.transport
        if transport in (None, "events", "local", "memory"):
            transport = None
        self._group: GroupMode | None = None
        if transport is not None:  # imported here: nats-py loads only for a group
            from mnemo_events.webhooks._group_mode import GroupMode

            self._group = GroupMode(transport, self.config)
        self._registry: WebhookRegistry | JetStreamWebhookRegistry = WebhookRegistry(
            None if self._group is not None else self.config.persistence_path
        )
        self._resolver = resolver
        self._state = _State.NEW
        self._runtime: DeliveryRuntime | None = None
        self._bus: Any = None
        self._bus_subscription: abc.DisposableBase | None = None
        self._bus_subscription_id: str | None = None
        self._backlog: list[Event] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dropped = 0
        self._http_session = http_session
        self._secret_resolver = secret_resolver
        self._follows_bus = False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def state(self) -> WebhookManagerState:
        """Where the manager stands in its lifecycle."""
        return self._state

    @property
    def is_running(self) -> bool:
        """Whether deliveries are being sent."""
        return self._state is _State.RUNNING

    @property
    def bus_subscription_id(self) -> str | None:
        """The id of the manager's subscription on the attached bus, for ``bus.flush``; None
        when not subscribed (or subscribed without an id)."""
        return getattr(self, "_bus_subscription_id", None)

    async def start(self) -> None:
        """Open the store, resume unfinished deliveries and start sending (idempotent)."""
        if self._state in (_State.RUNNING, _State.STARTING):
            return
        previous, self._state = self._state, _State.STARTING
        if self._group is not None:
            try:
                runtime = await self._start_group()
            except BaseException:
                self._state = previous
                await self._group.stop(None, 0.0)
                raise
            resumed = 0
        else:
            store = DeliveryStore(self.config.delivery_store_path)
            runtime = DeliveryRuntime(
                self.config,
                self._registry,
                store,
                resolver=self._resolver,
                on_disable=self._disable_soon,
                session=self._http_session,
                secret_resolver=self._secret_resolver,
            )
            try:
                resumed = await runtime.start()
            except BaseException:
                self._state = previous
                await runtime.stop(0.0)
                raise
        for webhook in self._registry.all():  # registered while the runtime was starting
            if webhook.id not in runtime.actors:
                runtime.add(webhook)
        # Only now do events go to the runtime; until here they waited in the backlog.
        self._runtime = runtime
        self._state = _State.RUNNING
        backlog, self._backlog = self._backlog, []
        for event in backlog:
            runtime.inbound.on_next(event)
        if self._bus is not None and self._bus_subscription is None:
            self._subscribe_bus()
        _log.info("webhooks.started", webhooks=len(self._registry), resumed=resumed)

    async def _start_group(self) -> DeliveryRuntime:
        assert self._group is not None
        self._registry = await self._group.open_registry()
        return await self._group.start(
            resolver=self._resolver,
            on_disable=self._disable_soon,
            session=self._http_session,
            secret_resolver=self._secret_resolver,
        )

    @property
    def group(self) -> GroupMode | None:
        """The group this manager is a member of (None when it works alone)."""
        return self._group

    async def stop(self) -> None:
        """Stop sending. Running attempts get ``stop_timeout`` seconds to finish; unfinished
        deliveries stay pending in the store for the next ``start()``. A group member that
        only registered (never started) closes its connection to the shared registry."""
        if self._state is not _State.RUNNING:
            if self._group is not None and self._state is not _State.STARTING:
                await self._group.stop(None, 0.0)
            return
        self._state = _State.STOPPED
        if self._bus_subscription is not None:
            self._bus_subscription.dispose()
            self._bus_subscription = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        runtime, self._runtime = self._runtime, None
        assert runtime is not None
        if self._group is not None:
            await self._group.stop(runtime, self.config.stop_timeout)
        else:
            await runtime.stop(self.config.stop_timeout)
        _log.info("webhooks.stopped")

    async def __aenter__(self) -> WebhookManager:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def flush(self) -> None:
        """Return once every event handed to the manager before the call has its delivery
        rows committed to the delivery store: the crash boundary (see the module docstring).

        When attached to a bus, the events published on it before the call are first
        waited for (``bus.flush`` on the manager's own subscription), so
        ``await bus.publish(...); await wm.flush()`` means durable.

        Raises:
            WebhookError: the manager is not running.
            BusNotRunningError: the attached bus stopped with events for the manager unhandled.
            sqlite3.Error: a batch holding some of those deliveries could not commit (logged
                and counted in ``errors.store_errors``); they are not durable.
        """
        runtime = self._running()
        if self._group is not None:
            await self._group.flush()
        if self._bus is not None and self._bus_subscription_id is not None:
            # A shut-down bus drained before closing, and nothing more comes from it.
            with contextlib.suppress(BusClosedError):
                await self._bus.flush(subscription_ids=[self._bus_subscription_id])
        await runtime.store.flush()

    def _running(self) -> DeliveryRuntime:
        if self._runtime is None:
            done = "was stopped" if self._state is _State.STOPPED else "is not running"
            raise WebhookManagerNotRunningError(
                f"the webhook manager {done} (state {self._state.value!r}): await wm.start() first"
            )
        return self._runtime

    # -- events in ---------------------------------------------------------------------------

    def attach(self, bus: Any, *, lifecycle: bool = False) -> None:
        """Deliver every event published on ``bus`` (an ``EventBus``) that matches a webhook.

        Events arriving before ``start()`` wait (up to 10,000) and go out when it runs. With
        ``lifecycle`` the manager also starts and stops with the bus (what
        ``get_webhook_manager()`` does, so the reference's examples need no ``start()``).
        """
        if self._bus is bus:
            if lifecycle and not self._follows_bus:
                self._follows_bus = True
                bus.add_companion(self)
            return
        self.detach()
        self._bus = bus
        if lifecycle:
            self._follows_bus = True
            bus.add_companion(self)
        if self._state is not _State.STOPPED:
            self._subscribe_bus()

    def detach(self) -> None:
        """Stop receiving events from the attached bus (and following its lifecycle)."""
        if self._follows_bus and self._bus is not None:
            self._bus.remove_companion(self)
        self._follows_bus = False
        if self._bus_subscription is not None:
            self._bus_subscription.dispose()
            self._bus_subscription = None
        self._bus = None

    def _subscribe_bus(self) -> None:
        bus = self._bus
        if self._group is not None and self._group.follows_stream_of(bus):
            return  # its events are in the group's stream: the fan-out reads them there
        subscription_id = self._bus_subscription_id = bus.subscribe(">", self.deliver)

        def _unsubscribe() -> None:
            self._bus_subscription_id = None
            bus.unsubscribe(subscription_id)

        self._bus_subscription = Disposable(_unsubscribe)

    def deliver(self, event: Event) -> None:
        """Deliver one event to every enabled webhook it matches (what ``attach`` uses)."""
        if not self.config.enabled:
            return
        if self._group is not None and self._runtime is not None:
            self._group.forward(event)  # into the stream; the group's fan-out delivers it
        elif self._runtime is not None:
            self._runtime.inbound.on_next(event)
        elif self._state is not _State.STOPPED and len(self._backlog) < _BACKLOG_LIMIT:
            # Not started yet (or starting): the events wait and go out once it runs.
            self._backlog.append(event)
        else:
            self._dropped += 1
            _log.warning_every(
                self._dropped,
                1000,
                "webhooks.event_dropped",
                event_id=event.id,
                dropped=self._dropped,
                reason="manager stopped" if self._state is _State.STOPPED else "backlog full",
            )

    async def send_webhooks(self, event: Event) -> None:
        """The reference's entry point: same as :meth:`deliver`."""
        self.deliver(event)

    # -- registration ------------------------------------------------------------------------

    async def register_webhook(
        self,
        url: str,
        events: Sequence[str] | None = None,
        secret: str | None = None,
        headers: Mapping[str, str] | None = None,
        enabled: bool = True,
        retry_config: RetryConfig | Mapping[str, Any] | None = None,
        *,
        secret_ref: str | None = None,
        signature_scheme: str = "mnemocore",
        description: str | None = None,
    ) -> Webhook:
        """Register an endpoint for the events matching ``events`` (bus patterns).

        ``events=None`` means every event (stored as ``[">"]``), as in MnemoCore. Without
        ``secret`` or ``secret_ref`` (``"env:NAME"``, a bare variable name, or a reference the
        ``secret_resolver`` understands) a secret is generated; the returned webhook is the
        only place it is shown. With persistence on, a credential header must be given as a
        reference (:class:`SensitiveWebhookHeaderError` otherwise); an inline ``secret`` is
        still accepted there, as in the reference (the file is owner-only).

        Strings that are not valid Unicode (a lone surrogate) are refused, and so is a URL with
        credentials (``user:pass@``) together with an ``Authorization`` header.

        Raises:
            WebhookConfigError: a field is invalid (the message names it).
            UnsafeWebhookURLError: the URL points at a private network (SSRF guard).
            SensitiveWebhookHeaderError: a credential header in plaintext with persistence on.
        """
        refuse_url_credentials(url)
        _validation.validate_unicode(
            {
                "url": url,
                "events": events,
                "secret": secret,
                "secret_ref": secret_ref,
                "headers": headers,
                "description": description,
                "signature_scheme": signature_scheme,
            }
        )
        scheme = _validation.validate_scheme(signature_scheme)
        patterns = _validation.validate_events(ALL_EVENTS if events is None else events)
        clean_headers = _validation.validate_headers(headers)
        description = _validation.validate_description(description)
        self._refuse_plaintext_credentials(clean_headers)
        retry = self.config.default_retry if retry_config is None else retry_config
        retry = _validation.validate_retry_config(retry)
        if secret is None and secret_ref is None:
            secret = generate_secret()
        _validation.validate_secret(
            secret, secret_ref, scheme, custom_resolver=self._secret_resolver is not None
        )
        parsed = await self._check_url(url)
        _validation.validate_credentials(str(parsed), clean_headers)
        webhook = Webhook(
            id=f"wh_{secrets.token_hex(12)}",
            url=str(parsed),
            events=patterns,
            secret=secret,
            secret_ref=secret_ref,
            headers=clean_headers,
            enabled=bool(enabled),
            retry_config=retry,
            signature_scheme=scheme,
            description=description,
        )
        await self._shared_registry()
        await self._registry.put(webhook)
        if self._runtime is not None:
            self._runtime.add(webhook)
        _log.info("webhooks.registered", webhook_id=webhook.id, events=list(patterns))
        return webhook

    async def _check_url(self, url: str) -> Any:
        return await ssrf.vet_url(
            url, allow_private_networks=self.config.allow_private_networks, resolver=self._resolver
        )

    async def update_webhook(self, webhook_id: str, **fields: Any) -> Webhook:
        """Change some fields (``url``, ``events``, ``secret``, ``secret_ref``, ``headers``,
        ``enabled``, ``retry_config``, ``signature_scheme``, ``description``).

        ``enabled=True`` re-enables a disabled webhook and clears its failure count. A new
        ``secret`` replaces the old one at once; :meth:`rotate_secret` keeps both for a while.

        Raises:
            WebhookNotFoundError: no such webhook.
            WebhookConfigError: an unknown field or an invalid value.
        """
        await self._shared_registry()
        current = self._registry.get(webhook_id)
        changes = _validation.validate_changes(
            current, fields, custom_resolver=self._secret_resolver is not None
        )
        if "headers" in changes:
            self._refuse_plaintext_credentials(changes["headers"])
        if "url" in fields:
            refuse_url_credentials(fields["url"])
            changes["url"] = str(await self._check_url(fields["url"]))
        _validation.validate_credentials(
            changes.get("url", current.url), changes.get("headers", current.headers)
        )
        updated = await self._registry.change(
            webhook_id,
            lambda w: dataclasses.replace(w, **changes, updated_at=datetime.now(UTC)),
        )
        self._apply(updated, reset_failures=changes.get("enabled") is True)
        if self._group is not None and changes.get("enabled") is True:
            await self._group.reset_failures(webhook_id)
        _log.info("webhooks.updated", webhook_id=webhook_id, fields=sorted(fields))
        return updated.masked()

    async def _shared_registry(self) -> None:
        """In a group, the shared registry (opened on first use, even before ``start``)."""
        if self._group is not None:
            self._registry = await self._group.open_registry()

    def _apply(self, webhook: Webhook, *, reset_failures: bool = False) -> None:
        if self._runtime is None:
            return
        actor = self._runtime.actors.get(webhook.id)
        if actor is not None:
            self._runtime.update(webhook)
            if reset_failures and self._group is None:
                actor.state.consecutive_failures = 0
                self._runtime.store.save_state(actor.state)

    async def rotate_secret(
        self,
        webhook_id: str,
        new_secret: str | None = None,
        grace_seconds: float = 86400,
        *,
        new_secret_ref: str | None = None,
    ) -> Webhook:
        """Replace the secret, signing with the old one too for ``grace_seconds``.

        Returns the webhook with the new secret shown (generated when none is given): the
        only time it is.
        """
        if not isinstance(grace_seconds, int | float) or not math.isfinite(grace_seconds):
            raise WebhookConfigError(f"grace_seconds must be a finite number, got {grace_seconds}")
        if grace_seconds < 0:
            raise WebhookConfigError(f"grace_seconds must be >= 0, got {grace_seconds}")
        _validation.validate_unicode({"secret": new_secret, "secret_ref": new_secret_ref})
        await self._shared_registry()
        current = self._registry.get(webhook_id)
        if new_secret is None and new_secret_ref is None:
            new_secret = generate_secret()
        _validation.validate_secret(new_secret, new_secret_ref, current.signature_scheme)
        expires = time.time() + grace_seconds
        rotated = await self._registry.change(
            webhook_id, lambda w: w.rotated(new_secret, new_secret_ref, expires)
        )
        self._apply(rotated)
        _log.info("webhooks.secret_rotated", webhook_id=webhook_id, grace_seconds=grace_seconds)
        return rotated

    async def delete_webhook(self, webhook_id: str) -> bool:
        """Remove a webhook; its unfinished deliveries are marked failed.

        Returns ``False`` when no webhook has that id, as in MnemoCore: of two concurrent
        deletes of one webhook exactly one returns ``True`` (removal runs under the
        registry's lock).
        """
        await self._shared_registry()
        try:
            await self._registry.remove(webhook_id)
        except WebhookNotFoundError:
            return False
        if self._runtime is not None:
            await self._runtime.remove(webhook_id)
        _log.info("webhooks.deleted", webhook_id=webhook_id)
        return True

    def get_webhook(self, webhook_id: str) -> Webhook | None:
        """One webhook, secrets masked; ``None`` for an unknown id (as in MnemoCore)."""
        found = self._registry.find(webhook_id)
        return None if found is None else found.masked()

    def _refuse_plaintext_credentials(self, headers: Mapping[str, str]) -> None:
        path = self.config.persistence_path
        if path is None:
            return
        custom = self._secret_resolver is not None
        for name, value in headers.items():
            if is_credential_header(name) and not is_reference(value, custom_resolver=custom):
                forms = "'env:NAME'" + (
                    " or a reference your secret_resolver reads" if custom else ""
                )
                raise SensitiveWebhookHeaderError(
                    f"header {name!r} looks like a credential and would be stored in plaintext "
                    f"in {path}; give its value as one of the secret references ({forms}) or "
                    "register without persistence_path"
                )

    def list_webhooks(self, enabled_only: bool = False) -> list[Webhook]:
        """Every webhook (or only the enabled ones), secrets masked."""
        return [w.masked() for w in self._registry.all() if w.enabled or not enabled_only]

    def _disable_soon(self, webhook_id: str, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(self._disable(webhook_id, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _disable(self, webhook_id: str, reason: str) -> None:
        try:
            webhook = self._registry.get(webhook_id)
            if not webhook.enabled:
                return
            disabled = await self._registry.change(webhook_id, lambda w: w.disabled(reason))
        except WebhookError as err:  # deleted meanwhile, or the file cannot be written
            _log.error("webhooks.disable_failed", webhook_id=webhook_id, error=repr(err))
            return
        self._apply(disabled)
        _log.warning("webhooks.disabled", webhook_id=webhook_id, reason=reason)

    # -- tracking ----------------------------------------------------------------------------

    async def get_delivery_history(
        self, webhook_id: str, limit: int = 100, status: str | None = None
    ) -> list[Delivery]:
        """A webhook's deliveries, newest first; ``status`` filters by one status."""
        if status is not None and status not in DeliveryStatus.__members__.values():
            choices = ", ".join(s.value for s in DeliveryStatus)
            raise WebhookConfigError(f"status must be one of {choices}, got {status!r}")
        return await self._running().store.list_deliveries(webhook_id, limit=limit, status=status)

    async def get_delivery(self, delivery_id: str) -> Delivery:
        """One delivery with all its attempts.

        Raises:
            WebhookNotFoundError: no such delivery.
        """
        found = await self._running().store.get_delivery(delivery_id)
        if found is None:
            raise WebhookNotFoundError(f"no delivery with id {delivery_id!r}")
        return found

    async def get_webhook_status(self, webhook_id: str) -> WebhookStatus:
        """Counts, success rate, last delivery times, consecutive failures, enabled and why not.

        Raises:
            WebhookNotFoundError: no such webhook.
        """
        webhook = self._registry.get(webhook_id)
        return await self._running().webhook_status(webhook)

    def get_metrics(self) -> dict[str, Any]:
        """Webhooks, deliveries by status, attempts, mean and p95 latency (since start)."""
        webhooks = self._registry.all()
        enabled = sum(1 for w in webhooks if w.enabled)
        runtime = self._runtime
        metrics: dict[str, Any] = {
            "running": self.is_running,
            "webhooks": {"total": len(webhooks), "enabled": enabled},
        }
        if runtime is None:
            return metrics | {"deliveries": {}, "attempts": {}, "latency_ms": {}, "errors": {}}
        report = runtime.report(events_dropped=self._dropped)
        if self._group is not None and self._group.member is not None:
            report["group"] = self._group.member.report()
        return metrics | report

    async def redeliver(self, delivery_id: str) -> str:
        """Send a finished delivery again (same delivery id, a fresh round of attempts).

        Raises:
            WebhookNotFoundError: no such delivery, or its webhook was deleted.
            WebhookManagerNotRunningError: the manager is not running.
            WebhookError: the delivery is still pending or retrying.
        """
        return await self._running().redeliver(delivery_id, self._registry)

    async def replay_failed(self, webhook_id: str, since: datetime | None = None) -> int:
        """Send again every failed delivery of a webhook (created since ``since``); how many."""
        self._registry.get(webhook_id)
        return await self._running().replay_failed(webhook_id, since)


_shared: WebhookManager | None = None
_shared_lock = threading.Lock()


def get_webhook_manager() -> WebhookManager:
    """The shared manager, configured from ``config.yaml`` and attached to ``get_event_bus()``.

    It starts and stops with that bus (at once if the bus is already running), so the
    reference's examples deliver without a ``start()`` call; a new shared bus (after
    ``reset_event_bus()`` or a shutdown) is followed on the next call.
    """
    global _shared
    from mnemo_events.event_bus import get_event_bus

    with _shared_lock:
        if _shared is None:
            settings = load_config()
            _shared = WebhookManager(config=settings.webhooks, transport=group_transport(settings))
        manager = _shared
    manager.attach(get_event_bus(), lifecycle=True)
    return manager


def reset_webhook_manager() -> None:
    """Forget the shared manager (mainly for tests); detaches it from its bus.

    A running manager is not stopped: ``await get_webhook_manager().stop()`` first.
    """
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.detach()
        _shared = None
