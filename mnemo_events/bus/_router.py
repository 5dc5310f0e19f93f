"""Routing: the bus stream grouped by event type, each subscription chained onto its groups.

Each event type gets one group (a plain RxPY ``Subject``, with its contract: observers are
called from a snapshot taken under its lock, so an observer removed during dispatch, for
instance by a stream's finalizer, never makes another one miss the event). A subscription
is attached, as an observer feeding its actor's mailbox, to every group whose type its
pattern matches, when either is created; the subscription's actor then applies the enabled
flag and the predicate.
Dispatch therefore costs one dictionary lookup plus the matching chains, however many
subscriptions exist.

The bus stream carries batches (what the bus task took from its mailbox in one go). The
router cuts a batch into runs of consecutive events of one type and pushes each run through
its group, in order, so every subscriber still sees publish order while a burst of one type
costs one pass through the chains instead of one per event.
"""

from __future__ import annotations

from operator import attrgetter

from reactivex.subject import Subject

from mnemo_events.bus._subscription import SubscriptionActor
from mnemo_events.event import Event

__all__ = ["Batch", "Router"]

_MAX_GROUPS = 10_000
_type_of = attrgetter("type")


Batch = list[Event]


class Router:
    """Event type -> group of subscription chains."""

    def __init__(self) -> None:
        self._groups: dict[str, Subject[Batch]] = {}
        self._actors: dict[str, SubscriptionActor] = {}

    def __len__(self) -> int:
        return len(self._actors)

    @property
    def group_count(self) -> int:
        """How many event types currently have a group."""
        return len(self._groups)

    def on_next(self, batch: Batch) -> None:
        """Route a batch, run by run, to the subscriptions whose pattern matches."""
        groups = self._groups
        types = list(map(_type_of, batch))
        count = len(types)
        if count and types.count(types[0]) == count:  # a burst of one type: one run
            group = groups.get(types[0])
            if group is None:
                group = self._create_group(types[0])
            group.on_next(batch)
            return
        start = 0
        while start < count:
            event_type = types[start]
            end = start + 1
            while end < count and types[end] == event_type:
                end += 1
            group = groups.get(event_type)
            if group is None:
                group = self._create_group(event_type)
            group.on_next(batch[start:end])
            start = end

    def add(self, actor: SubscriptionActor) -> None:
        """Attach a subscription to every existing group it matches (and to future ones)."""
        self._actors[actor.id] = actor
        for event_type, group in self._groups.items():
            if actor.pattern.matches(event_type):
                self._link(actor, event_type, group)

    def remove(self, actor: SubscriptionActor) -> None:
        """Detach a subscription from every group."""
        self._actors.pop(actor.id, None)
        for link in actor.links.values():
            link.dispose()
        actor.links.clear()
        self._drop_idle_groups()

    def _create_group(self, event_type: str) -> Subject[Batch]:
        if len(self._groups) >= _MAX_GROUPS:
            self._drop_idle_groups()
        group: Subject[Batch] = Subject()
        for actor in self._actors.values():
            if actor.pattern.matches(event_type):
                self._link(actor, event_type, group)
        self._groups[event_type] = group
        return group

    def _drop_idle_groups(self) -> None:
        """Forget the groups nobody listens to (bounds memory under a flood of types)."""
        for event_type in [t for t, g in self._groups.items() if not g.observers]:
            del self._groups[event_type]

    @staticmethod
    def _link(actor: SubscriptionActor, event_type: str, group: Subject[Batch]) -> None:
        # The enabled flag is checked in ``offer`` rather than by an ``ops.filter`` link:
        # one less operator per event and subscription on the dispatch path.
        actor.links[event_type] = group.subscribe(actor.offer)
