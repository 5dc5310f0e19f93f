"""Small views for code written against MnemoCore's ``mnemocore.events``.

Records here are frozen dataclasses; MnemoCore handed out dicts. :class:`MnemoCoreKeys` lets a
record be read both ways (``info.errors`` and ``info["error_count"]``) without a second
record type: the keys are computed from the record's own fields on each read.
"""

from __future__ import annotations

from collections.abc import KeysView
from typing import Any

__all__ = ["MnemoCoreKeys"]


class MnemoCoreKeys:
    """Mixin: read a record as a read-only mapping with MnemoCore's keys and its own.

    Subclasses define :meth:`_mnemocore_items`. ``record[key]``, ``record.get(key)``,
    ``key in record``, ``record.keys()`` and ``dict(record)`` work; the attributes stay the
    primary, typed interface.
    """

    __slots__ = ()

    def _mnemocore_items(self) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        items = self._mnemocore_items()
        try:
            return items[key]
        except KeyError:
            raise KeyError(
                f"{type(self).__name__} has no key {key!r}; it has {sorted(items)}"
            ) from None

    def get(self, key: str, default: Any = None) -> Any:
        """The value for ``key``, or ``default``."""
        return self._mnemocore_items().get(key, default)

    def keys(self) -> KeysView[str]:
        """Every key, MnemoCore's and this record's own."""
        return self._mnemocore_items().keys()

    def __contains__(self, key: object) -> bool:
        return key in self._mnemocore_items()
