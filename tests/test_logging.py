"""Tests of structlog observability: configure_logging, log_events and the library's log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import reactivex
import structlog
from structlog.testing import capture_logs

from mnemo_events._log import library_level, logger, set_library_level
from mnemo_events.config import RetryConfig
from mnemo_events.event import Event
from mnemo_events.event_bus import EventBus
from mnemo_events.logging import configure_logging, get_logger, log_events
from mnemo_events.operators import ElementErrors
from mnemo_events.webhook_manager import WebhookManager
from tests.helpers.receiver import Receiver, Reply, eventually


@pytest.fixture
def debug_logs() -> Iterator[None]:
    """Let the library's debug lines through for one test, then restore the level."""
    level = library_level()
    set_library_level("debug")
    yield
    set_library_level(level)


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    """Undo configure_logging after the test."""
    level = library_level()
    yield
    structlog.reset_defaults()
    set_library_level(level)


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.usefixtures("restore_structlog")
class TestConfigureLogging:
    def test_json_lines_carry_event_level_timestamp_and_fields(self) -> None:
        """json=True writes one JSON object per line with level, UTC ISO timestamp and fields."""
        out = io.StringIO()
        configure_logging(json=True, level="info", stream=out)
        structlog.get_logger().info("app.ready", port=8080)
        (line,) = _json_lines(out)
        assert line["event"] == "app.ready"
        assert line["level"] == "info"
        assert line["port"] == 8080
        assert datetime.fromisoformat(line["timestamp"]).utcoffset() == timedelta(0)

    def test_console_renderer_by_default(self) -> None:
        """Without json, lines are human-readable, not JSON, and name the event and fields."""
        out = io.StringIO()
        configure_logging(stream=out)
        structlog.get_logger().warning("app.slow", seconds=3)
        text = out.getvalue()
        assert "app.slow" in text
        assert "seconds=3" in text
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)

    @pytest.mark.parametrize("as_json", [True, False], ids=["json", "console"])
    def test_tracebacks_carry_no_local_variables(self, as_json: bool) -> None:
        """A logged exception shows its type and stack, never the values of the frames' local
        variables (an API key or a signing secret held by a caller)."""
        out = io.StringIO()
        configure_logging(json=as_json, level="info", stream=out)

        # Built at run time, so a source line the traceback quotes cannot hold them.
        key, secret = "-".join(["key", "in", "an", "argument"]), "_".join(["whsec", "a", "local"])

        def fails(api_key: str) -> None:
            held = secret  # noqa: F841 (a local the renderer must not show)
            raise ValueError("boom")

        try:
            fails(key)
        except ValueError:
            logger("test").exception("app.failed")
        text = out.getvalue()
        assert "app.failed" in text
        assert "ValueError" in text
        assert "fails" in text  # the stack is there
        assert secret not in text
        assert key not in text

    @pytest.mark.parametrize(
        ("level", "shown"),
        [
            ("debug", ["d", "i", "w", "e"]),
            ("info", ["i", "w", "e"]),
            ("WARNING", ["w", "e"]),
            (logging.ERROR, ["e"]),
        ],
    )
    def test_level_filters_application_and_library_lines(
        self, level: str | int, shown: list[str]
    ) -> None:
        """Lines below the level are dropped, for the application's and the library's loggers."""
        out = io.StringIO()
        configure_logging(json=True, level=level, stream=out)
        for name in ("app", "lib"):
            log: Any = structlog.get_logger() if name == "app" else logger("test")
            log.debug("d")
            log.info("i")
            log.warning("w")
            log.error("e")
        events = [line["event"] for line in _json_lines(out)]
        assert events == shown + shown

    def test_sets_the_library_level(self) -> None:
        """configure_logging lowers (or raises) the bar of the library's own loggers."""
        configure_logging(level="debug", stream=io.StringIO())
        assert library_level() == logging.DEBUG
        configure_logging(level="error", stream=io.StringIO())
        assert library_level() == logging.ERROR

    def test_loggers_bound_before_configuration_follow_it(self) -> None:
        """A library logger created before configure_logging writes where it says, as JSON."""
        early = logger("early").bind(request="r1")
        out = io.StringIO()
        configure_logging(json=True, level="info", stream=out)
        early.info("early.line")
        lines = [json.loads(x) for x in out.getvalue().splitlines() if x]
        assert any(x["event"] == "early.line" and x["request"] == "r1" for x in lines)

    def test_unknown_level_is_refused(self) -> None:
        """A misspelt level raises ValueError naming it."""
        with pytest.raises(ValueError, match="loud"):
            configure_logging(level="loud", stream=io.StringIO())


