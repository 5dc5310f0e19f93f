"""The pattern grammar: wildcards with NATS semantics, and well-formed event types."""

from __future__ import annotations

import pytest

from mnemo_events.exceptions import InvalidEventTypeError, InvalidPatternError
from mnemo_events.patterns import (
    TypeCache,
    matcher,
    parse_pattern,
    pattern_matches,
    validate_event_type,
)

MATCHES = [
    ("memory.created", "memory.created", True),
    ("memory.created", "memory.deleted", False),
    ("memory.*", "memory.created", True),
    ("memory.*", "memory", False),
    ("memory.*", "memory.a.b", False),
    ("memory.*", "dream.started", False),
    ("*.created", "memory.created", True),
    ("*.created", "memory.deleted", False),
    ("*.*", "memory.created", True),
    ("*.*", "memory", False),
    ("memory.>", "memory.created", True),
    ("memory.>", "memory.a.b", True),
    ("memory.>", "memory", False),
    ("memory.**", "memory.a.b", True),
    ("memory.**", "memory", False),
    ("*.>", "a.b.c", True),
    ("*.>", "a", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.b.d", False),
    ("*", "memory.created", True),
    ("*", "memory", True),
    (">", "a.b.c", True),
    ("**", "x", True),
    ("memory", "memory", True),
    ("memory", "memory.created", False),
]


@pytest.mark.parametrize(("pattern", "event_type", "expected"), MATCHES)
def test_pattern_matching_table(pattern: str, event_type: str, expected: bool) -> None:
    """Each pattern matches exactly the event types of the grammar's table."""
    assert pattern_matches(pattern, event_type) is expected


BAD_PATTERNS = [
    ("", "empty"),
    ("memory..created", "segment 2"),
    (".memory", "segment 1"),
    ("memory.", "segment 2"),
    ("mem*", "partial wildcards"),
    ("memory.cre*ted", "partial wildcards"),
    ("memory created", "segment 1"),
    (" memory.*", "segment 1"),
    ("memory.>.x", "only allowed as the last"),
    ("**.x", "only allowed as the last"),
    ("a.>.>", "only allowed as the last"),
    ("x" * 300, "longer than"),
]


@pytest.mark.parametrize(("pattern", "message"), BAD_PATTERNS)
def test_malformed_patterns_are_refused_with_their_name(pattern: str, message: str) -> None:
    """A malformed pattern raises InvalidPatternError (a ValueError) naming it and the fault."""
    with pytest.raises(InvalidPatternError, match=message) as info:
        parse_pattern(pattern)
    assert isinstance(info.value, ValueError)
    if pattern and len(pattern) < 100:
        assert repr(pattern) in str(info.value)


def test_non_string_pattern_is_refused() -> None:
    """A pattern that is not a string is refused with its type named."""
    with pytest.raises(InvalidPatternError, match="int"):
        parse_pattern(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "event_type", ["memory.created", "heartbeat", "a.b.c.d", "gap_2.filled-x", "A1.B2"]
)
def test_well_formed_event_types_pass(event_type: str) -> None:
    """Dotted names of letters, digits, '_' and '-' are valid event types."""
    assert validate_event_type(event_type) == event_type


@pytest.mark.parametrize(
    ("event_type", "message"),
    [
        ("", "empty"),
        ("memory.*", "wildcards belong"),
        ("memory.>", "wildcards belong"),
        ("memory..x", "segment 2"),
        ("memory created", "segment 1"),
        ("memory.", "segment 2"),
        ("-memory", "segment 1"),
        ("$sys.x", "segment 1"),
    ],
)
def test_malformed_event_types_are_refused(event_type: str, message: str) -> None:
    """A malformed event type raises InvalidEventTypeError naming the offending segment."""
    with pytest.raises(InvalidEventTypeError, match=message):
        validate_event_type(event_type)


@pytest.mark.parametrize(
    ("pattern", "subject"),
    [("memory.*", "memory.*"), ("memory.**", "memory.>"), ("*", ">"), ("a.>", "a.>")],
)
def test_patterns_map_onto_nats_subjects(pattern: str, subject: str) -> None:
    """Every pattern has the NATS subject with the same meaning."""
    assert parse_pattern(pattern).to_nats_subject() == subject
    assert parse_pattern(pattern).to_nats_subject("events") == f"events.{subject}"


class TestTypeCache:
    def test_decides_once_per_type(self) -> None:
        """Each event type's decision is computed once, then read from the memo."""
        asked: list[str] = []

        def decide(event_type: str) -> bool:
            asked.append(event_type)
            return event_type.startswith("memory.")

        cache = TypeCache(decide)
        results = [cache(t) for t in ["memory.created", "dream.started", "memory.created"] * 3]
        assert results == [True, False, True] * 3
        assert asked == ["memory.created", "dream.started"]
        cache.clear()
        assert cache("memory.created")
        assert asked[-1] == "memory.created"

    def test_stays_bounded_under_a_flood_of_types(self) -> None:
        """Past its limit the memo starts over instead of growing."""
        cache = TypeCache(lambda t: True, limit=10)
        for n in range(100):
            cache(f"t.n{n}")
        assert len(cache) <= 10

    @pytest.mark.parametrize(("pattern", "event_type", "expected"), MATCHES)
    def test_matcher_agrees_with_the_pattern(
        self, pattern: str, event_type: str, expected: bool
    ) -> None:
        """matcher(pattern) gives the same answers as Pattern.matches."""
        assert matcher(pattern)(event_type) is expected
