"""The operator's commands against a real service: `webhooks ...`, `serve` refusals, `listen`.

Each test runs the real console script in its own process against a real service (or a real
webhook manager) on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mnemo_events.config import RetryConfig
from mnemo_events.event import Event
from mnemo_events.webhook_manager import Webhook, WebhookManager
from tests.helpers.receiver import Receiver, Reply, eventually
from tests.helpers.service import API_KEY, Service, running_service, service_settings

SCRIPT = str(Path(sys.executable).parent / "mnemo-events")
SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLXRoZS1saXN0ZW4tdGVzdA=="


class Done:
    """A finished CLI process."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err

    def json(self) -> Any:
        """The standard output decoded as JSON."""
        return json.loads(self.out)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNEMO_EVENTS_")}
    return {**env, **(extra or {})}


async def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Done:
    """Run the console script to its end (while this loop keeps serving), bounded in time."""
    proc = await asyncio.create_subprocess_exec(
        SCRIPT,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=_env(env),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


def _to(service: Service) -> list[str]:
    return ["--url", service.url, "--api-key", API_KEY]


async def _add(service: Service, url: str, cwd: Path, *extra: str) -> dict[str, Any]:
    done = await cli(
        "webhooks", "add", url, "--events", "memory.*", "--json", *_to(service), *extra, cwd=cwd
    )
    assert done.code == 0, done.err
    hook: dict[str, Any] = done.json()
    return hook


@pytest.mark.slow
class TestWebhooksCommands:
    async def test_add_list_show_update_delete(self, tmp_path: Path, receiver: Receiver) -> None:
        """An operator registers, lists, inspects, disables, re-enables and deletes a webhook."""
        async with running_service(service_settings(tmp_path)) as service:
            hook = await _add(service, receiver.url("/a"), tmp_path, "--description", "audit")
            assert hook["secret"].startswith("whsec_")

            def _webhook() -> Webhook:
                webhook = service.webhooks.get_webhook(hook["id"])
                assert webhook is not None
                return webhook

            assert _webhook().description == "audit"

            listed = await cli("webhooks", "list", *_to(service), cwd=tmp_path)
            assert listed.code == 0, listed.err
            assert hook["id"] in listed.out
            assert "1 webhooks" in listed.out
            assert hook["secret"] not in listed.out  # masked outside add and rotate

            off = await cli(
                "webhooks", "update", hook["id"], "--disable", *_to(service), cwd=tmp_path
            )
            assert off.code == 0, off.err
            assert _webhook().enabled is False
            shown = await cli("webhooks", "show", hook["id"], *_to(service), cwd=tmp_path)
            assert "state        disabled" in shown.out
            assert "deliveries   0" in shown.out

            on = await cli(
                "webhooks", "update", hook["id"], "--enable", "--events", "dream.*,gap.*",
                *_to(service), cwd=tmp_path,
            )  # fmt: skip
            assert on.code == 0, on.err
            assert _webhook().events == ("dream.*", "gap.*")

            gone = await cli("webhooks", "delete", hook["id"], *_to(service), cwd=tmp_path)
            assert gone.code == 0, gone.err
            assert service.webhooks.list_webhooks() == []

    async def test_test_sends_a_signed_sample_to_that_webhook_only(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """`webhooks test` delivers one signed sample of the chosen type to one webhook."""
        async with running_service(service_settings(tmp_path)) as service:
            first = await _add(service, receiver.url("/a"), tmp_path)
            receiver.secrets["/a"] = first["secret"]  # checked with Stripe's own verifier
            await _add(service, receiver.url("/b"), tmp_path)
            done = await cli(
                "webhooks", "test", first["id"], "--type", "memory.deleted", *_to(service),
                cwd=tmp_path,
            )  # fmt: skip
            assert done.code == 0, done.err
            assert "memory.deleted" in done.out
            assert re.search(r"delivery dlv_\w+: success", done.out), done.out
            (request,) = receiver.on("/a")
            assert request.stripe_ok is True
            body = json.loads(request.body)
            assert body["type"] == "memory.deleted"
            assert body["metadata"] == {"test": True}
            assert "memory_id" in body["data"]
            assert receiver.on("/b") == []  # not published: no other webhook saw it

    async def test_a_failing_test_exits_1_then_replay_and_redeliver(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """A failed test exits 1 with its attempts; replay and redeliver send it again."""
        receiver.script("/down", then=Reply(status=500, body=b"broken"))
        async with running_service(service_settings(tmp_path, max_attempts=2)) as service:
            hook = await _add(service, receiver.url("/down"), tmp_path)
            failed = await cli("webhooks", "test", hook["id"], *_to(service), cwd=tmp_path)
            assert failed.code == 1, failed.err
            assert failed.out.count("500") >= 2  # both attempts, with their status code
            assert "failed" in failed.out

            listed = await cli(
                "webhooks", "deliveries", hook["id"], "--status", "failed", "--json",
                *_to(service), cwd=tmp_path,
            )  # fmt: skip
            (delivery,) = listed.json()["deliveries"]
            assert delivery["attempts"] == 2

            replay = await cli("webhooks", "replay", hook["id"], *_to(service), cwd=tmp_path)
            assert replay.code == 0, replay.err
            assert "1 failed deliveries" in replay.out
            await receiver.wait_for(4, "/down")
            status, _ = await service.call("GET", f"/deliveries/{delivery['id']}")
            assert status == 200

            receiver.script("/down", then=Reply(status=200))

            async def _failed_again() -> bool:
                _, body = await service.call("GET", f"/deliveries/{delivery['id']}")
                return bool(body["status"] == "failed")

            await eventually(_failed_again)
            again = await cli("webhooks", "redeliver", delivery["id"], *_to(service), cwd=tmp_path)
            assert again.code == 0, again.err
            await receiver.wait_for(5, "/down")
            one = await cli("webhooks", "deliveries", delivery["id"], *_to(service), cwd=tmp_path)
            assert one.code == 0, one.err
            assert "500" in one.out

    async def test_rotate_prints_the_new_secret_once(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """`webhooks rotate` replaces the secret and keeps the old one for the grace period."""
        async with running_service(service_settings(tmp_path)) as service:
            hook = await _add(service, receiver.url("/a"), tmp_path)
            done = await cli(
                "webhooks", "rotate", hook["id"], "--grace", "60", *_to(service), cwd=tmp_path
            )
            assert done.code == 0, done.err
            found = re.search(r"new secret   (whsec_\S+)", done.out)
            assert found is not None, done.out
            new = found.group(1)
            assert new != hook["secret"]
            receiver.secrets["/a"] = new  # the next delivery verifies with the printed secret
            sent = await cli("webhooks", "test", hook["id"], *_to(service), cwd=tmp_path)
            assert sent.code == 0, sent.err
            (request,) = receiver.on("/a")
            assert request.stripe_ok is True

    async def test_refusals_exit_1_with_the_reason(self, tmp_path: Path) -> None:
        """Unknown ids, a wrong key and an unreachable service exit 1 naming the problem."""
        async with running_service(service_settings(tmp_path)) as service:
            missing = await cli("webhooks", "show", "wh_nope", *_to(service), cwd=tmp_path)
            assert missing.code == 1
            assert "404" in missing.err
            wrong = await cli(
                "webhooks", "list", "--url", service.url, "--api-key", "wrong-key-0000",
                cwd=tmp_path,
            )  # fmt: skip
            assert wrong.code == 1
            assert "401" in wrong.err
            bad_type = await cli(
                "webhooks", "test", "wh_nope", "--type", "memory.create", *_to(service),
                cwd=tmp_path,
            )  # fmt: skip
            assert bad_type.code == 1
            nothing = await cli("webhooks", "update", "wh_x", *_to(service), cwd=tmp_path)
            assert nothing.code == 2
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        away = await cli("webhooks", "list", "--url", f"http://127.0.0.1:{free}", cwd=tmp_path)
        assert away.code == 1
        assert "cannot reach" in away.err
        assert "Traceback" not in away.err

    async def test_url_and_key_from_environment_or_config(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """MNEMO_EVENTS_URL with the default key variable, or the config file, find the service."""
        async with running_service(service_settings(tmp_path)) as service:
            await _add(service, receiver.url("/a"), tmp_path)
            by_env = await cli(
                "webhooks", "list", "--json", cwd=tmp_path,
                env={"MNEMO_EVENTS_URL": service.url, "MNEMO_EVENTS_API_KEY": API_KEY},
            )  # fmt: skip
            assert by_env.code == 0, by_env.err
            assert by_env.json()["count"] == 1
            port = service.url.rsplit(":", 1)[1]
            config = tmp_path / "ops.yaml"
            config.write_text(f"server:\n  port: {port}\n  api_key: {API_KEY}\n")
            by_file = await cli("--config", str(config), "webhooks", "list", "--json", cwd=tmp_path)
            assert by_file.code == 0, by_file.err
            assert by_file.json()["count"] == 1


def _serve_config(tmp_path: Path, port: int = 0) -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(
        f"webhooks:\n  persistence_path: null\n  delivery_store_path: null\n"
        f"server:\n  port: {port}\n  api_key: env:MNEMO_EVENTS_SERVER_KEY_FOR_TEST\n"
    )
    return path


async def _ready_line(stream: asyncio.StreamReader, pattern: str) -> re.Match[str]:
    """Read lines until one matches ``pattern`` (bounded)."""
    async with asyncio.timeout(30):
        while True:
            line = (await stream.readline()).decode()
            assert line, "the process ended before it was ready"
            found = re.search(pattern, line)
            if found:
                return found


@pytest.mark.slow
class TestServeRefusals:
    async def test_a_port_in_use_is_one_line_and_exit_2(self, tmp_path: Path) -> None:
        """`serve` on a busy port prints one line naming it and exits 2, no traceback."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            config = _serve_config(tmp_path)
            done = await cli(
                "serve", "--config", str(config), "--port", str(port), cwd=tmp_path,
                env={"MNEMO_EVENTS_SERVER_KEY_FOR_TEST": API_KEY},
            )  # fmt: skip
        assert done.code == 2, done.err
        assert "Traceback" not in done.err
        (line,) = [x for x in done.err.splitlines() if "cannot listen" in x]
        assert f"127.0.0.1:{port}" in line

    async def test_a_short_or_non_ascii_key_is_refused_without_echo(self, tmp_path: Path) -> None:
        """A key that is too short, `~`, or not printable ASCII stops `serve` with exit 2."""
        for key in ("abc12", "~", "caf\u00e9-key-0123456789"):
            done = await cli(
                "serve", "--port", "0", cwd=tmp_path, env={"MNEMO_EVENTS_SERVER_API_KEY": key}
            )
            assert done.code == 2, (key, done.err)
            assert "MNEMO_EVENTS_SERVER_API_KEY" not in done.err or key not in done.err
            assert key not in done.err.replace("MNEMO_EVENTS_SERVER_API_KEY", "")
            assert "API key" in done.err

    async def test_a_key_with_a_space_and_hash_is_taken_whole(self, tmp_path: Path) -> None:
        """MNEMO_EVENTS_SERVER_API_KEY='Tr0ub4dor #3' is the key, not 'Tr0ub4dor'."""
        env = _env(
            {
                "MNEMO_EVENTS_SERVER_API_KEY": "Tr0ub4dor #3",
                "MNEMO_EVENTS_WEBHOOKS_PERSISTENCE_PATH": "",
                "MNEMO_EVENTS_WEBHOOKS_DELIVERY_STORE_PATH": "",
            }
        )
        proc = await asyncio.create_subprocess_exec(
            SCRIPT, "serve", "--port", "0", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            url = (await _ready_line(proc.stdout, r"listening on (http://\S+)")).group(1)
            async with aiohttp.ClientSession() as session:
                for key, expected in (("Tr0ub4dor #3", 200), ("Tr0ub4dor", 401)):
                    headers = {"Authorization": f"Bearer {key}"}
                    async with session.get(url + "/webhooks", headers=headers) as r:
                        assert r.status == expected, key
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0

    async def test_a_mistyped_variable_stops_serve(self, tmp_path: Path) -> None:
        """MNEMO_EVENTS_EVENTS_MAX_QUEU_SIZE stops `serve` with exit 2 naming the real one."""
        done = await cli(
            "serve", "--port", "0", cwd=tmp_path, env={"MNEMO_EVENTS_EVENTS_MAX_QUEU_SIZE": "5"}
        )
        assert done.code == 2
        assert "MNEMO_EVENTS_EVENTS_MAX_QUEUE_SIZE" in done.err


async def _start_listen(tmp_path: Path, *args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        SCRIPT, "listen", "--port", "0", *args, cwd=tmp_path, env=_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    url = (await _ready_line(proc.stderr, r"receiving on (http://\S+)/")).group(1)
    return proc, url


async def _finish(proc: asyncio.subprocess.Process) -> Done:
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


@pytest.mark.slow
class TestListen:
    async def test_real_deliveries_are_verified_printed_and_answered(self, tmp_path: Path) -> None:
        """`listen --status 503,200` fails the first request; the manager's retry gets 200."""
        proc, url = await _start_listen(
            tmp_path, "--secret", SECRET, "--status", "503,200", "--count", "3", "--json"
        )
        retry = RetryConfig(max_attempts=3, base_delay_seconds=0.05, max_delay_seconds=0.1)
        try:
            async with WebhookManager(allow_private_networks=True, stop_timeout=1.0) as manager:
                hook = await manager.register_webhook(
                    url + "/hook", ["memory.*"], secret=SECRET, retry_config=retry,
                    signature_scheme="both",
                )  # fmt: skip
                first = Event.create("memory.created", {"memory_id": "m1"})
                second = Event.create("memory.deleted", {"memory_id": "m1"})
                manager.deliver(first)

                async def _succeeded(n: int) -> bool:
                    found = await manager.get_delivery_history(hook.id, status="success")
                    return len(found) == n

                await eventually(lambda: _succeeded(1))
                manager.deliver(second)
                await eventually(lambda: _succeeded(2))
            done = await _finish(proc)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert done.code == 0, done.err
        lines = [json.loads(line) for line in done.out.splitlines()]
        assert [(x["event_id"], x["answered"], x["verified"]) for x in lines] == [
            (first.id, 503, True),
            (first.id, 200, True),
            (second.id, 200, True),
        ]
        assert lines[0]["attempt"] == "1"
        assert lines[1]["attempt"] == "2"
        assert lines[0]["payload"]["data"] == {"memory_id": "m1"}
        assert SECRET not in done.out + done.err

    async def test_a_wrong_secret_is_answered_401_and_exits_1(self, tmp_path: Path) -> None:
        """Deliveries signed with another secret are refused with 401; listen exits 1."""
        other = "whsec_b3RoZXItc2VjcmV0LW5vdC10aGUtb25lLWxpc3RlbmVk"
        proc, url = await _start_listen(tmp_path, "--secret", SECRET, "--count", "1")
        try:
            async with WebhookManager(allow_private_networks=True, stop_timeout=1.0) as manager:
                hook = await manager.register_webhook(
                    url + "/hook", ["memory.*"], secret=other,
                    retry_config=RetryConfig(max_attempts=1),
                )  # fmt: skip
                manager.deliver(Event.create("memory.created", {"memory_id": "m1"}))

                async def _failed() -> bool:
                    found = await manager.get_delivery_history(hook.id, status="failed")
                    return len(found) == 1

                await eventually(_failed)
                (delivery,) = await manager.get_delivery_history(hook.id)
                assert delivery.last_status_code == 401
            done = await _finish(proc)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert done.code == 1
        assert "INVALID" in done.out
        assert "1 with a bad signature" in done.err
