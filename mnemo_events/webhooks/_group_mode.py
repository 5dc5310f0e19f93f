"""The webhook manager's group mode: the shared registry and store, the member, the runtime.

:class:`GroupMode` is what :class:`~mnemo_events.webhook_manager.WebhookManager` holds when
it is given a JetStream transport (``WebhookManager(transport="nats://...")``): it opens the
shared registry and delivery store on the stream's server, prepares the group (work stream,
consumers, lease bucket), and builds the :class:`DeliveryRuntime` with the group's hooks
(:mod:`mnemo_events.webhooks._group`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mnemo_events._log import logger
from mnemo_events.bus._jetstream import JetStreamTransport
from mnemo_events.bus._jetstream_config import JetStreamConfig
from mnemo_events.config import WebhooksConfig
from mnemo_events.event import Event
from mnemo_events.webhooks._group import GroupMember
from mnemo_events.webhooks._runtime import DeliveryRuntime
from mnemo_events.webhooks._store_rows import WebhookState

if TYPE_CHECKING:
    import aiohttp
    from aiohttp.abc import AbstractResolver

    from mnemo_events.webhooks._kv_registry import JetStreamWebhookRegistry
    from mnemo_events.webhooks._kv_store import JetStreamDeliveryStore

__all__ = ["GroupMode", "as_transport"]

_log = logger("webhooks.group")


def as_transport(value: Any) -> tuple[JetStreamTransport, bool]:
    """A transport from ``transport=`` (URL, settings, mapping or object); whether it was
    made here (and so is closed here)."""
    if isinstance(value, JetStreamTransport):
        return value, False
    return JetStreamTransport(config=JetStreamConfig.from_transport(value)), True


class _ActorStore:
    """The shared store as the actors see it: every call passes through, but ``save_state``
    (one worker's counters) is dropped: the group's counters move by ``bump_state``."""

    def __init__(self, store: JetStreamDeliveryStore) -> None:
        self._store = store

    def save_state(self, state: WebhookState) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class GroupMode:
    """One manager's membership of a webhook group (see the module docstring)."""

    def __init__(self, transport: Any, config: WebhooksConfig) -> None:
        self.transport, self._owns_transport = as_transport(transport)
        self._config = config
        self.registry: JetStreamWebhookRegistry | None = None
        self.store: JetStreamDeliveryStore | None = None
        self.member: GroupMember | None = None
        self._stop_listening: Callable[[], None] | None = None
        self._forwards: set[asyncio.Task[None]] = set()
        self.forward_failures = 0

    @property
    def prefix(self) -> str:
        """The prefix of the shared buckets: the stream's subject prefix (unique per stream,
        as two streams cannot share subjects)."""
        return self.transport.config.subject_prefix

    async def open_registry(self) -> JetStreamWebhookRegistry:
        """The shared registry, opened on first use (registration works before ``start``)."""
        if self.registry is None:
            from mnemo_events.webhooks._kv_registry import JetStreamWebhookRegistry

            _, js = await self.transport._connection()
            self.registry = await JetStreamWebhookRegistry.open(js, prefix=self.prefix)
        return self.registry

    async def start(
        self,
        *,
        resolver: AbstractResolver | None,
        on_disable: Callable[[str, str], None],
        session: aiohttp.ClientSession | None,
        secret_resolver: Callable[[str], str] | None,
    ) -> DeliveryRuntime:
        """Open the shared parts, prepare the group and start taking work; the runtime."""
        from mnemo_events.webhooks._kv_store import JetStreamDeliveryStore

        registry = await self.open_registry()
        _, js = await self.transport._connection()
        store = self.store = JetStreamDeliveryStore(
            js, prefix=self.prefix, retention_days=self._config.retention_days
        )
        member = self.member = GroupMember(
            self.transport,
            registry=registry,
            store=store,
            takeover_seconds=self._config.takeover_seconds,
            max_jobs=self._config.group_max_jobs,
            disable_after_failures=self._config.disable_after_failures,
            on_disable=on_disable,
        )
        await member.prepare()
        runtime = DeliveryRuntime(
            self._config,
            registry,
            _ActorStore(store),  # type: ignore[arg-type]
            resolver=resolver,
            on_disable=on_disable,
            session=session,
            secret_resolver=secret_resolver,
            resume=False,
            replay_with=member.publish_rounds,
            sender_guard=member.guard,
            attempt_cap=member.attempt_cap,
            shared_states=True,
        )
        await runtime.start()
        self._stop_listening = registry.listen(member.on_registry_change)
        member.start(runtime)
        return runtime

    async def stop(self, runtime: DeliveryRuntime | None, grace: float) -> None:
        """Stop taking work, let running attempts finish (``grace``), hand the rest back to
        the group, then close the shared parts (and the connection, when made here)."""
        member = self.member
        try:
            if member is not None:
                await member.stop_taking()
            if self._stop_listening is not None:
                self._stop_listening()
                self._stop_listening = None
            if self._forwards:
                await asyncio.gather(*list(self._forwards), return_exceptions=True)
            if runtime is not None:
                await runtime.stop(grace, None if member is None else member.hand_back)
        finally:
            self.member = None
            registry, self.registry = self.registry, None
            if registry is not None:
                await registry.close()
            self.store = None
            if self._owns_transport:
                await self.transport.stop()

    def follows_stream_of(self, bus: Any) -> bool:
        """Whether ``bus`` publishes to this group's stream: the fan-out reads its events
        there, so the manager need not subscribe to it."""
        other = getattr(bus, "transport", None)
        if not isinstance(other, JetStreamTransport):
            return False
        mine = self.transport.config
        return (other.config.stream, other.config.subject_prefix) == (
            mine.stream,
            mine.subject_prefix,
        )

    def forward(self, event: Event) -> None:
        """Store an event handed to the manager (``deliver``) in the group's stream, where
        the fan-out picks it up."""
        task = asyncio.get_running_loop().create_task(self._forward(event))
        self._forwards.add(task)
        task.add_done_callback(self._forwards.discard)

    async def _forward(self, event: Event) -> None:
        try:
            await self.transport.accept(event)
        except Exception as err:
            self.forward_failures += 1
            _log.error("webhooks.group_forward_failed", event_id=event.id, error=repr(err))

    async def flush(self) -> None:
        """Return once every event forwarded before the call is in the stream."""
        if self._forwards:
            await asyncio.gather(*list(self._forwards), return_exceptions=True)

    async def reset_failures(self, webhook_id: str) -> None:
        """Clear the group's consecutive-failure count of a re-enabled webhook."""
        store = self.store
        if store is None:
            return
        state = (await store.states()).get(webhook_id) or WebhookState(webhook_id)
        state.consecutive_failures = 0
        store.save_state(state)
        await store.flush()