class TestLogEvents:
    def test_logs_each_event_with_id_type_and_agent(self) -> None:
        """Each event is logged as events.observed with event_id, event_type and agent_id."""
        events = [
            Event.create("memory.created", {"memory_id": "m1"}, {"agent_id": "agent-7"}),
            Event.create("gap.detected", {"gap_id": "g"}),
        ]
        passed: list[Event] = []
        with capture_logs() as logs:
            reactivex.from_iterable(events).pipe(log_events()).subscribe(passed.append)
        assert passed == events
        assert logs == [
            {
                "event": "events.observed",
                "log_level": "info",
                "event_id": events[0].id,
                "event_type": "memory.created",
                "agent_id": "agent-7",
            },
            {
                "event": "events.observed",
                "log_level": "info",
                "event_id": events[1].id,
                "event_type": "gap.detected",
                "agent_id": None,
            },
        ]

    def test_uses_the_given_logger_and_level(self) -> None:
        """A given logger's bound values are kept and the chosen level is used."""
        event = Event.create("memory.created", {"memory_id": "m1"}, {"agent_id": "a"})
        with capture_logs() as logs:
            reactivex.of(event).pipe(
                log_events(structlog.get_logger().bind(pipeline="p1"), level="debug")
            ).subscribe()
        assert logs[0]["pipeline"] == "p1"
        assert logs[0]["log_level"] == "debug"
        assert logs[0]["agent_id"] == "a"

    def test_a_failing_logger_does_not_stop_the_events(self) -> None:
        """A logger that raises is counted; the event still goes on."""

        class Broken:
            def bind(self, **values: Any) -> Any:
                raise RuntimeError("no bind")

        errors = ElementErrors()
        event = Event.create("memory.created", {"memory_id": "m1"})
        passed: list[Event] = []
        reactivex.of(event).pipe(log_events(Broken(), errors=errors)).subscribe(passed.append)
        assert passed == [event]
        assert errors.by_stage() == {"log_events": 1}

    def test_unknown_level_is_refused(self) -> None:
        """A misspelt level fails when the step is built."""
        with pytest.raises(ValueError, match="chatty"):
            log_events(level="chatty")


class TestLibraryLines:
    async def test_quiet_below_warning_by_default(self) -> None:
        """Without configuration, publishing writes no log line (debug is filtered)."""
        with capture_logs() as logs:
            async with EventBus() as bus:
                await bus.publish(
                    "memory.created", {"memory_id": "m", "content": "c", "tier": "hot"}
                )
        assert logs == []

    @pytest.mark.usefixtures("debug_logs")
    async def test_publish_logs_bus_published(self) -> None:
        """Publishing logs bus.published at debug with event_id and event_type."""
        with capture_logs() as logs:
            async with EventBus() as bus:
                event = await bus.publish(
                    "memory.created", {"memory_id": "m", "content": "c", "tier": "hot"}
                )
        published = [x for x in logs if x["event"] == "bus.published"]
        assert published == [
            {
                "event": "bus.published",
                "log_level": "debug",
                "component": "bus",
                "event_id": event.id,
                "event_type": "memory.created",
            }
        ]

    @pytest.mark.usefixtures("debug_logs")
    async def test_handler_failure_logs_bus_handler_failed(self) -> None:
        """A raising handler logs bus.handler_failed at error with ids, type and the error."""
        failed = asyncio.Event()

        def handler(event: Event) -> None:
            failed.set()
            raise KeyError("missing")

        with capture_logs() as logs:
            async with EventBus() as bus:
                sub_id = bus.subscribe("memory.*", handler)
                event = await bus.publish(
                    "memory.created", {"memory_id": "m", "content": "c", "tier": "hot"}
                )
                await asyncio.wait_for(failed.wait(), 5)
                await bus.stop()
        (line,) = [x for x in logs if x["event"] == "bus.handler_failed"]
        assert line["log_level"] == "error"
        assert line["subscription_id"] == sub_id
        assert line["event_id"] == event.id
        assert line["event_type"] == "memory.created"
        assert "KeyError" in line["error"]


class TestWebhookLines:
    @pytest.mark.usefixtures("debug_logs")
    async def test_attempt_and_retry_lines(self, tmp_path: Path) -> None:
        """A 500 then a 200 log two webhooks.attempt lines and one webhooks.retry_scheduled."""
        retry = RetryConfig(max_attempts=3, base_delay_seconds=0.01, max_delay_seconds=0.05)
        async with Receiver() as receiver:
            receiver.script("/hook", Reply(500, body=b"down"))
            manager = WebhookManager(
                tmp_path / "webhooks.json",
                allow_private_networks=True,
                delivery_store_path=tmp_path / "deliveries.sqlite3",
                stop_timeout=0.5,
            )
            async with manager:
                hook = await manager.register_webhook(
                    receiver.url("/hook"), ["memory.*"], retry_config=retry
                )
                event = Event.create("memory.created", {"memory_id": "m1"})
                with capture_logs() as logs:
                    manager.deliver(event)
                    await eventually(lambda: any(x["event"] == "webhooks.delivered" for x in logs))
        attempts = [x for x in logs if x["event"] == "webhooks.attempt"]
        (scheduled,) = [x for x in logs if x["event"] == "webhooks.retry_scheduled"]
        assert [(x["attempt"], x["status_code"], x["outcome"]) for x in attempts] == [
            (1, 500, "retry"),
            (2, 200, "success"),
        ]
        for line in [*attempts, scheduled]:
            assert line["webhook_id"] == hook.id
            assert line["event_id"] == event.id
            assert line["delivery_id"] == attempts[0]["delivery_id"]
            assert line["latency_ms"] >= 0
        assert attempts[0]["log_level"] == "debug"
        assert (scheduled["log_level"], scheduled["attempt"], scheduled["status_code"]) == (
            "info",
            1,
            500,
        )
        assert scheduled["retry_in"] == 0.01  # base_delay_seconds, no jitter
        assert scheduled["error"]


