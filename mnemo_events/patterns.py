"""The grammar of event types and subscription patterns, parsed once and cached.

An event type is one or more dot-separated segments of letters, digits, ``_`` and ``-``
(``memory.created``). A pattern uses the same segments plus two wildcards, with NATS subject
semantics:

- ``*`` matches exactly one segment: ``memory.*`` matches ``memory.created``, not ``memory``
  nor ``memory.a.b``;
- ``>`` (alias ``**``), only as the last segment, matches one or more segments;
- a bare ``*``, ``>`` or ``**`` matches every event.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from mnemo_events.exceptions import InvalidEventTypeError, InvalidPatternError

__all__ = [
    "Pattern",
    "TypeCache",
    "matcher",
    "parse_pattern",
    "pattern_matches",
    "validate_event_type",
]

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*")
_MAX_LENGTH = 255
_CATCH_ALL = frozenset({"*", ">", "**"})


@dataclass(frozen=True, slots=True)
class Pattern:
    """A parsed subscription pattern."""

    text: str
    segments: tuple[str, ...]
    """Literal segments and ``*``; a trailing ``>`` is dropped and recorded in ``tail``."""
    tail: bool
    """True when the pattern ends in ``>``: one or more further segments match."""
    catch_all: bool

    def matches(self, event_type: str) -> bool:
        """Whether an (already valid) event type matches this pattern."""
        if self.catch_all:
            return True
        parts = event_type.split(".")
        count = len(self.segments)
        if len(parts) < count + self.tail or (not self.tail and len(parts) != count):
            return False
        return all(
            seg == "*" or seg == part for seg, part in zip(self.segments, parts, strict=False)
        )

    def to_nats_subject(self, prefix: str = "") -> str:
        """The NATS subject with the same meaning (``**`` and a bare ``*`` become ``>``)."""
        body = ">" if self.catch_all else ".".join(self.segments + ((">",) if self.tail else ()))
        return f"{prefix}.{body}" if prefix else body


def _check_length(text: str, what: str, error: type[ValueError]) -> None:
    if not text:
        raise error(f"{what} is empty")
    if len(text) > _MAX_LENGTH:
        raise error(f"{what} {text[:40]!r}... is longer than {_MAX_LENGTH} characters")


@lru_cache(maxsize=4096)
def validate_event_type(event_type: str) -> str:
    """Return ``event_type`` if it is a well-formed dotted name, else raise.

    Raises:
        InvalidEventTypeError: the message names the type and the offending segment.
    """
    if not isinstance(event_type, str):
        raise InvalidEventTypeError(f"event type must be a str, not {type(event_type).__name__}")
    _check_length(event_type, "event type", InvalidEventTypeError)
    for index, segment in enumerate(event_type.split(".")):
        if not _SEGMENT.fullmatch(segment):
            shown = segment or "(empty)"
            raise InvalidEventTypeError(
                f"invalid event type {event_type!r}: segment {index + 1} {shown!r} must be "
                "letters, digits, '_' or '-' (wildcards belong in subscription patterns)"
            )
    return event_type


@lru_cache(maxsize=4096)
def parse_pattern(pattern: str) -> Pattern:
    """Parse and cache a subscription pattern.

    Raises:
        InvalidPatternError: the message names the pattern and what is wrong with it.
    """
    if not isinstance(pattern, str):
        raise InvalidPatternError(f"pattern must be a str, not {type(pattern).__name__}")
    _check_length(pattern, "pattern", InvalidPatternError)
    if pattern in _CATCH_ALL:
        return Pattern(pattern, (), tail=True, catch_all=True)
    parts = pattern.split(".")
    segments: list[str] = []
    tail = False
    for index, segment in enumerate(parts):
        where = f"invalid pattern {pattern!r}: segment {index + 1}"
        if segment in (">", "**"):
            if index != len(parts) - 1:
                raise InvalidPatternError(f"{where} {segment!r} is only allowed as the last one")
            tail = True
        elif segment == "*" or _SEGMENT.fullmatch(segment):
            segments.append(segment)
        else:
            shown = segment or "(empty)"
            raise InvalidPatternError(
                f"{where} {shown!r} must be a name, '*' (one segment) or a final '>' "
                "(one or more segments); partial wildcards such as 'mem*' are not supported"
            )
    return Pattern(pattern, tuple(segments), tail=tail, catch_all=False)


def pattern_matches(pattern: str, event_type: str) -> bool:
    """Whether ``event_type`` matches ``pattern`` (both validated)."""
    return parse_pattern(pattern).matches(validate_event_type(event_type))


class TypeCache:
    """A bounded memo of one yes/no decision per event type: the library's one match cache.

    Whether a pattern (or a webhook's patterns, or the type grammar) accepts an event type
    never changes, and a system has few event types, so each decision is computed once and
    then costs one dictionary lookup. Past ``limit`` distinct types (a flood of random types)
    the memo starts over instead of growing.
    """

    __slots__ = ("_decide", "_known", "_limit")

    def __init__(self, decide: Callable[[str], bool], *, limit: int = 4096) -> None:
        self._decide = decide
        self._known: dict[str, bool] = {}
        self._limit = limit

    def __call__(self, event_type: str) -> bool:
        """The decision for ``event_type``, computed on first sight."""
        known = self._known.get(event_type)
        if known is None:
            if len(self._known) >= self._limit:
                self._known.clear()
            known = self._known[event_type] = self._decide(event_type)
        return known

    def __len__(self) -> int:
        return len(self._known)

    def clear(self) -> None:
        """Forget every decision (when what decides has changed)."""
        self._known.clear()


def matcher(pattern: str) -> TypeCache:
    """A cached ``event_type -> bool`` test for one pattern.

    Raises:
        InvalidPatternError: the pattern is malformed.
    """
    return TypeCache(parse_pattern(pattern).matches)
