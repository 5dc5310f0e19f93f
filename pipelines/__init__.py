"""Ready-made reactive pipelines over mnemo-events streams, built on the public API only.

Each pipeline takes an observable of events (``bus.observe()``) and keyword options, and
returns an observable of small frozen records; ``audit_log`` is the one sink. Time-based
pipelines take a ``scheduler`` (default: see ``mnemo_events.operators.resolve_scheduler``)::

    from pipelines import dream_sessions
    dream_sessions(bus.observe("dream.*"), timeout=600).subscribe(print)
"""

from __future__ import annotations

from mnemo_events.logging import log_events
from pipelines.audit import AuditLog, AuditStats, audit_log
from pipelines.contradictions import ContradictionAlert, contradiction_watch
from pipelines.dreams import DreamOutcome, DreamSession, dream_sessions
from pipelines.gaps import GapReport, OpenGap, knowledge_gaps
from pipelines.rates import EventRates, event_rates
from pipelines.tiers import TierFlow, tier_flow

__all__ = [
    "AuditLog",
    "AuditStats",
    "ContradictionAlert",
    "DreamOutcome",
    "DreamSession",
    "EventRates",
    "GapReport",
    "OpenGap",
    "TierFlow",
    "audit_log",
    "contradiction_watch",
    "dream_sessions",
    "event_rates",
    "knowledge_gaps",
    "log_events",
    "tier_flow",
]