def test_get_logger_is_the_quiet_library_logger() -> None:
    """get_logger's info lines are dropped until the library level allows them."""
    log = get_logger("ext", part="x")
    with capture_logs() as logs:
        log.info("ext.hidden")
        set_library_level("info")
        log.info("ext.shown")
    assert logs == [{"event": "ext.shown", "log_level": "info", "component": "ext", "part": "x"}]


@pytest.fixture
def unconfigured_structlog() -> Iterator[None]:
    """structlog as an application that never configured it has it (other tests may have)."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


_STDLIB_SCRIPT = """
import asyncio, logging, sys
{setup}
from mnemo_events.event_bus import EventBus

async def main():
    async with EventBus(enabled=False) as bus:
        await bus.publish("memory.created", {{"memory_id": "m", "content": "c", "tier": "hot"}})

asyncio.run(main())
"""


def _run_script(setup: str) -> subprocess.CompletedProcess[str]:
    code = _STDLIB_SCRIPT.format(setup=setup)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )


class TestStandardLibraryLogging:
    def test_basic_config_at_info_shows_the_librarys_info_lines(self) -> None:
        """After logging.basicConfig(level=INFO) the library's info lines reach that handler."""
        done = _run_script("logging.basicConfig(level=logging.INFO, format='%(name)s|%(message)s')")
        assert "mnemo_events.bus|bus.started" in done.stderr
        assert "mnemo_events.bus|bus.disabled" in done.stderr
        assert done.stdout == ""

    def test_unconfigured_shows_warnings_only_and_never_on_stdout(self) -> None:
        """Unconfigured, warnings go to stderr, info lines nowhere, and stdout stays empty."""
        done = _run_script("")
        assert "bus.disabled" in done.stderr
        assert "bus.started" not in done.stderr
        assert done.stdout == ""

    @pytest.mark.usefixtures("unconfigured_structlog")
    def test_lines_carry_fields_for_handlers(self, caplog: pytest.LogCaptureFixture) -> None:
        """A stdlib record names the component's logger and carries the event and its fields."""
        caplog.set_level(logging.INFO, logger="mnemo_events")
        logger("webhooks").info("webhooks.test_line", webhook_id="wh_1", note="two words")
        (record,) = [r for r in caplog.records if r.name.startswith("mnemo_events")]
        assert record.name == "mnemo_events.webhooks"
        assert record.levelno == logging.INFO
        assert record.getMessage() == (
            "webhooks.test_line component=webhooks webhook_id=wh_1 note='two words'"
        )
        assert getattr(record, "mnemo_event", None) == "webhooks.test_line"
        assert getattr(record, "mnemo_fields", {}).get("webhook_id") == "wh_1"
        assert record.pathname == __file__  # the caller, not the library's plumbing

    @pytest.mark.usefixtures("unconfigured_structlog")
    def test_stdlib_level_filters_without_configure_logging(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Below the stdlib logger's level nothing is emitted; at it, lines pass."""
        caplog.set_level(logging.ERROR, logger="mnemo_events")
        log = logger("bus")
        log.info("quiet.info")
        log.warning("quiet.warning")
        log.error("loud.error")
        assert [r.getMessage().split()[0] for r in caplog.records] == ["loud.error"]

    @pytest.mark.usefixtures("unconfigured_structlog")
    def test_exceptions_keep_their_traceback(self, caplog: pytest.LogCaptureFixture) -> None:
        """An exception logged through the stdlib route keeps its traceback (without locals)."""
        caplog.set_level(logging.ERROR, logger="mnemo_events")
        try:
            raise RuntimeError("boom")
        except RuntimeError as err:
            logger("bus").error("bus.handler_failed", exc_info=err)
        (record,) = caplog.records
        assert record.exc_info is not None
        assert record.exc_info[0] is RuntimeError


class TestRoundedFloats:
    @pytest.mark.usefixtures("debug_logs")
    def test_float_fields_are_rounded(self) -> None:
        """Float fields keep three decimals; ints, strings and timestamps stay as they are."""
        with capture_logs() as logs:
            logger("webhooks").info(
                "webhooks.retry_scheduled",
                retry_in=0.22923892017164815,
                attempt=2,
                at=1.7e9 + 0.12345,
            )
        (line,) = logs
        assert line["retry_in"] == 0.229
        assert line["attempt"] == 2
        assert line["at"] == 1_700_000_000.123
