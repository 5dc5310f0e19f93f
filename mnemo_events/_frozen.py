"""Read-only JSON containers, so one handler cannot change what the others see.

An event's payload is copied once, at publish, into these ``dict``/``list`` subclasses. They
compare equal to plain containers, serialise with :mod:`json` as they are, and refuse every
mutating method. ``copy()`` hands back a plain, mutable shallow copy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

__all__ = [
    "DEFAULT_MAX_BYTES",
    "INT_MAX",
    "INT_MIN",
    "MAX_DEPTH",
    "PER_CHAR",
    "PER_ITEM",
    "FrozenDict",
    "FrozenList",
    "freeze",
    "thaw",
]


def _refuse(self: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(
        f"{type(self).__name__} is read-only: an event's data is shared by every subscriber; "
        "copy it first (e.g. dict(event.data) or event.to_dict())"
    )


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses mutation."""

    __slots__ = ()
    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def copy(self) -> dict[str, Any]:
        """A plain, mutable shallow copy."""
        return dict(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda kv: kv[0])))


class FrozenList(list[Any]):
    """A ``list`` that refuses mutation."""

    __slots__ = ()
    __setitem__ = __delitem__ = append = extend = insert = pop = remove = _refuse
    clear = sort = reverse = __iadd__ = __imul__ = _refuse

    def copy(self) -> list[Any]:
        """A plain, mutable shallow copy."""
        return list(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))


MAX_DEPTH = 64
"""Containers nested deeper than this (a payload's own dict is level 1) are refused."""
DEFAULT_MAX_BYTES = 1_048_576
"""Default bound on the UTF-8 JSON size of ``data`` (and of ``metadata``), in bytes."""
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
"""Integers outside [INT_MIN, INT_MAX] (int64 and uint64) are refused: few JSON parsers
read them exactly, and a 5,000-digit one cannot even be printed by default."""

# An upper bound on the JSON bytes of a value, used to skip exact encoding for every payload
# of ordinary size: a character takes at most 6 bytes (a \u00XX escape; UTF-8 needs at most
# 4), and a member or item at most PER_ITEM bytes besides its strings (quotes, colon, comma
# and a number or literal).
PER_CHAR = 6
PER_ITEM = 32


def _check_text(text: str, path: str) -> None:
    """Refuse a string that is not valid UTF-8: one holding a lone surrogate."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise TypeError(
            f"{path} holds a lone surrogate (\\u{ord(text[err.start]):04x} at index "
            f"{err.start}), which is not valid UTF-8 JSON"
        ) from None


def _check_number(value: int | float, path: str) -> None:
    if isinstance(value, float):
        if value != value:
            raise TypeError(f"{path} is NaN, which JSON cannot carry")
        if value in (_INF, -_INF):
            raise TypeError(f"{path} is {value}, which JSON cannot carry (1e999 overflows)")
    elif not INT_MIN <= value <= INT_MAX:
        # str() of a huge int is quadratic and refused past 4,300 digits: estimate instead.
        digits = int(value.bit_length() * 0.30103) + 1
        raise TypeError(
            f"{path} is an integer of about {digits} digits, outside the range JSON parsers read "
            f"exactly ({INT_MIN} to {INT_MAX}); send it as a string"
        )


_INF = float("inf")


def freeze(value: Any, path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Deep-copy a value into read-only containers, accepting only strict RFC 8259 JSON.

    Refused, with a message naming the path (``data.tags[2]``): a non-string key, a value
    that is not str, int, float, bool, None, list, tuple or dict; NaN and infinities; a
    string with a lone surrogate; an integer outside int64/uint64; containers nested more
    than :data:`MAX_DEPTH` levels (a self-referencing dict among them); and a value whose
    JSON would exceed ``max_bytes`` UTF-8 bytes. Each check is linear in the payload and
    never recurses past the depth bound, so a hostile payload fails in milliseconds.

    Raises:
        TypeError: the value is not such JSON; the message names the path and the reason.
    """
    kind = type(value)
    if kind is dict:
        # The common flat payload of ASCII strings, small ints, finite floats, bools and
        # None: checked in one pass and copied once (publish's hot path).
        chars = 0
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                break
            item_kind = type(item)
            if item_kind is str:
                if not item.isascii():
                    break
                chars += len(item)
            elif item_kind is int:
                if not INT_MIN <= item <= INT_MAX:
                    break
            elif item_kind is float:
                if item - item != 0:  # NaN or an infinity: the general path names it
                    break
            elif item_kind is not bool and item is not None:
                break
            chars += len(key)
        else:
            if (chars * PER_CHAR + len(value) * PER_ITEM) > max_bytes:
                _check_size(value, path, max_bytes)
            return FrozenDict(value)
    budget = [0]
    frozen = _freeze(value, path, 1, budget)
    if budget[0] > max_bytes:
        _check_size(frozen, path, max_bytes)
    return frozen


def _check_size(value: Any, path: str, max_bytes: int) -> None:
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > max_bytes:
        raise TypeError(
            f"{path} is {size} bytes of JSON, over the limit of {max_bytes} "
            "(events.max_payload_bytes)"
        )


def _freeze(value: Any, path: str, depth: int, budget: list[int]) -> Any:
    """The checked deep copy; ``budget[0]`` accumulates an upper bound of the JSON size."""
    kind = type(value)
    if kind is str or isinstance(value, str):
        _check_text(value, path)
        budget[0] += len(value) * PER_CHAR + PER_ITEM
        return value
    if kind is bool or value is None:
        budget[0] += PER_ITEM
        return value
    if isinstance(value, int | float):
        _check_number(value, path)
        budget[0] += PER_ITEM
        return value
    if kind is dict or isinstance(value, Mapping):
        if depth > MAX_DEPTH:
            raise _too_deep(path)
        frozen: dict[str, Any] = {}
        chars = 0
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise TypeError(f"{path} has a non-string key {key!r}")
            if not key.isascii():
                _check_text(key, f"a key of {path}")
            chars += len(key)
            item_kind = type(item)
            # Plain scalars inline: no call and no path string for most members.
            if item_kind is str and item.isascii():
                chars += len(item)
                frozen[key] = item
            elif (
                item_kind is bool
                or item is None
                or (item_kind is int and INT_MIN <= item <= INT_MAX)
            ):
                frozen[key] = item
            else:
                frozen[key] = _freeze(item, f"{path}.{key}", depth + 1, budget)
        budget[0] += chars * PER_CHAR + (len(frozen) + 1) * PER_ITEM
        return FrozenDict(frozen)
    if isinstance(value, list | tuple):
        if depth > MAX_DEPTH:
            raise _too_deep(path)
        budget[0] += PER_ITEM
        return FrozenList(
            _freeze(item, f"{path}[{i}]", depth + 1, budget) for i, item in enumerate(value)
        )
    raise TypeError(
        f"{path} is a {type(value).__name__}, which JSON cannot carry "
        "(use str, int, float, bool, None, lists and dicts; e.g. datetime.isoformat())"
    )


def _too_deep(path: str) -> TypeError:
    shown = path if len(path) <= 80 else f"{path[:60]}...{path[-15:]}"
    return TypeError(
        f"{shown} is nested deeper than {MAX_DEPTH} levels (or refers to itself), "
        "which this bus does not carry"
    )


def thaw(value: Any) -> Any:
    """A deep, plain, mutable copy of a frozen value."""
    if isinstance(value, dict):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list):
        return [thaw(item) for item in value]
    return value
