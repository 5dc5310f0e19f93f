"""Tests of the pure retry schedule: the reference's table, caps, jitter and Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mnemo_events.config import RetryConfig
from mnemo_events.webhooks.backoff import parse_retry_after, retry_delay, schedule


class TestRetryDelay:
    @pytest.mark.parametrize(
        ("retry_number", "expected"),
        [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0), (9, 256.0), (10, 300.0), (99, 300.0)],
    )
    def test_reference_table(self, retry_number: int, expected: float) -> None:
        """The delay doubles from base_delay and is capped at max_delay (the reference's table)."""
        assert retry_delay(retry_number, RetryConfig()) == expected

    def test_schedule_has_one_delay_per_retry(self) -> None:
        """max_attempts counts the first attempt, so there are max_attempts - 1 delays."""
        config = RetryConfig(max_attempts=5, base_delay_seconds=0.5, max_delay_seconds=3.0)
        assert schedule(config) == [0.5, 1.0, 2.0, 3.0]
        assert schedule(RetryConfig(max_attempts=1)) == []

    def test_huge_retry_numbers_do_not_overflow(self) -> None:
        """A very late retry still gives the cap, not an overflow."""
        assert retry_delay(5000, RetryConfig(max_attempts=100)) == 300.0

    @pytest.mark.parametrize(
        ("unit", "expected"), [(0.0, 3.2), (0.5, 4.0), (0.999999, 4.8)], ids=["low", "mid", "high"]
    )
    def test_jitter_spreads_within_the_fraction(self, unit: float, expected: float) -> None:
        """jitter=0.2 multiplies the delay by a factor in [0.8, 1.2]."""
        config = RetryConfig(jitter=0.2)
        assert retry_delay(3, config, random_unit=lambda: unit) == pytest.approx(expected, rel=1e-5)

    def test_jitter_never_exceeds_the_cap(self) -> None:
        """A jittered delay stays at or below max_delay."""
        config = RetryConfig(max_delay_seconds=10.0, jitter=0.5)
        assert retry_delay(8, config, random_unit=lambda: 0.99) == 10.0

    @pytest.mark.parametrize(
        ("retry_after", "expected"), [(0.0, 0.0), (7.0, 7.0), (10_000.0, 300.0), (-3.0, 0.0)]
    )
    def test_retry_after_replaces_the_schedule_up_to_the_cap(
        self, retry_after: float, expected: float
    ) -> None:
        """Retry-After is honoured as given, capped at max_delay, never negative."""
        assert retry_delay(1, RetryConfig(), retry_after=retry_after) == expected

    def test_retry_number_starts_at_one(self) -> None:
        """Retry 0 does not exist."""
        with pytest.raises(ValueError, match="starts at 1"):
            retry_delay(0, RetryConfig())


class TestParseRetryAfter:
    NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("120", 120.0),
            (" 5 ", 5.0),
            ("0", 0.0),
            ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
            ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),
            ("-5", None),
            ("1.5", None),
            ("soon", None),
            ("", None),
            (None, None),
        ],
    )
    def test_values(self, value: str | None, expected: float | None) -> None:
        """Delta-seconds and HTTP dates parse; anything else gives None (use the schedule)."""
        assert parse_retry_after(value, now=self.NOW) == expected

    def test_date_uses_the_clock_by_default(self) -> None:
        """Without `now`, an HTTP date a minute ahead gives about 60 seconds."""
        ahead = datetime.now(UTC) + timedelta(seconds=61)
        value = ahead.strftime("%a, %d %b %Y %H:%M:%S GMT")
        parsed = parse_retry_after(value)
        assert parsed is not None
        assert 55 <= parsed <= 61
