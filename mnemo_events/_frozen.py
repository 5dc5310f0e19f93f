"""Read-only JSON containers, so one handler cannot change what the others see.

An event's payload is copied once, at publish, into these ``dict``/``list`` subclasses. They
compare equal to plain containers, serialise with :mod:`json` as they are, and refuse every
mutating method. ``copy()`` hands back a plain, mutable shallow copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

__all__ = ["FrozenDict", "FrozenList", "freeze", "thaw"]

_SCALARS = (str, int, float, bool, type(None))
_PLAIN_SCALARS = frozenset({str, int, bool, type(None)})


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


def freeze(value: Any, path: str) -> Any:
    """Deep-copy a JSON-compatible value into read-only containers.

    Raises:
        TypeError: a key is not a string or a value is not JSON-compatible; the message names
            its path (``data.tags[2]``).
    """
    kind = type(value)
    if kind is dict:
        # The common flat payload: check it once and copy it once (publish's hot path).
        for key, item in value.items():
            if type(key) is not str or type(item) not in _PLAIN_SCALARS:
                break
        else:
            return FrozenDict(value)
    if kind is dict or isinstance(value, Mapping):
        frozen: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise TypeError(f"{path} has a non-string key {key!r}")
            frozen[key] = item if type(item) in _PLAIN_SCALARS else freeze(item, f"{path}.{key}")
        return FrozenDict(frozen)
    if isinstance(value, _SCALARS):
        if isinstance(value, float) and value != value:
            raise TypeError(f"{path} is NaN, which JSON cannot carry")
        return value
    if isinstance(value, list | tuple):
        return FrozenList(freeze(item, f"{path}[{i}]") for i, item in enumerate(value))
    raise TypeError(
        f"{path} is a {type(value).__name__}, which JSON cannot carry "
        "(use str, int, float, bool, None, lists and dicts; e.g. datetime.isoformat())"
    )


def thaw(value: Any) -> Any:
    """A deep, plain, mutable copy of a frozen value."""
    if isinstance(value, dict):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list):
        return [thaw(item) for item in value]
    return value
