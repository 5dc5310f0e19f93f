"""The items ``publish_batch`` accepts: the reference's dicts and plain tuples."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mnemo_events._frozen import DEFAULT_MAX_BYTES
from mnemo_events.event import Event
from mnemo_events.exceptions import EventValidationError

__all__ = ["BatchItem", "batch_event", "item_parts"]

BatchItem = Mapping[str, Any] | Sequence[Any]
_KEYS = frozenset({"type", "data", "metadata"})


def item_parts(index: int, item: BatchItem) -> tuple[Any, Any, Any]:
    """``(type, data, metadata)`` of one batch item.

    Raises:
        EventValidationError: the item is neither form; the message names its index.
    """
    if type(item) is dict and "type" in item and item.keys() <= _KEYS:
        return item["type"], item.get("data", {}), item.get("metadata")  # the common case
    if type(item) is tuple and 2 <= len(item) <= 3:  # the other one, before the ABC checks
        return item[0], item[1], item[2] if len(item) == 3 else None
    if isinstance(item, Mapping):
        unknown = set(item) - _KEYS
        if unknown or "type" not in item:
            problem = f"unknown keys {sorted(unknown)}" if unknown else "missing 'type'"
            raise EventValidationError(str(item.get("type", "?")), [f"item {index}: {problem}"])
        return item["type"], item.get("data", {}), item.get("metadata")
    if isinstance(item, Sequence) and not isinstance(item, str) and 2 <= len(item) <= 3:
        return item[0], item[1], item[2] if len(item) == 3 else None
    raise EventValidationError(
        "?",
        [
            f"item {index}: expected a dict with 'type', 'data', 'metadata' "
            f"or a (type, data[, metadata]) tuple, got {item!r}"
        ],
    )


def batch_event(
    index: int,
    item: BatchItem,
    fresh: Callable[[str, Any, Any, int], Event],
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Event:
    """The event of one batch item, built by ``fresh`` as ``publish`` builds it (the bus's
    checked builder when it validates, so a batch takes the same one-walk path).

    Raises:
        EventValidationError, InvalidEventTypeError: as ``publish`` would, with every
            message prefixed by the item's index.
    """
    if type(item) is dict and "type" in item and item.keys() <= _KEYS:  # item_parts, inlined
        event_type, data, metadata = item["type"], item.get("data", {}), item.get("metadata")
    else:
        event_type, data, metadata = item_parts(index, item)
    try:
        return fresh(event_type, data, metadata, max_bytes)
    except EventValidationError as err:
        raise EventValidationError(
            err.event_type, [f"item {index}: {problem}" for problem in err.errors]
        ) from None
    except ValueError as err:
        raise type(err)(f"item {index}: {err}") from None
