"""Webhook-group test parts: real ``mnemo-events worker`` / ``serve`` processes, and a receiver
that records every attempt and catches two attempts of one delivery in flight at once.

:func:`start_member` runs ``python -m mnemo_events worker|serve --transport <url>`` with the
group's settings in the environment (loopback receivers allowed, a short takeover time) and
returns once the process says it is ready. :class:`GroupReceiver` is an aiohttp app on
127.0.0.1 in the test's loop: each request is an :class:`Attempt` with its start and end
times; ``overlaps`` counts requests that arrived while another request with the same
``X-MnemoCore-Delivery`` was still being answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.helpers.receiver import serve_on_loopback

__all__ = ["Attempt", "GroupReceiver", "Member", "start_member"]

_REPO = Path(__file__).resolve().parents[2]
_READY = re.compile(r"(member \S+ of the webhook group|listening on (\S+))")


@dataclass
class Member:
    """One group process (``worker`` or ``serve``)."""

    process: subprocess.Popen[str]
    log: Path
    url: str | None = None
    """The service's base URL (``serve`` only)."""

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def freeze_and_kill(self, port: int) -> set[int]:
        """SIGSTOP, note the local ports of its connections to ``port`` (no new one can open
        while it is stopped), then SIGKILL; those ports."""
        self.process.send_signal(signal.SIGSTOP)
        try:
            return client_ports(self.pid, port)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self._close()

    def _close(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait (SIGKILL after ``timeout``); the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._close()
        return self.process.returncode


def client_ports(pid: int, remote_port: int) -> set[int]:
    """The local ports of process ``pid``'s TCP connections to 127.0.0.1:``remote_port``
    (read from /proc: the process's socket inodes, matched in its network table)."""
    inodes = set()
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if inode in inodes and int(remote.split(":")[1], 16) == remote_port:
            ports.add(int(local.split(":")[1], 16))
    return ports


def _environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNEMO_EVENTS_")}
    env.update(
        {
            "MNEMO_EVENTS_CONFIG": str(_REPO / "config.yaml"),
            "MNEMO_EVENTS_WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true",
            "MNEMO_EVENTS_WEBHOOKS_STOP_TIMEOUT": "1",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


def start_member(
    kind: str,
    url: str,
    log: Path,
    *,
    takeover: float = 2.0,
    env: dict[str, str] | None = None,
    ready_within: float = 30.0,
) -> Member:
    """Start ``mnemo-events worker`` (or ``serve`` on a free port) in the group on ``url``."""
    args = [sys.executable, "-m", "mnemo_events", kind, "--transport", url]
    if kind == "serve":
        args += ["--port", "0"]
    extra = {"MNEMO_EVENTS_WEBHOOKS_TAKEOVER_SECONDS": str(takeover), **(env or {})}
    with log.open("a") as errors:
        process = subprocess.Popen(
            args,
            cwd=_REPO,
            env=_environment(extra),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    assert process.stdout is not None
    deadline = time.monotonic() + ready_within
    while True:
        line = process.stdout.readline()
        found = _READY.search(line)
        if found:
            # The rest of stdout is not read: a member prints one more line at most.
            return Member(process, log, found.group(2))
        if not line or time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=10)
            process.stdout.close()
            raise RuntimeError(f"{kind} did not start; log: {log.read_text()[-3000:]}")


@dataclass
class Attempt:
    """One request the receiver answered."""

    path: str
    delivery_id: str
    number: int
    started: float
    port: int = 0
    """The sender's local port (which process sent it: see :func:`client_ports`)."""
    ended: float = 0.0
    status: int = 0


class GroupReceiver:
    """Answers every path 200 after ``delay`` seconds unless ``decide`` says otherwise."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.decide: Callable[[str, str, int], int] = lambda path, delivery, number: 200
        """``decide(path, delivery_id, attempt) -> status`` for each request."""
        self.attempts: list[Attempt] = []
        self.overlaps = 0
        self.overlapping: list[list[Attempt]] = []
        """For each overlap: the attempts of that delivery open at that moment."""
        self._open: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> GroupReceiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner, self.port = await serve_on_loopback(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def url(self, path: str) -> str:
        """The URL of ``path`` on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        delivery = request.headers.get("X-MnemoCore-Delivery", "")
        number = int(request.headers.get("X-MnemoCore-Attempt", "0"))
        peer = request.transport.get_extra_info("peername") if request.transport else None
        attempt = Attempt(request.path, delivery, number, time.monotonic(), peer[1] if peer else 0)
        self.attempts.append(attempt)
        if self._open[delivery]:
            self.overlaps += 1
            self.overlapping.append(
                [a for a in self.attempts if a.delivery_id == delivery and not a.ended]
            )
        self._open[delivery] += 1
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            attempt.status = self.decide(request.path, delivery, number)
            return web.Response(status=attempt.status, text="ok")
        finally:
            attempt.ended = time.monotonic()
            self._open[delivery] -= 1

    def succeeded(self) -> set[str]:
        """Delivery ids answered with a 2xx."""
        return {a.delivery_id for a in self.attempts if 200 <= a.status < 300}

    def by_delivery(self) -> dict[str, list[Attempt]]:
        """Every attempt, grouped by delivery id."""
        grouped: dict[str, list[Attempt]] = {}
        for attempt in self.attempts:
            grouped.setdefault(attempt.delivery_id, []).append(attempt)
        return grouped


def stop_all(members: Iterator[Member] | list[Member]) -> None:
    """SIGTERM every member still running."""
    for member in members:
        if member.process.poll() is None:
            member.stop()
