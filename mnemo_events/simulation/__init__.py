"""A simulated memory engine: a realistic, reproducible stream of all 15 event types.

Used by the demo, the notebook and tests to drive a bus without a real engine. The engine
keeps a small world model so the stream tells a consistent story: memories are created before
they are accessed, moved or deleted; consolidation cycles start, move memories between tiers
and complete; dream sessions start and then complete or fail; contradictions are detected and
later resolved under the same ``group_id``; synapses form and then fire; knowledge gaps are
detected and later filled by a newly created memory. Every event goes through
:mod:`mnemo_events.integration`, so every payload is validated.

The same ``seed`` gives the same stream (types and payloads; event ids and timestamps differ).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mnemo_events import integration as emit
from mnemo_events.event import Event
from mnemo_events.integration import EventPublisher
from mnemo_events.schemas import BUILTIN_MODELS, DeletionReason, ResolutionType, Tier
from mnemo_events.simulation._world import (
    CATEGORIES,
    ERRORS,
    FILL_METHODS,
    FORMATIONS,
    GAP_TYPES,
    MOVES,
    STAGES,
    TAGS,
    TIERS,
    TOPICS,
    TRIGGERS,
    Cycle,
    Dream,
    World,
)

__all__ = ["SimulatedEngine"]

_Action = Callable[[], Awaitable[Event | None]]


class SimulatedEngine:
    """Emits a mixed, consistent stream of engine events through the integration helpers.

    Args:
        bus: where to publish (``None`` runs the world model without publishing).
        seed: seed of the ``random.Random`` driving every choice.
        agent_id: the agent stamped on created memories and in each event's metadata.
        max_memories: live memories above which the engine starts evicting.
    """

    def __init__(
        self,
        bus: EventPublisher | None,
        *,
        seed: int = 0,
        agent_id: str = "sim-agent",
        max_memories: int = 500,
    ) -> None:
        self.bus = bus
        self.seed = seed
        self.agent_id = agent_id
        self.max_memories = max_memories
        self._rng = random.Random(seed)
        self._metadata = {"source": "simulation", "agent_id": agent_id}
        self._counts: Counter[str] = Counter()
        self._published = 0
        self._step = 0
        self._world = World()
        self._cycle: Cycle | None = None
        self._dream: Dream | None = None
        self._dreams_since_failure = 0
        self._followups: deque[_Action] = deque()

    # -- what the demo and the notebook read --------------------------------------------------

    @property
    def counts(self) -> dict[str, int]:
        """Events emitted so far per type (all 15 types listed, zeros included)."""
        return {event_type: self._counts[event_type] for event_type in BUILTIN_MODELS}

    @property
    def emitted(self) -> int:
        """Events emitted so far, all types."""
        return self._step

    @property
    def published(self) -> int:
        """Events the bus accepted (helpers return None when it is absent, off or full)."""
        return self._published

    @property
    def memories(self) -> dict[str, Tier]:
        """The live memories and their tiers."""
        return dict(self._world.tiers)

    # -- running --------------------------------------------------------------------------------

    async def run(self, n_events: int, rate: float | None = None) -> dict[str, int]:
        """Emit ``n_events`` events, at ``rate`` per second or as fast as the bus takes them.

        Without a rate the engine yields to the event loop every 64 events so subscribers run
        alongside it. Calling ``run`` again continues the same story.

        Returns:
            The events emitted by this call, per type (types not emitted are left out).

        Raises:
            ValueError: ``n_events`` is negative or ``rate`` is not positive.
        """
        if n_events < 0:
            raise ValueError(f"n_events must be >= 0, got {n_events}")
        if rate is not None and not rate > 0:
            raise ValueError(f"rate must be a positive number of events per second, got {rate}")
        before = Counter(self._counts)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index in range(n_events):
            if rate is not None:
                # Behind schedule the delay is negative: still yield, or a late engine would
                # flood the loop and starve the subscribers it feeds.
                await asyncio.sleep(max(start + index / rate - loop.time(), 0.0))
            elif index % 64 == 63:
                await asyncio.sleep(0)
            await self.step()
        return dict(self._counts - before)

    async def step(self) -> Event | None:
        """Emit exactly one event: a pending follow-up, or a new action drawn at random."""
        if self._followups and self._rng.random() < 0.5:
            action = self._followups.popleft()
        else:
            action = self._choose()
        event = await action()
        self._step += 1
        if event is not None:
            self._published += 1
        return event

    def _choose(self) -> _Action:
        live = len(self._world.memories)
        options: list[tuple[_Action, float]] = [(self._create_memory, 30.0)]
        if live:
            options.append((self._access_memory, 25.0))
        if live > 5:
            evict = 30.0 if live > self.max_memories else 0.0
            options.append((self._delete_memory, 3.0 + evict))
        if self._cycle is not None:
            options.append((self._continue_consolidation, 20.0))
        elif live >= 3:
            options.append((self._start_consolidation, 3.0))
        if self._dream is not None:
            options.append((self._finish_dream, 4.0))
        else:
            options.append((self._start_dream, 3.0))
        if live >= 2:
            options.extend([(self._detect_contradiction, 3.0), (self._form_synapse, 6.0)])
        if self._world.contradictions:
            options.append((self._resolve_contradiction, 3.0))
        if self._world.synapses:
            options.append((self._fire_synapse, 8.0))
        options.append((self._detect_gap, 2.0))
        if self._world.gaps:
            options.append((self._fill_gap, 2.0))
        actions = [action for action, _ in options]
        return self._rng.choices(actions, [weight for _, weight in options])[0]

    def _count(self, event_type: str) -> Mapping[str, Any]:
        self._counts[event_type] += 1
        return self._metadata

    def _unit(self, low: float = 0.0, high: float = 1.0) -> float:
        return round(self._rng.uniform(low, high), 3)

    def _query(self) -> str:
        return f"what about {self._rng.choice(TOPICS).split(' ', 2)[1]}?"

    # -- memory.* --------------------------------------------------------------------------------

    async def _create_memory(self, memory_id: str | None = None) -> Event | None:
        rng = self._rng
        memory_id = memory_id or self._world.new_id("mem")
        chosen = rng.choices(TIERS, (85, 12, 3))[0]
        topic = rng.choice(TOPICS)
        previous = (
            self._world.memories.choice(rng)
            if len(self._world.memories) and rng.random() < 0.1
            else None
        )
        self._world.place(memory_id, chosen)
        return await emit.emit_memory_created(
            self.bus,
            memory_id=memory_id,
            content=f"Noted: {topic}.",
            tier=chosen,
            ltp_strength=self._unit(0.1, 0.9),
            eig=self._unit() if rng.random() < 0.7 else None,
            tags=rng.sample(TAGS, rng.randint(0, 2)),
            category=rng.choice(CATEGORIES),
            agent_id=self.agent_id,
            episode_id=f"ep_{self._step // 50:04d}",
            content_preview=topic[:24],
            previous_id=previous,
            metadata=self._count("memory.created"),
        )

    async def _access_memory(self) -> Event | None:
        memory_id = self._world.memories.choice(self._rng)
        return await emit.emit_memory_accessed(
            self.bus,
            memory_id=memory_id,
            query=self._query(),
            similarity_score=self._unit(0.3, 1.0),
            rank=self._rng.randint(1, 5),
            tier=self._world.tiers[memory_id],
            metadata=self._count("memory.accessed"),
        )

    async def _delete_memory(self, memory_id: str | None = None) -> Event | None:
        reason: DeletionReason = "contradiction"
        if memory_id is None or memory_id not in self._world.memories:
            memory_id = self._world.memories.choice(self._rng)
            crowded = len(self._world.memories) > self.max_memories
            reason = "eviction" if crowded else self._rng.choice(("manual", "decay"))
        tier = self._world.tiers[memory_id]
        self._world.place(memory_id, None)
        return await emit.emit_memory_deleted(
            self.bus,
            memory_id=memory_id,
            tier=tier,
            reason=reason,
            metadata=self._count("memory.deleted"),
        )

    # -- consolidation.* ---------------------------------------------------------------------

    async def _start_consolidation(self) -> Event | None:
        queued = len(self._world.by_tier["hot"]) + len(self._world.by_tier["warm"])
        cycle = Cycle(self._world.new_id("cycle"), self._rng.randint(1, 4), self._step)
        self._cycle = cycle
        return await emit.emit_consolidation_started(
            self.bus,
            cycle_id=cycle.cycle_id,
            trigger=self._rng.choice(("scheduled", "memory_pressure", "manual")),
            memories_queued=queued,
            metadata=self._count("consolidation.started"),
        )

    async def _continue_consolidation(self) -> Event | None:
        cycle = self._cycle
        assert cycle is not None  # only offered while a cycle is open
        candidates = [tier for tier in MOVES if len(self._world.by_tier[tier])]
        if cycle.moves_left <= 0 or not candidates:
            self._cycle = None
            moved = cycle.moved
            return await emit.emit_consolidation_completed(
                self.bus,
                cycle_id=cycle.cycle_id,
                duration_seconds=round((self._step - cycle.started_step) * 0.05, 3),
                memories_processed=sum(moved.values()) + self._rng.randint(0, 20),
                hot_to_warm=moved["hot_to_warm"],
                warm_to_cold=moved["warm_to_cold"],
                memories_consolidated=sum(moved.values()),
                metadata=self._count("consolidation.completed"),
            )
        from_tier: Tier = self._rng.choice(candidates)
        to_tier, kind = MOVES[from_tier]
        memory_id = self._world.by_tier[from_tier].choice(self._rng)
        self._world.place(memory_id, to_tier)
        cycle.moves_left -= 1
        cycle.moved[f"{from_tier}_to_{to_tier}"] += 1
        return await emit.emit_memory_consolidated(
            self.bus,
            memory_id=memory_id,
            from_tier=from_tier,
            to_tier=to_tier,
            consolidation_type=kind,
            ltp_strength=self._unit(),
            metadata=self._count("memory.consolidated"),
        )

    # -- dream.* ---------------------------------------------------------------------------------

    async def _start_dream(self) -> Event | None:
        rng = self._rng
        trigger = rng.choice(TRIGGERS)
        stages = [stage for stage in STAGES if rng.random() < 0.8] or [STAGES[0]]
        dream = Dream(self._world.new_id("dream"), stages, rng.choice((50, 100, 200)), self._step)
        self._dream = dream
        return await emit.emit_dream_started(
            self.bus,
            session_id=dream.session_id,
            trigger=trigger,
            schedule_name="nightly" if trigger == "scheduled" else None,
            max_memories=dream.max_memories,
            stages_enabled=stages,
            metadata=self._count("dream.started"),
        )

    async def _finish_dream(self) -> Event | None:
        dream = self._dream
        assert dream is not None  # only offered while a session is open
        self._dream = None
        rng = self._rng
        duration = round((self._step - dream.started_step) * 0.2 + rng.uniform(0.5, 3), 3)
        processed = min(dream.max_memories, len(self._world.memories))
        # About one session in five fails, and never fewer: a short demo shows dream.failed.
        self._dreams_since_failure += 1
        if rng.random() < 0.2 or self._dreams_since_failure == 5:
            self._dreams_since_failure = 0
            return await emit.emit_dream_failed(
                self.bus,
                session_id=dream.session_id,
                error=rng.choice(ERRORS),
                stage=rng.choice(dream.stages),
                duration_seconds=duration,
                memories_processed=rng.randint(0, processed),
                metadata=self._count("dream.failed"),
            )
        return await emit.emit_dream_completed(
            self.bus,
            session_id=dream.session_id,
            duration_seconds=duration,
            memories_processed=processed,
            clusters_found=rng.randint(0, 8),
            patterns_extracted=rng.randint(0, 5),
            contradictions_resolved=rng.randint(0, 2),
            memories_promoted=rng.randint(0, 3),
            dream_report_path=f"./data/dream_reports/{dream.session_id}.json",
            metadata=self._count("dream.completed"),
        )

    # -- contradiction.* -----------------------------------------------------------------------

    async def _detect_contradiction(self) -> Event | None:
        memory_a, memory_b = self._world.memories.sample(self._rng, 2)
        group_id = self._world.new_id("contra")
        self._world.contradictions[group_id] = (memory_a, memory_b)
        confirmed = self._rng.random() < 0.6
        return await emit.emit_contradiction_detected(
            self.bus,
            group_id=group_id,
            memory_a_id=memory_a,
            memory_b_id=memory_b,
            similarity_score=self._unit(0.7, 1.0),
            llm_confirmed=confirmed,
            llm_confidence=self._unit(0.5, 1.0) if confirmed else None,
            metadata=self._count("contradiction.detected"),
        )

    async def _resolve_contradiction(self) -> Event | None:
        group_id = next(iter(self._world.contradictions))
        memory_a, memory_b = self._world.contradictions.pop(group_id)
        choices: list[ResolutionType] = ["manual", "auto", "merge"]
        if memory_a in self._world.memories:
            choices.append("delete_a")
        if memory_b in self._world.memories:
            choices.append("delete_b")
        resolution = self._rng.choice(choices)
        if resolution in ("delete_a", "delete_b"):
            loser = memory_a if resolution == "delete_a" else memory_b
            self._followups.append(lambda: self._delete_memory(loser))
        return await emit.emit_contradiction_resolved(
            self.bus,
            group_id=group_id,
            resolution_type=resolution,
            resolution_note=f"kept the newer of {memory_a} and {memory_b}",
            resolved_by="user" if resolution == "manual" else "consolidator",
            metadata=self._count("contradiction.resolved"),
        )

    # -- synapse.* -------------------------------------------------------------------------------

    async def _form_synapse(self) -> Event | None:
        neuron_a, neuron_b = self._world.memories.sample(self._rng, 2)
        synapse_id = self._world.new_id("syn")
        self._world.link(synapse_id, neuron_a, neuron_b)
        return await emit.emit_synapse_formed(
            self.bus,
            synapse_id=synapse_id,
            neuron_a_id=neuron_a,
            neuron_b_id=neuron_b,
            initial_strength=self._unit(0.1, 0.5),
            formation_reason=self._rng.choice(FORMATIONS),
            similarity=self._unit(0.5, 1.0),
            metadata=self._count("synapse.formed"),
        )

    async def _fire_synapse(self) -> Event | None:
        synapse_id = self._world.synapse_ids.choice(self._rng)
        ends = self._world.synapses[synapse_id]
        source, target = ends if self._rng.random() < 0.5 else ends[::-1]
        return await emit.emit_synapse_fired(
            self.bus,
            synapse_id=synapse_id,
            source_id=source,
            target_id=target,
            strength=self._unit(0.2, 1.0),
            was_successful=self._rng.random() < 0.8,
            context=self._query(),
            metadata=self._count("synapse.fired"),
        )

    # -- gap.* -----------------------------------------------------------------------------------

    async def _detect_gap(self) -> Event | None:
        gap_id = self._world.new_id("gap")
        query = self._query()
        self._world.gaps[gap_id] = query
        return await emit.emit_gap_detected(
            self.bus,
            gap_id=gap_id,
            query=query,
            gap_type=self._rng.choice(GAP_TYPES),
            related_memory_ids=self._world.memories.sample(self._rng, 3),
            severity=self._unit(),
            metadata=self._count("gap.detected"),
        )

    async def _fill_gap(self) -> Event | None:
        gap_id = next(iter(self._world.gaps))
        del self._world.gaps[gap_id]
        memory_id = self._world.new_id("mem")
        self._followups.appendleft(lambda: self._gap_filled(gap_id, memory_id))
        return await self._create_memory(memory_id)

    async def _gap_filled(self, gap_id: str, memory_id: str) -> Event | None:
        return await emit.emit_gap_filled(
            self.bus,
            gap_id=gap_id,
            memory_id=memory_id,
            fill_method=self._rng.choice(FILL_METHODS),
            confidence=self._unit(0.5, 1.0),
            metadata=self._count("gap.filled"),
        )
