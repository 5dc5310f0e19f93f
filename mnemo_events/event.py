"""The event: what the engine publishes and every subscriber and webhook receives."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mnemo_events._frozen import FrozenDict, freeze, thaw
from mnemo_events.exceptions import EventValidationError
from mnemo_events.patterns import validate_event_type

__all__ = ["Event", "new_event_id"]


def new_event_id() -> str:
    """A fresh event id: ``"evt_"`` and a uuid4 in hex."""
    return f"evt_{uuid.uuid4().hex}"


def _frozen_mapping(event_type: str, name: str, value: Any) -> FrozenDict:
    if value is None and name == "metadata":
        return FrozenDict()
    if not isinstance(value, Mapping):
        raise EventValidationError(
            event_type, [f"{name}: expected a dict, got {type(value).__name__}"]
        )
    try:
        frozen: FrozenDict = freeze(value, name)
    except TypeError as err:
        raise EventValidationError(event_type, [str(err)]) from None
    return frozen


@dataclass(frozen=True, slots=True, eq=False)
class Event:
    """One published event. Immutable: ``data`` and ``metadata`` are read-only copies.

    Build one with :meth:`create` (validates and copies) or :meth:`from_dict`.
    """

    id: str
    type: str
    data: Mapping[str, Any]
    metadata: Mapping[str, Any]
    published_at: datetime
    _json: list[bytes] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def create(
        cls,
        event_type: str,
        data: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
        *,
        event_id: str | None = None,
        published_at: datetime | None = None,
    ) -> Event:
        """Validate the type, copy the payload into read-only containers and stamp it.

        Raises:
            InvalidEventTypeError: the type is not a well-formed dotted name.
            EventValidationError: ``data`` is not a dict or holds values JSON cannot carry.
        """
        validate_event_type(event_type)
        if published_at is None:
            published_at = datetime.now(UTC)
        elif published_at.tzinfo is None:
            raise EventValidationError(event_type, ["published_at: must be timezone-aware"])
        return cls(
            id=event_id or new_event_id(),
            type=event_type,
            data=_frozen_mapping(event_type, "data", data),
            metadata=_frozen_mapping(event_type, "metadata", metadata),
            published_at=published_at,
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready dict (``published_at`` as ISO 8601 with offset)."""
        return {
            "id": self.id,
            "type": self.type,
            "data": thaw(self.data),
            "metadata": thaw(self.metadata),
            "published_at": self.published_at.isoformat(),
        }

    def to_json(self) -> bytes:
        """The UTF-8 JSON of :meth:`to_dict`, encoded once and reused (webhooks, history)."""
        if not self._json:
            self._json.append(
                json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()
            )
        return self._json[0]

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Event:
        """Rebuild an event from :meth:`to_dict` output (or its JSON, decoded).

        Raises:
            EventValidationError: a field is missing or malformed; the message names it.
        """
        if not isinstance(raw, Mapping):
            raise EventValidationError("?", [f"expected a dict, got {type(raw).__name__}"])
        event_type = raw.get("type")
        shown_type = event_type if isinstance(event_type, str) else "?"
        problems = [
            f"{name}: missing"
            for name in ("id", "type", "data", "published_at")
            if name not in raw
        ]
        if problems:
            raise EventValidationError(shown_type, problems)
        event_id = raw["id"]
        if not isinstance(event_id, str) or not event_id:
            raise EventValidationError(shown_type, [f"id: expected a string, got {event_id!r}"])
        stamp = raw["published_at"]
        try:
            when = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(stamp)
        except (TypeError, ValueError):
            raise EventValidationError(
                shown_type, [f"published_at: expected an ISO 8601 timestamp, got {stamp!r}"]
            ) from None
        return cls.create(
            raw["type"], raw["data"], raw.get("metadata"), event_id=event_id, published_at=when
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (self.id, self.type, self.data, self.metadata, self.published_at) == (
            other.id,
            other.type,
            other.data,
            other.metadata,
            other.published_at,
        )

    def __hash__(self) -> int:
        return hash(self.id)
