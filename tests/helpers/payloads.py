"""The one table of valid payloads for the 15 built-in event types."""

from __future__ import annotations

from typing import Any

__all__ = ["VALID_PAYLOADS"]

# Every field of every built-in type, with a valid value: the reference's table plus the
# fields the engine sends too.
VALID_PAYLOADS: dict[str, dict[str, Any]] = {
    "memory.created": {
        "memory_id": "mem_1", "content": "Paris is in France", "tier": "hot",
        "ltp_strength": 0.5, "eig": 0.2, "tags": ["geo"], "category": "fact",
        "agent_id": "agent-01", "episode_id": "ep_1", "content_preview": "Paris",
        "previous_id": "mem_0",
    },
    "memory.accessed": {
        "memory_id": "mem_1", "query": "capital?", "similarity_score": 0.9, "rank": 1,
        "tier": "warm",
    },
    "memory.deleted": {"memory_id": "mem_1", "tier": "cold", "reason": "decay"},
    "memory.consolidated": {
        "memory_id": "mem_1", "from_tier": "hot", "to_tier": "warm",
        "consolidation_type": "demotion", "ltp_strength": 0.3,
    },
    "consolidation.started": {"cycle_id": "c1", "trigger": "scheduled", "memories_queued": 4},
    "consolidation.completed": {
        "cycle_id": "c1", "duration_seconds": 1.5, "memories_processed": 10, "hot_to_warm": 2,
        "warm_to_cold": 1, "memories_consolidated": 3,
    },
    "contradiction.detected": {
        "group_id": "g1", "memory_a_id": "mem_1", "memory_b_id": "mem_2",
        "similarity_score": 0.8, "llm_confirmed": True, "llm_confidence": 0.7,
    },
    "contradiction.resolved": {
        "group_id": "g1", "resolution_type": "merge", "resolution_note": "merged",
        "resolved_by": "user",
    },
    "dream.started": {
        "session_id": "d1", "trigger": "idle", "schedule_name": "nightly", "max_memories": 100,
        "stages_enabled": ["episodic_clustering", "dream_report"],
    },
    "dream.completed": {
        "session_id": "d1", "duration_seconds": 12.5, "memories_processed": 47,
        "clusters_found": 5, "patterns_extracted": 3, "contradictions_resolved": 1,
        "memories_promoted": 2, "dream_report_path": "./data/dream_reports/report_001.json",
    },
    "dream.failed": {
        "session_id": "d1", "error": "LLM timeout", "stage": "pattern_extraction",
        "duration_seconds": 3.0, "memories_processed": 7,
    },
    "synapse.formed": {
        "synapse_id": "s1", "neuron_a_id": "mem_1", "neuron_b_id": "mem_2",
        "initial_strength": 0.2, "formation_reason": "associative", "similarity": 0.6,
    },
    "synapse.fired": {
        "synapse_id": "s1", "source_id": "mem_1", "target_id": "mem_2", "strength": 0.4,
        "was_successful": False, "context": "capital?",
    },
    "gap.detected": {
        "gap_id": "gap1", "query": "who is Ada?", "gap_type": "missing_info",
        "related_memory_ids": ["mem_1", "mem_2"], "severity": 0.5,
    },
    "gap.filled": {
        "gap_id": "gap1", "memory_id": "mem_3", "fill_method": "user_input", "confidence": 0.9,
    },
}  # fmt: skip
