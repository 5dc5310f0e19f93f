"""The simulated engine: a valid, consistent, reproducible stream of all 15 event types."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from mnemo_events.event import Event
from mnemo_events.event_bus import EventBus
from mnemo_events.schemas import BUILTIN_MODELS, validate_event
from mnemo_events.simulation import SimulatedEngine


async def _simulate(
    seed: int, n_events: int, **options: Any
) -> tuple[SimulatedEngine, list[Event]]:
    received: list[Event] = []
    async with EventBus(max_queue_size=n_events + 1) as bus:
        bus.subscribe("*", received.append)
        engine = SimulatedEngine(bus, seed=seed, **options)
        await engine.run(n_events)
        await bus.stop()
    return engine, received


class _Story:
    """Replays a stream and asserts every reference points at something that exists."""

    def __init__(self) -> None:
        self.tiers: dict[str, str] = {}
        self.created: set[str] = set()
        self.open_cycle: str | None = None
        self.cycles_done: set[str] = set()
        self.open_dream: str | None = None
        self.groups: set[str] = set()
        self.resolved: set[str] = set()
        self.synapses: dict[str, tuple[str, str]] = {}
        self.gaps: set[str] = set()
        self.filled: set[str] = set()

    def live(self, memory_id: str) -> None:
        assert memory_id in self.tiers, f"{memory_id} is not a live memory"

    def replay(self, event: Event) -> None:
        handler = getattr(self, "on_" + event.type.replace(".", "_"))
        handler(event.data)

    def on_memory_created(self, d: Any) -> None:
        assert d["memory_id"] not in self.created
        self.created.add(d["memory_id"])
        self.tiers[d["memory_id"]] = d["tier"]
        if "previous_id" in d:
            assert d["previous_id"] in self.created

    def on_memory_accessed(self, d: Any) -> None:
        self.live(d["memory_id"])
        assert d["tier"] == self.tiers[d["memory_id"]]

    def on_memory_deleted(self, d: Any) -> None:
        self.live(d["memory_id"])
        assert d["tier"] == self.tiers.pop(d["memory_id"])

    def on_memory_consolidated(self, d: Any) -> None:
        assert self.open_cycle is not None, "a memory moved outside a consolidation cycle"
        self.live(d["memory_id"])
        assert self.tiers[d["memory_id"]] == d["from_tier"] != d["to_tier"]
        self.tiers[d["memory_id"]] = d["to_tier"]

    def on_consolidation_started(self, d: Any) -> None:
        assert self.open_cycle is None
        self.open_cycle = d["cycle_id"]

    def on_consolidation_completed(self, d: Any) -> None:
        assert d["cycle_id"] == self.open_cycle
        self.cycles_done.add(d["cycle_id"])
        self.open_cycle = None

    def on_dream_started(self, d: Any) -> None:
        assert self.open_dream is None
        self.open_dream = d["session_id"]

    def on_dream_completed(self, d: Any) -> None:
        assert d["session_id"] == self.open_dream
        self.open_dream = None

    on_dream_failed = on_dream_completed

    def on_contradiction_detected(self, d: Any) -> None:
        self.live(d["memory_a_id"])
        self.live(d["memory_b_id"])
        assert d["memory_a_id"] != d["memory_b_id"]
        self.groups.add(d["group_id"])

    def on_contradiction_resolved(self, d: Any) -> None:
        assert d["group_id"] in self.groups
        assert d["group_id"] not in self.resolved
        self.resolved.add(d["group_id"])

    def on_synapse_formed(self, d: Any) -> None:
        self.live(d["neuron_a_id"])
        self.live(d["neuron_b_id"])
        self.synapses[d["synapse_id"]] = (d["neuron_a_id"], d["neuron_b_id"])

    def on_synapse_fired(self, d: Any) -> None:
        ends = self.synapses[d["synapse_id"]]
        assert {d["source_id"], d["target_id"]} == set(ends)
        self.live(d["source_id"])
        self.live(d["target_id"])

    def on_gap_detected(self, d: Any) -> None:
        self.gaps.add(d["gap_id"])
        for memory_id in d["related_memory_ids"]:
            self.live(memory_id)

    def on_gap_filled(self, d: Any) -> None:
        assert d["gap_id"] in self.gaps
        assert d["gap_id"] not in self.filled
        assert d["memory_id"] in self.created
        self.filled.add(d["gap_id"])


@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_every_type_appears_and_every_payload_validates(seed: int) -> None:
    """A run of 600 events holds all 15 types, each payload valid for its schema."""
    _, events = await _simulate(seed, 600)
    assert len(events) == 600
    assert set(Counter(e.type for e in events)) == set(BUILTIN_MODELS)
    for event in events:
        assert validate_event(event.type, event.data) == (True, []), event
        assert event.metadata == {"source": "simulation", "agent_id": "sim-agent"}


@pytest.mark.parametrize("seed", [0, 7])
async def test_the_story_is_consistent(seed: int) -> None:
    """Ids refer to things that exist: memories created first, cycles and sessions opened."""
    engine, events = await _simulate(seed, 3_000, max_memories=60)
    story = _Story()
    for event in events:
        story.replay(event)
    assert set(story.tiers) == set(engine.memories)
    assert story.tiers == engine.memories
    assert story.cycles_done
    assert story.resolved
    assert story.filled


async def test_counts_match_what_was_published() -> None:
    """``counts``, ``emitted`` and ``published`` agree with the delivered stream."""
    engine, events = await _simulate(3, 500)
    assert engine.counts == {t: sum(e.type == t for e in events) for t in BUILTIN_MODELS}
    assert list(engine.counts) == list(BUILTIN_MODELS)
    assert engine.emitted == engine.published == 500


async def test_same_seed_same_stream() -> None:
    """Two engines with one seed emit the same types and payloads in the same order."""
    _, first = await _simulate(42, 400)
    _, second = await _simulate(42, 400)
    _, other = await _simulate(43, 400)
    assert [(e.type, e.data) for e in first] == [(e.type, e.data) for e in second]
    assert [(e.type, e.data) for e in first] != [(e.type, e.data) for e in other]


async def test_runs_continue_the_same_story() -> None:
    """A second ``run`` continues: ids are not reused and the counts add up."""
    received: list[Event] = []
    async with EventBus() as bus:
        bus.subscribe("memory.created", received.append)
        engine = SimulatedEngine(bus, seed=5)
        first = await engine.run(200)
        second = await engine.run(200)
        await bus.stop()
    ids = [e.data["memory_id"] for e in received]
    assert len(ids) == len(set(ids))
    assert sum(first.values()) == sum(second.values()) == 200
    assert engine.counts == {t: first.get(t, 0) + second.get(t, 0) for t in BUILTIN_MODELS}


async def test_without_a_bus_the_world_model_still_runs() -> None:
    """With no bus nothing is published, yet the engine advances and counts."""
    engine = SimulatedEngine(None, seed=1)
    counts = await engine.run(300)
    assert sum(counts.values()) == engine.emitted == 300
    assert engine.published == 0
    assert engine.memories


async def test_paced_runs_emit_everything() -> None:
    """With a rate the engine paces itself and still emits exactly ``n_events``."""
    engine, events = await _simulate(0, 0)
    assert events == []
    engine = SimulatedEngine(None)
    assert sum((await engine.run(5, rate=10_000)).values()) == 5


@pytest.mark.parametrize(
    ("n_events", "rate", "match"),
    [(-1, None, "n_events must be >= 0"), (1, 0, "rate must be"), (1, -5.0, "rate must be")],
)
async def test_bad_run_arguments(n_events: int, rate: float | None, match: str) -> None:
    """A negative count or a non-positive rate is refused before anything is emitted."""
    engine = SimulatedEngine(None)
    with pytest.raises(ValueError, match=match):
        await engine.run(n_events, rate)
    assert engine.emitted == 0
