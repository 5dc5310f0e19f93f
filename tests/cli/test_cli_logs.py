"""The CLI's log output: options before the command, whole lines beside a live progress line."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from mnemo_events.cli import main
from mnemo_events.cli._render import LogStream, Progress


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """main() configures structlog for its process; undo that after in-process calls."""
    yield
    structlog.reset_defaults()


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, so the progress line is redrawn in place."""

    def isatty(self) -> bool:
        return True


def _visible_lines(text: str) -> list[str]:
    """What a terminal shows: per line, the text after the last carriage return, uncoloured."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return [line.rsplit("\r", 1)[-1].replace("\x1b[K", "") for line in plain.split("\n")]


class TestLogStream:
    def test_log_lines_clear_and_redraw_the_progress_line(self) -> None:
        """A log line written while a progress line is drawn replaces it, then it is redrawn."""
        terminal = _Terminal()
        progress = Progress(terminal, lambda: "emitted 10/100")
        progress.tick()
        stream = LogStream(terminal)
        stream.write("2026-01-01 [info] webhooks.attempt retry_in=0.229")
        stream.write("\n")
        progress.close()
        lines = _visible_lines(terminal.getvalue())
        assert lines == [
            "2026-01-01 [info] webhooks.attempt retry_in=0.229",
            "emitted 10/100",
            "",
        ]

    def test_without_progress_lines_pass_through(self) -> None:
        """With no progress line drawn, log lines are written unchanged, whole."""
        out = io.StringIO()
        stream = LogStream(out)
        stream.write("one\ntwo")
        assert out.getvalue() == "one\n"
        stream.write("\n")
        assert out.getvalue() == "one\ntwo\n"


class TestDemoLogs:
    @pytest.mark.slow
    def test_info_logs_never_break_the_progress_line(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`--log-level info demo` on a terminal: every log line starts its own line."""
        terminal = _Terminal()
        monkeypatch.setattr("sys.stderr", terminal)
        monkeypatch.chdir(tmp_path)
        code = main(
            ["--log-level", "info", "demo", "--events", "60", "--rate", "0", "--seed", "3",
             "--error-share", "0.3"]
        )  # fmt: skip
        assert code == 0, terminal.getvalue()[-2000:]
        lines = [line for line in _visible_lines(terminal.getvalue()) if line.strip()]
        logged = [line for line in lines if re.search(r"\[\s*(info|warning|error)\s*\]", line)]
        assert logged, lines[:20]
        for line in logged:  # a log line starts with its timestamp, never after progress text
            assert re.match(r"^\d{4}-\d\d-\d\dT", line), line
        retries = [line for line in logged if "retry_in=" in line]
        for line in retries:
            value = re.search(r"retry_in=([0-9.]+)", line)
            assert value is not None
            assert len(value.group(1).partition(".")[2]) <= 3, line


class TestCommonOptions:
    @pytest.mark.parametrize(
        "argv",
        [
            ["--json-logs", "--log-level", "info", "schemas", "list"],
            ["schemas", "list", "--json-logs", "--log-level", "info"],
        ],
    )
    def test_common_options_before_or_after_the_command(
        self, argv: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--json-logs and --log-level work before the command as after it."""
        assert main(argv) == 0
        assert "15 event types" in capsys.readouterr().out
        renderer = structlog.get_config()["processors"][-1]  # what main() configured
        assert isinstance(renderer, structlog.processors.JSONRenderer)

    def test_config_before_the_command(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--config before the command is read (a bad key there is refused, exit 2)."""
        bad = tmp_path / "bad.yaml"
        bad.write_text("server:\n  prot: 80\n", encoding="utf-8")
        assert main(["--config", str(bad), "schemas", "list"]) == 2
        assert "unknown key 'server.prot'" in capsys.readouterr().err

    def test_json_logs_before_demo(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`mnemo-events --json-logs --log-level info demo` writes JSON log lines."""
        monkeypatch.chdir(tmp_path)
        code = main(["--json-logs", "--log-level", "info", "demo", "--events", "20", "--rate", "0"])
        assert code == 0
        err = capsys.readouterr().err
        objects = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert any(item.get("event") == "webhooks.started" for item in objects), err[-1500:]
