"""The library loggers: level decided once, is_enabled_for, first-and-every-Nth lines."""

from __future__ import annotations

import logging

import structlog
from structlog.testing import capture_logs

from mnemo_events._log import logger, set_library_level


def test_methods_below_the_level_drop_lines_and_say_so() -> None:
    """Below the library level a line is dropped and is_enabled_for answers False."""
    log = logger("bus")
    set_library_level("warning")
    assert not log.is_enabled_for(logging.DEBUG)
    assert log.is_enabled_for(logging.ERROR)
    with capture_logs() as logs:
        log.debug("bus.published", n=1)
        log.info("bus.started")
        log.warning("bus.queue_full")
    assert [line["event"] for line in logs] == ["bus.queue_full"]
    set_library_level("debug")
    assert log.is_enabled_for(logging.DEBUG)
    with capture_logs() as logs:
        log.debug("bus.published", n=1)
    assert logs == [{"event": "bus.published", "component": "bus", "n": 1, "log_level": "debug"}]


def test_warning_every_warns_on_the_first_and_every_nth() -> None:
    """warning_every logs occurrences 1, N, 2N at warning and the rest at debug."""
    set_library_level("debug")
    log = logger("integration")
    with capture_logs() as logs:
        for count in range(1, 8):
            log.warning_every(count, 3, "integration.emit_failed", failures=count)
    levels = [(line["failures"], line["log_level"]) for line in logs]
    assert levels == [
        (1, "warning"),
        (2, "debug"),
        (3, "warning"),
        (4, "debug"),
        (5, "debug"),
        (6, "warning"),
        (7, "debug"),
    ]


def test_is_enabled_for_below_the_level_follows_stdlib_until_structlog_is_configured() -> None:
    """Below the library level a line is wanted when stdlib logging wants it, structlog unset."""
    log = logger("bus")
    set_library_level("warning")
    stdlib = logging.getLogger("mnemo_events")
    before = stdlib.level
    try:
        stdlib.setLevel(logging.INFO)
        assert not log.is_enabled_for(logging.DEBUG)
        stdlib.setLevel(logging.DEBUG)  # logging's cache is cleared: the answer follows at once
        assert log.is_enabled_for(logging.DEBUG)
        structlog.configure()  # then structlog's own filtering decides: the library drops it
        assert not log.is_enabled_for(logging.DEBUG)
        assert log.is_enabled_for(logging.WARNING)
    finally:
        stdlib.setLevel(before)
        structlog.reset_defaults()
