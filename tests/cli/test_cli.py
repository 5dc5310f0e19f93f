"""The ``mnemo-events`` command, run as a user runs it: the console script and ``python -m``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from openapi_spec_validator import validate

from mnemo_events.cli import main
from mnemo_events.cli._render import percentile, table
from mnemo_events.config import Settings
from mnemo_events.schemas import list_event_types
from mnemo_events.server import create_app
from mnemo_events.server._state import SERVICE
from mnemo_events.webhook_manager import WebhookSignature

SCRIPT = str(Path(sys.executable).parent / "mnemo-events")
MODULE = [sys.executable, "-m", "mnemo_events"]
SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLXRoZS1jbGktdGVzdHM="
BODY = b'{"id":"evt_1","type":"memory.created","data":{"memory_id":"m1"}}'


def run(command: list[str], *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process (in a temporary working directory, no stray config)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNEMO_EVENTS_")}
    env.update(kwargs.pop("env", {}))
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, env=env, **kwargs
    )


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """main() configures structlog for its process; undo that after in-process calls."""
    yield
    structlog.reset_defaults()


@pytest.fixture(params=[[SCRIPT], MODULE], ids=["console-script", "python-m"])
def cli(request: pytest.FixtureRequest) -> list[str]:
    """The two ways a user starts the command."""
    return list(request.param)


class TestHelp:
    def test_top_level_help(self, cli: list[str], tmp_path: Path) -> None:
        """`--help` lists every command and points newcomers at the demo."""
        done = run(cli, "--help", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("usage: mnemo-events")
        for command in ("demo", "serve", "schemas", "verify", "tail"):
            assert f"    {command} " in done.stdout
        assert "Start with `mnemo-events demo`" in done.stdout

    @pytest.mark.parametrize(
        ("command", "expected"),
        [
            (["demo"], "--error-share"),
            (["serve"], "SIGTERM"),
            (["schemas"], "export"),
            (["schemas", "list"], "--config PATH"),
            (["schemas", "show"], "EVENT_TYPE"),
            (["schemas", "export"], "--service"),
            (["verify"], "--signature HEADER"),
            (["tail"], "--pattern"),
        ],
    )
    def test_each_command_has_help(
        self, command: list[str], expected: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Every command and action answers --help with its usage and options."""
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: mnemo-events {' '.join(command)}")
        assert expected in out

    @pytest.mark.parametrize("command", ["demo", "serve", "schemas list", "verify", "tail"])
    def test_config_option_on_every_command(
        self, command: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Each command takes --config PATH."""
        with pytest.raises(SystemExit):
            main([*command.split(), "--help"])
        assert "--config PATH" in capsys.readouterr().out

    def test_no_command_prints_help_and_exits_2(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Running with no command shows the help, exit status 2."""
        assert main([]) == 2
        assert "COMMAND" in capsys.readouterr().out

    def test_version(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--version prints the installed version."""
        from mnemo_events import __version__

        assert main(["--version"]) == 0
        assert capsys.readouterr().out == f"mnemo-events {__version__}\n"


class TestDemo:
    def test_demo_runs_end_to_end_and_passes(self, tmp_path: Path) -> None:
        """`mnemo-events demo --events 200` exits 0 and prints the per-type and per-webhook
        tables with latency percentiles and the verdict."""
        done = run([SCRIPT], "demo", "--events", "200", "--rate", "400", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert "Per event type" in out
        assert "Per webhook" in out
        for heading in ("p50 ms", "p95 ms", "p99 ms"):
            assert heading in out
        for name in ("audit", "memories", "alerts"):
            assert f"\n{name} " in out
        assert "dream_sessions:" in out
        assert "OK: every delivery succeeded and every signature verified" in out
        assert "deliveries" in done.stderr  # the progress line
        assert list(tmp_path.iterdir()) == []  # nothing left behind without --data-dir

    def test_demo_json_summary(self, tmp_path: Path) -> None:
        """With --json the summary is one JSON document: every type emitted, nothing failed,
        every signature verified, each delivery acknowledged once per webhook."""
        done = run(
            MODULE,
            "demo",
            "--events", "200", "--rate", "0", "--seed", "3", "--json",
            "--data-dir", str(tmp_path / "data"),
            cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        summary = json.loads(done.stdout)
        assert summary["ok"] is True
        assert summary["problems"] == []
        assert summary["signatures"]["invalid"] == 0
        assert summary["signatures"]["verified"] >= sum(h["expected"] for h in summary["webhooks"])
        types = {row["type"]: row for row in summary["event_types"]}
        assert sorted(types) == sorted(list_event_types())
        assert sum(row["events"] for row in types.values()) == 200
        for hook in summary["webhooks"]:
            assert hook["success"] == hook["expected"] > 0
            assert hook["failed"] == hook["unfinished"] == 0
            assert hook["p50_ms"] <= hook["p95_ms"] <= hook["p99_ms"]
        assert (tmp_path / "data" / "deliveries.sqlite3").is_file()
        assert summary["data_dir"] == str(tmp_path / "data")

    def test_demo_fails_when_deliveries_do_not_finish(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With no time to finish the deliveries the demo says why and exits 1."""
        code = main(["demo", "--events", "30", "--rate", "0", "--timeout", "0"])
        out = capsys.readouterr().out
        assert code == 1
        assert "FAILED:" in out
        assert "still running when --timeout ran out" in out


class TestVerify:
    def _signed(self, tmp_path: Path, body: bytes = BODY, **kwargs: Any) -> tuple[Path, str]:
        payload = tmp_path / "body.json"
        payload.write_bytes(body)
        return payload, WebhookSignature.sign(body, SECRET, **kwargs)

    def test_accepts_a_good_signature(self, tmp_path: Path) -> None:
        """A header made for the payload and secret is valid: exit 0."""
        payload, header = self._signed(tmp_path)
        done = run(
            [SCRIPT], "verify", "--payload", str(payload), "--secret", SECRET,
            "--signature", header,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("valid:")

    def test_refuses_a_tampered_payload(self, tmp_path: Path) -> None:
        """One changed byte in the payload: invalid, exit 1."""
        payload, header = self._signed(tmp_path)
        payload.write_bytes(BODY.replace(b"m1", b"m2"))
        done = run(
            MODULE, "verify", "--payload", str(payload), "--secret", SECRET, "--signature", header
        )
        assert done.returncode == 1
        assert done.stdout.startswith("invalid: no v1 signature matches")

    @pytest.mark.parametrize(
        ("secret", "signature", "extra", "code", "message"),
        [
            ("env:MNEMO_TEST_SECRET", "good", [], 0, "valid:"),
            ("wrong-secret", "good", [], 1, "invalid: no v1 signature matches"),
            (SECRET, "t=abc,v1=00", [], 1, "invalid: the header is malformed"),
            (SECRET, "old", [], 1, "invalid: the timestamp is more than 300 s"),
            (SECRET, "old", ["--tolerance", "0"], 0, "valid:"),
            (SECRET, "old", ["--tolerance", "7200"], 0, "valid:"),
        ],
    )
    def test_verify_cases(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        secret: str,
        signature: str,
        extra: list[str],
        code: int,
        message: str,
    ) -> None:
        """Secrets from the environment, wrong secrets, malformed and stale headers."""
        monkeypatch.setenv("MNEMO_TEST_SECRET", SECRET)
        stamp = int(time.time()) - 3600 if signature == "old" else None
        payload, header = self._signed(tmp_path, timestamp=stamp)
        if signature not in ("good", "old"):
            header = signature
        args = ["verify", "--payload", str(payload), "--secret", secret, "--signature", header]
        assert main([*args, *extra]) == code
        assert capsys.readouterr().out.startswith(message)

    def test_payload_from_stdin(self, tmp_path: Path) -> None:
        """--payload - reads the body from standard input."""
        _, header = self._signed(tmp_path)
        done = run(
            [SCRIPT], "verify", "--payload", "-", "--secret", SECRET, "--signature", header,
            input=BODY.decode(),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--payload", "/nonexistent/body.json", "--secret", "s"], "cannot read"),
            (["--payload", "-", "--secret", "env:MNEMO_TEST_NOT_SET"], "MNEMO_TEST_NOT_SET"),
        ],
    )
    def test_unreadable_input_exits_1(
        self, capsys: pytest.CaptureFixture[str], args: list[str], message: str
    ) -> None:
        """A missing payload file or an unset secret variable is reported, exit 1."""
        assert main(["verify", *args, "--signature", "t=1,v1=00"]) == 1
        assert message in capsys.readouterr().err


class TestSchemas:
    def test_export_prints_a_valid_openapi_document(self) -> None:
        """`schemas export` prints an OpenAPI 3.1 document with one webhook per event type."""
        done = run(MODULE, "schemas", "export")
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)
        validate(document)
        assert sorted(document["webhooks"]) == sorted(list_event_types())

    def test_export_service_to_a_file(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`schemas export --service -o FILE` writes the service document, paths included."""
        target = tmp_path / "openapi.json"
        assert main(["schemas", "export", "--service", "-o", str(target)]) == 0
        document = json.loads(target.read_text(encoding="utf-8"))
        validate(document)
        assert "/events" in document["paths"]
        assert str(target) in capsys.readouterr().out

    def test_list(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`schemas list` shows every type with its required fields."""
        assert main(["schemas", "list"]) == 0
        out = capsys.readouterr().out
        for event_type in list_event_types():
            assert event_type in out
        assert "memory_id, content, tier" in out

    def test_show(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`schemas show TYPE` prints the JSON Schema of that payload."""
        assert main(["schemas", "show", "dream.completed"]) == 0
        schema = json.loads(capsys.readouterr().out)
        assert schema["required"] == ["session_id", "duration_seconds"]

    def test_show_unknown_type_suggests(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown type is bad usage: exit 2, suggesting the closest names."""
        assert main(["schemas", "show", "dream.complete"]) == 2
        assert "did you mean 'dream.completed'" in capsys.readouterr().err


class TestConfig:
    def test_a_bad_config_file_exits_2_naming_the_key(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--config with an unknown key is refused with the key path, exit 2."""
        bad = tmp_path / "bad.yaml"
        bad.write_text("server:\n  prot: 80\n", encoding="utf-8")
        assert main(["schemas", "list", "--config", str(bad)]) == 2
        assert "unknown key 'server.prot'" in capsys.readouterr().err

    def test_serve_refuses_a_public_address_without_a_key(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`serve --host 0.0.0.0` with no API key configured refuses to start, exit 2."""
        monkeypatch.delenv("MNEMO_EVENTS_API_KEY", raising=False)
        assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
        assert "refusing to serve on '0.0.0.0' without an API key" in capsys.readouterr().err


def _tail_settings(api_key: str) -> Settings:
    return Settings.model_validate(
        {
            "webhooks": {"persistence_path": None, "delivery_store_path": None},
            "server": {"api_key": api_key},
        }
    )


class TestTail:
    async def test_tail_prints_matching_events(self, tmp_path: Path) -> None:
        """`tail --pattern memory.*` prints the matching events of a running service."""
        app = create_app(_tail_settings("tail-key"))
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        proc = await asyncio.create_subprocess_exec(
            SCRIPT, "tail", "--url", url, "--api-key", "tail-key", "--pattern", "memory.*",
            "--count", "2",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        )  # fmt: skip
        try:
            assert proc.stderr is not None
            async with asyncio.timeout(20):
                while b"connected to" not in await proc.stderr.readline():
                    pass
            bus = app[SERVICE].bus
            first = await bus.publish("memory.created", {"memory_id": "m1", "content": "c",
                                                         "tier": "hot"})  # fmt: skip
            await bus.publish("gap.detected", {"gap_id": "g1", "query": "q"})
            second = await bus.publish("memory.deleted", {"memory_id": "m1"})
            async with asyncio.timeout(20):
                out, _ = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await runner.cleanup()
        assert proc.returncode == 0
        lines = out.decode().splitlines()
        assert len(lines) == 2
        assert "memory.created" in lines[0]
        assert first.id in lines[0]
        assert "memory.deleted" in lines[1]
        assert second.id in lines[1]

    def test_tail_without_a_service_exits_1(self, capsys: pytest.CaptureFixture[str]) -> None:
        """With nothing listening, tail says so and exits 1."""
        assert main(["tail", "--url", "http://127.0.0.1:9"]) == 1
        assert "is `mnemo-events serve` running?" in capsys.readouterr().err

    async def test_tail_with_a_wrong_key_exits_1(self, tmp_path: Path) -> None:
        """A 401 from the service is reported with its detail, exit 1."""
        app = create_app(_tail_settings("right"))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            proc = await asyncio.create_subprocess_exec(
                *MODULE, "tail", "--url", f"http://127.0.0.1:{runner.addresses[0][1]}",
                "--api-key", "wrong", stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
            )  # fmt: skip
            async with asyncio.timeout(20):
                _, err = await proc.communicate()
        finally:
            await runner.cleanup()
        assert proc.returncode == 1
        assert "answered 401: invalid API key" in err.decode()


class TestRender:
    @pytest.mark.parametrize(
        ("values", "q", "expected"),
        [([], 50, None), ([5.0], 99, 5.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
         ([1.0, 2.0, 3.0, 4.0], 95, 4.0), (list(map(float, range(1, 101))), 99, 99.0)],
    )  # fmt: skip
    def test_percentile_nearest_rank(
        self, values: list[float], q: float, expected: float | None
    ) -> None:
        """Percentiles use the nearest-rank method."""
        assert percentile(values, q) == expected

    def test_table_aligns_numbers_right(self) -> None:
        """Numeric columns are right-aligned, text columns left-aligned."""
        text = table(("name", "n"), [("a", 1), ("long name", 100)])
        assert text.splitlines() == ["name         n", "---------  ---", "a            1",
                                     "long name  100"]  # fmt: skip
