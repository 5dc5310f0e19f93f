"""The world model behind :mod:`mnemo_events.simulation`: what exists, so ids stay consistent.

Kept apart from the engine so the engine reads as "what happens next" and this module as
"what is true now": live memories and their tiers, synapses, open contradictions and gaps,
and the vocabulary the simulated payloads are drawn from.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, get_args

from mnemo_events.schemas import (
    ConsolidationType,
    DreamStage,
    DreamTrigger,
    FillMethod,
    FormationReason,
    GapType,
    Tier,
)

__all__ = ["Cycle", "Dream", "Pool", "World"]

TOPICS: Final = (
    "the user prefers dark mode",
    "the build server runs on Tuesdays",
    "Paris is the capital of France",
    "the cat is called Miso",
    "standups start at 9:30",
    "the API key rotates monthly",
    "tea, not coffee, after 4 pm",
    "the deploy needs two approvals",
    "Ada wrote the first program",
    "the garden needs water on Fridays",
)
CATEGORIES: Final = ("preference", "fact", "schedule", "person", "procedure")
TAGS: Final = ("work", "home", "health", "people", "tools")
ERRORS: Final = ("LLM timeout", "out of memory", "embedding service unavailable")
TIERS: Final[tuple[Tier, ...]] = get_args(Tier)
STAGES: Final[tuple[DreamStage, ...]] = get_args(DreamStage)
TRIGGERS: Final[tuple[DreamTrigger, ...]] = get_args(DreamTrigger)
FORMATIONS: Final[tuple[FormationReason, ...]] = get_args(FormationReason)
GAP_TYPES: Final[tuple[GapType, ...]] = get_args(GapType)
FILL_METHODS: Final[tuple[FillMethod, ...]] = get_args(FillMethod)
MOVES: Final[Mapping[Tier, tuple[Tier, ConsolidationType]]] = {
    "hot": ("warm", "demotion"),
    "warm": ("cold", "archival"),
    "cold": ("warm", "promotion"),
}
"""The tier move a consolidation cycle makes from each tier."""


class Pool:
    """A set of ids with O(1) add, remove and uniform random choice."""

    __slots__ = ("_index", "_items")

    def __init__(self) -> None:
        self._items: list[str] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item: object) -> bool:
        return item in self._index

    def add(self, item: str) -> None:
        """Add ``item`` (no-op when present)."""
        if item not in self._index:
            self._index[item] = len(self._items)
            self._items.append(item)

    def remove(self, item: str) -> None:
        """Remove ``item`` by swapping the last one into its place."""
        position = self._index.pop(item)
        last = self._items.pop()
        if position < len(self._items):
            self._items[position] = last
            self._index[last] = position

    def choice(self, rng: random.Random) -> str:
        """One id drawn uniformly."""
        return self._items[rng.randrange(len(self._items))]

    def sample(self, rng: random.Random, k: int) -> list[str]:
        """Up to ``k`` distinct ids."""
        return rng.sample(self._items, min(k, len(self._items)))


@dataclass(slots=True)
class Cycle:
    """An open consolidation cycle."""

    cycle_id: str
    moves_left: int
    started_step: int
    moved: Counter[str] = field(default_factory=Counter)
    """Moves made so far, keyed ``"hot_to_warm"``, ``"warm_to_cold"``, ..."""


@dataclass(slots=True)
class Dream:
    """An open dream session."""

    session_id: str
    stages: list[DreamStage]
    max_memories: int
    started_step: int


class World:
    """Live memories with their tiers, synapses, open contradictions and gaps."""

    def __init__(self) -> None:
        self.tiers: dict[str, Tier] = {}
        self.memories = Pool()
        self.by_tier: dict[Tier, Pool] = {tier: Pool() for tier in TIERS}
        self.synapses: dict[str, tuple[str, str]] = {}
        self.synapse_ids = Pool()
        self.contradictions: dict[str, tuple[str, str]] = {}
        """Open contradiction groups, oldest first."""
        self.gaps: dict[str, str] = {}
        """Open knowledge gaps (id -> query), oldest first."""
        self._ids: Counter[str] = Counter()

    def new_id(self, prefix: str) -> str:
        """The next id of a kind: ``mem_00001``, ``mem_00002``, ..."""
        self._ids[prefix] += 1
        return f"{prefix}_{self._ids[prefix]:05d}"

    def place(self, memory_id: str, tier: Tier | None) -> None:
        """Put a memory in ``tier``; None deletes it, and the synapses it ends with it."""
        old = self.tiers.pop(memory_id, None)
        if old is not None:
            self.by_tier[old].remove(memory_id)
            self.memories.remove(memory_id)
        if tier is not None:
            self.tiers[memory_id] = tier
            self.by_tier[tier].add(memory_id)
            self.memories.add(memory_id)
            return
        for synapse_id, ends in list(self.synapses.items()):
            if memory_id in ends:
                del self.synapses[synapse_id]
                self.synapse_ids.remove(synapse_id)

    def link(self, synapse_id: str, neuron_a: str, neuron_b: str) -> None:
        """Record a synapse between two live memories."""
        self.synapses[synapse_id] = (neuron_a, neuron_b)
        self.synapse_ids.add(synapse_id)
