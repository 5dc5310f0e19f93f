"""``audit_log``: every event as one JSON line in a size-rotated file, written off the loop."""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from reactivex import Observable, abc

from mnemo_events.event import Event
from mnemo_events.exceptions import ConfigError
from mnemo_events.logging import get_logger

__all__ = ["AuditLog", "AuditStats", "audit_log"]

_STOP = None


@dataclass(frozen=True, slots=True)
class AuditStats:
    """Counters of an :class:`AuditLog`."""

    accepted: int
    """Events handed to :meth:`AuditLog.write`."""
    written: int
    """Lines written and flushed to the file."""
    failed: int
    """Lines lost to an I/O or serialisation error (each logged as ``audit.write_failed``)."""
    rotations: int
    """Times the file was rotated."""


class AuditLog:
    """A sink appending each event as one line of ``Event.to_json()`` to ``path``.

    :meth:`write` only queues the event, so it never blocks the event loop; a writer thread
    serialises, writes and flushes in batches of up to ``batch_size`` lines. Before a line
    would push the file past ``max_bytes``, the file is rotated like the standard library's
    ``RotatingFileHandler``: ``path`` becomes ``path.1``, ``path.1`` becomes ``path.2``, up to
    ``backups`` files (the oldest is deleted). A single line longer than ``max_bytes`` gets a
    file of its own. :meth:`close` (or ``with`` / ``async with``) writes every line accepted
    before it, then closes the file; lines still queued when the interpreter exits without
    ``close`` are lost.

    Raises:
        ConfigError: ``max_bytes``, ``backups`` or ``batch_size`` is below 1.
        OSError: the file cannot be opened for appending.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = 10_000_000,
        backups: int = 5,
        batch_size: int = 512,
        fsync: bool = False,
    ) -> None:
        for name, value in (("max_bytes", max_bytes), ("backups", backups)):
            if value < 1:
                raise ConfigError(f"AuditLog: {name} must be at least 1, got {value!r}")
        if batch_size < 1:
            raise ConfigError(f"AuditLog: batch_size must be at least 1, got {batch_size!r}")
        self.path = Path(path)
        self._max_bytes = max_bytes
        self._backups = backups
        self._batch_size = batch_size
        self._fsync = fsync
        self._log = get_logger("audit", path=str(self.path))
        # Unbuffered: each batch is one write, and a failed write leaves nothing to retry.
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - the writer closes it
        self._size = self._file.tell()
        self._queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._accepted = self._written = self._failed = self._rotations = 0
        self._subscription: abc.DisposableBase | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"audit-log:{self.path.name}", daemon=True
        )
        self._thread.start()

    # -- the loop side ------------------------------------------------------------------------

    def write(self, event: Event) -> None:
        """Queue ``event`` for writing; returns at once.

        Raises:
            ValueError: the log is closed.
        """
        with self._lock:
            if self._closed:
                raise ValueError(f"audit log {self.path} is closed")
            self._accepted += 1
            self._queue.put(event)

    def attach(self, events: Observable[Event]) -> AuditLog:
        """Write every event of ``events`` until :meth:`close` or the stream ends."""
        if self._subscription is not None:
            raise ValueError(f"audit log {self.path} is already attached to a stream")
        self._subscription = events.subscribe(self.write, self._on_error, self._finish)
        return self

    def _on_error(self, err: Exception) -> None:
        self._log.error("audit.source_failed", error=repr(err))
        self._finish()

    def _finish(self) -> None:
        """Stop accepting and let the writer drain and close the file, without waiting."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)

    def close(self) -> None:
        """Detach, write every accepted line, close the file. Blocks; idempotent.

        From a coroutine use :meth:`aclose`, which runs this in a thread.
        """
        if self._subscription is not None:
            self._subscription.dispose()
        self._finish()
        self._thread.join()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called or the attached stream ended."""
        return self._closed

    def stats(self) -> AuditStats:
        """A snapshot of the counters."""
        return AuditStats(self._accepted, self._written, self._failed, self._rotations)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> AuditLog:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"AuditLog({str(self.path)!r}, {state}, {self.stats()})"

    # -- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        try:
            while not stopping:
                batch = [self._queue.get()]
                while len(batch) < self._batch_size:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stopping = _STOP in batch
                events = [event for event in batch if event is not None]
                try:
                    self._write_batch(events)
                except Exception as err:  # a bug here must not stop the writer for good
                    self._failed += len(events)
                    self._log.exception("audit.write_failed", lines=len(events), error=repr(err))
        finally:
            self._file.close()

    def _write_batch(self, events: list[Event]) -> None:
        chunk: list[bytes] = []
        chunk_size = 0
        for event in events:
            try:
                line = event.to_json() + b"\n"
            except Exception as err:
                self._failed += 1
                self._log.error("audit.write_failed", lines=1, event_id=event.id, error=repr(err))
                continue
            if (
                self._size + chunk_size > 0
                and self._size + chunk_size + len(line) > self._max_bytes
            ):
                self._flush(chunk)
                chunk, chunk_size = [], 0
                self._rotate()
            chunk.append(line)
            chunk_size += len(line)
        self._flush(chunk)

    def _flush(self, chunk: list[bytes]) -> None:
        if not chunk:
            return
        data = memoryview(b"".join(chunk))
        try:
            done = 0
            while done < len(data):  # a raw write may be partial
                written = self._file.write(data[done:])
                if not written:
                    raise OSError(f"no progress writing {self.path}")
                done += written
            if self._fsync:
                os.fsync(self._file.fileno())
        except (OSError, ValueError) as err:  # ValueError: the file could not be reopened
            self._failed += len(chunk)
            self._log.error("audit.write_failed", lines=len(chunk), error=repr(err))
            return
        self._size += len(data)
        self._written += len(chunk)

    def _rotate(self) -> None:
        try:
            self._file.close()
            for number in range(self._backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{number}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{number + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed by _run
        except OSError as err:
            self._log.error("audit.rotate_failed", error=repr(err))
            return
        self._size = self._file.tell()
        self._rotations += 1
        self._log.info("audit.rotated", rotations=self._rotations)


def audit_log(
    events: Observable[Event],
    path: str | os.PathLike[str],
    *,
    max_bytes: int = 10_000_000,
    backups: int = 5,
    batch_size: int = 512,
    fsync: bool = False,
) -> AuditLog:
    """Append every event of ``events`` to ``path`` as a JSON line; returns the open sink.

    The one sink among the pipelines: it returns an :class:`AuditLog` (not an observable) to
    close when done, e.g. ``async with audit_log(bus.observe(), "audit.jsonl"): ...``.

    ::

        events: -a-b-c-|
        [   audit_log   ]      a.json\\n b.json\\n c.json\\n appended by the writer thread
    """
    sink = AuditLog(path, max_bytes=max_bytes, backups=backups, batch_size=batch_size, fsync=fsync)
    return sink.attach(events)
