"""The retry schedule of a webhook: pure functions of the attempt number and the response.

The delay before retry ``n`` (``n >= 1``, so before attempt ``n + 1``) is::

    min(base_delay_seconds * 2 ** (n - 1), max_delay_seconds)

then, with ``jitter = j > 0``, multiplied by a factor drawn uniformly from ``[1 - j, 1 + j]``
and clamped into ``[0, max_delay_seconds]``. A ``Retry-After`` answer (429 or 503) replaces the
computed delay and is capped at ``max_delay_seconds``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from mnemo_events.config import RetryConfig

__all__ = ["RETRY_AFTER_STATUSES", "parse_retry_after", "retry_delay", "schedule"]

RETRY_AFTER_STATUSES = frozenset({429, 503})
"""Statuses whose ``Retry-After`` header is honoured."""


def retry_delay(
    retry_number: int,
    config: RetryConfig,
    *,
    retry_after: float | None = None,
    random_unit: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry ``retry_number`` (1 for the first retry).

    Args:
        retry_number: 1 before the second attempt, 2 before the third, ...
        config: the webhook's retry settings.
        retry_after: seconds the endpoint asked for, if it did; capped at the maximum.
        random_unit: a source of floats in ``[0, 1)`` for the jitter (tests pass a fixed one).
    """
    if retry_number < 1:
        raise ValueError(f"retry_number starts at 1, got {retry_number}")
    if retry_after is not None:
        return min(max(retry_after, 0.0), config.max_delay_seconds)
    # Cap the exponent: 2**1100 overflows a float long before max_attempts=100 could matter.
    delay = min(
        config.base_delay_seconds * 2.0 ** min(retry_number - 1, 60), config.max_delay_seconds
    )
    if config.jitter > 0:
        factor = 1.0 + config.jitter * (2.0 * random_unit() - 1.0)
        delay = min(max(delay * factor, 0.0), config.max_delay_seconds)
    return delay


def schedule(config: RetryConfig) -> list[float]:
    """The un-jittered delays before each retry: ``max_attempts - 1`` values."""
    plain = config.model_copy(update={"jitter": 0.0})
    return [retry_delay(n, plain) for n in range(1, config.max_attempts)]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), else ``None``.

    A date in the past gives ``0.0``; anything unparseable gives ``None`` (the computed backoff
    applies).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC) if now is None else now
    return max((when - current).total_seconds(), 0.0)
