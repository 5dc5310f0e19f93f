"""The bus's table of subscriptions: who listens, what each has done, and their retirement.

Counters of removed subscriptions are kept, so the bus's totals never go backwards.
"""

from __future__ import annotations

import asyncio
import uuid

from mnemo_events._log import logger
from mnemo_events.bus._router import Router
from mnemo_events.bus._subscription import (
    SubscriptionActor,
    SubscriptionInfo,
    SubscriptionState,
    halt_all,
)

__all__ = ["SubscriptionTable", "new_subscription_id"]

_log = logger("bus")


def new_subscription_id() -> str:
    """A fresh subscription id: ``"sub_"`` and 16 random hex digits."""
    return f"sub_{uuid.uuid4().hex[:16]}"


class SubscriptionTable:
    """Subscription actors by id, linked into the router."""

    def __init__(self, router: Router) -> None:
        self.actors: dict[str, SubscriptionActor] = {}
        self.congested: list[SubscriptionActor] = []
        """Actors whose mailbox reached capacity during the current dispatch."""
        self._router = router
        self._retired: list[SubscriptionActor] = []
        self._retired_delivered = 0
        self._retired_errors = 0

    def __len__(self) -> int:
        return len(self.actors)

    def add(self, actor: SubscriptionActor) -> None:
        """Register a subscription and attach it to the event types it matches."""
        actor.congestion = self.congested
        self.actors[actor.id] = actor
        self._router.add(actor)

    def remove(self, subscription_id: str) -> bool:
        """Detach and close a subscription; False if unknown. Its queue is discarded."""
        actor = self.actors.pop(subscription_id, None)
        if actor is None:
            return False
        self._router.remove(actor)
        discarded = actor.close()
        self._retired_delivered += actor.delivered
        self._retired_errors += actor.errors
        self._retired.append(actor)
        _log.debug("bus.unsubscribed", subscription_id=subscription_id, discarded=discarded)
        return True

    def ids_with_pattern(self, pattern: str) -> list[str]:
        """Ids of the subscriptions registered with exactly ``pattern``."""
        return [a.id for a in self.actors.values() if a.pattern.text == pattern]

    def set_enabled(self, subscription_id: str, enabled: bool) -> bool:
        """Switch delivery to one subscription on or off; False if unknown."""
        actor = self.actors.get(subscription_id)
        if actor is None:
            return False
        actor.enabled = enabled
        return True

    def snapshot(self, pattern: str | None, enabled: bool | None) -> list[SubscriptionInfo]:
        """Snapshots of the subscriptions with exactly ``pattern`` and this enabled state."""
        return [
            actor.info()
            for actor in self.actors.values()
            if (pattern is None or actor.pattern.text == pattern)
            and (enabled is None or actor.enabled is enabled)
        ]

    async def drain(self, *, stream_timeout: float) -> int:
        """Wait until every subscription has handled what it was given.

        Handler calls are bounded by the watchdog; a stream's consumer is not, so a stream
        gets ``stream_timeout`` seconds, then is reported as stalled. Returns how many events
        are still undelivered (0 when fully drained).
        """
        busy = [a for a in self.actors.values() if a.pending or a.busy_since is not None]
        await asyncio.gather(*(self._drain_one(actor, stream_timeout) for actor in busy))
        return sum(actor.pending for actor in busy)

    async def flush(self, ids: list[str] | None) -> list[tuple[SubscriptionActor, int]]:
        """Wait until the given subscriptions (default all) handled what they hold now.

        Returns the subscriptions that could not get there (their task stopped), each with
        the events it still owed.
        """
        actors = (
            list(self.actors.values())
            if ids is None
            else [actor for sub_id in ids if (actor := self.actors.get(sub_id)) is not None]
        )
        targets = [(actor, actor.received) for actor in actors if actor.finished < actor.received]
        reached = await asyncio.gather(*(actor.wait_handled(t) for actor, t in targets))
        return [
            (actor, target - actor.finished)
            for (actor, target), ok in zip(targets, reached, strict=True)
            if not ok and actor.state is not SubscriptionState.CLOSED
        ]

    @staticmethod
    async def _drain_one(actor: SubscriptionActor, stream_timeout: float) -> None:
        if actor.timed:
            await actor.drain()
            return
        try:
            async with asyncio.timeout(stream_timeout):
                await actor.drain()
        except TimeoutError:
            _log.warning(
                "bus.stream_consumer_stalled",
                subscription_id=actor.id,
                undelivered=actor.pending,
                timeout=stream_timeout,
            )

    @property
    def delivered(self) -> int:
        """Handler calls that completed, removed subscriptions included."""
        return self._retired_delivered + sum(a.delivered for a in self.actors.values())

    @property
    def errors(self) -> int:
        """Handler and filter failures and time-outs, removed subscriptions included."""
        return self._retired_errors + sum(a.errors for a in self.actors.values())

    @property
    def active(self) -> int:
        """Enabled subscriptions."""
        return sum(1 for a in self.actors.values() if a.enabled)

    async def halt(self) -> None:
        """Stop every actor's task (removed ones too); queues wait for the next start."""
        await halt_all([*self.actors.values(), *self._retired])
        self._retired.clear()
