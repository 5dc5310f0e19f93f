"""Payload checks on publish, per ``events.validation``: strict, warn or off.

Registered event types are checked against their schema; types that are not registered are
published in every mode, with one warning per type naming the closest registered types, so a
typo shows at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from mnemo_events import schemas
from mnemo_events._log import logger
from mnemo_events.event import Event, checked_event, fresh_event
from mnemo_events.exceptions import EventValidationError

__all__ = ["PayloadChecker"]

_log = logger("bus")
_MAX_TRACKED_TYPES = 10_000
_validate = schemas.default_registry.validate  # one call less than schemas.validate_event
_freezer_of = schemas.default_registry.freezer_of


class PayloadChecker:
    """Checks one payload against the schema registry, counting what it lets through."""

    def __init__(self, mode: Literal["strict", "warn", "off"]) -> None:
        self.mode = mode
        self.invalid_published = 0
        """Invalid payloads published anyway (``warn`` mode)."""
        self.rejected = 0
        """Invalid payloads refused (``strict`` mode)."""
        self.untracked_unregistered = 0
        """Events of unregistered types beyond the first ``_MAX_TRACKED_TYPES`` types."""
        self._unregistered_seen: dict[str, int] = {}

    def fresh(
        self,
        event_type: str,
        data: Mapping[str, Any],
        metadata: Mapping[str, Any] | None,
        max_bytes: int,
    ) -> Event:
        """Build the event to publish and check its payload (the mode is not ``off``).

        A flat payload of a registered type is checked and frozen in one walk
        (``compile_freezer``); anything that walk cannot vouch for takes the full path,
        :func:`~mnemo_events.event.fresh_event` then :meth:`check`, which decides and raises
        exactly as it would have without the walk.

        Raises:
            InvalidEventTypeError: the type is not a well-formed dotted name.
            EventValidationError: the payload is not strict JSON, or (strict) not valid.
        """
        freezer = _freezer_of(event_type)
        if freezer is not None and type(data) is dict:
            frozen = freezer(data, max_bytes)
            if frozen is not None:  # strict JSON and valid: a registered (well-formed) type
                return checked_event(event_type, frozen, metadata, max_bytes)
        event = fresh_event(event_type, data, metadata, max_bytes)
        self.check(event_type, event.data)
        return event

    def check(self, event_type: str, data: Any) -> None:
        """Raise, log or pass one payload according to the mode.

        Called after the event is built, so ``event_type`` is well formed and ``data`` is a
        frozen JSON dict.

        Raises:
            EventValidationError: in strict mode, listing every problem.
        """
        if self.mode == "off":
            return
        seen = self._unregistered_seen.get(event_type)
        if seen is not None and not schemas.is_registered(event_type):
            self._unregistered_seen[event_type] = seen + 1
            return
        valid, errors = _validate(event_type, data)
        if valid:
            return  # the common case: one registry lookup
        if not schemas.is_registered(event_type):
            self._note_unregistered(event_type)
            return
        if self.mode == "strict":
            self.rejected += 1
            raise EventValidationError(event_type, errors)
        self.invalid_published += 1
        _log.warning("bus.validation_failed", event_type=event_type, errors=errors)

    def _note_unregistered(self, event_type: str) -> None:
        seen = self._unregistered_seen.get(event_type, 0)
        if seen == 0 and len(self._unregistered_seen) >= _MAX_TRACKED_TYPES:
            self.untracked_unregistered += 1  # bounded memory under a flood of random types
            return
        self._unregistered_seen[event_type] = seen + 1
        if seen == 0:
            _log.warning(
                "bus.unregistered_event_type",
                event_type=event_type,
                closest=schemas.suggest_event_types(event_type),
            )

    def stats(self) -> dict[str, Any]:
        """Counters for ``get_stats()``."""
        return {
            "mode": self.mode,
            "rejected": self.rejected,
            "invalid_published": self.invalid_published,
            "unregistered_types": dict(self._unregistered_seen),
            "untracked_unregistered": self.untracked_unregistered,
        }
