"""Text output of the CLI: tables, percentiles and a live progress line."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TextIO

__all__ = ["LogStream", "Progress", "format_ms", "percentile", "table"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def format_ms(value: float | None) -> str:
    """Milliseconds for a table cell: ``-`` when unknown, fewer decimals as values grow."""
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, title: str = "") -> str:
    """A plain-text table: numeric columns right-aligned, the others left-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [i > 0 and all(_numeric(row[i]) for row in cells[1:]) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [title] if title else []
    out += [line(cells[0]), rule, *(line(row) for row in cells[1:])]
    return "\n".join(out)


def _numeric(cell: str) -> bool:
    text = cell.rstrip("%").replace(",", "")
    if text == "-":
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


class Progress:
    """One status line: redrawn in place on a terminal, printed every few seconds otherwise.

    Args:
        stream: where to write (the CLI passes stderr).
        render: builds the current line.
        every: seconds between lines when ``stream`` is not a terminal.
    """

    def __init__(self, stream: TextIO, render: Callable[[], str], *, every: float = 2.0) -> None:
        self._stream = stream
        self._render = render
        self._every = every
        self._tty = _isatty(stream)
        self._last = 0.0
        self._width = 0
        self._shown = ""

    @property
    def interval(self) -> float:
        """How often :meth:`tick` should be called."""
        return 0.1 if self._tty else self._every

    def tick(self) -> None:
        """Draw the line now (or print it, if the interval has passed)."""
        text = self._render()
        if self._tty:
            pad = " " * max(self._width - len(text), 0)
            self._stream.write(f"\r{text}{pad}")
            self._width = len(text)
            self._shown = text
            _ACTIVE[:] = [self]
        else:
            now = time.monotonic()
            if now - self._last < self._every:
                return
            self._last = now
            self._stream.write(text + "\n")
        self._stream.flush()

    def close(self) -> None:
        """Draw the final state and leave the cursor on a fresh line."""
        if self in _ACTIVE:
            _ACTIVE.clear()
        text = self._render()
        if self._tty:
            pad = " " * max(self._width - len(text), 0)
            self._stream.write(f"\r{text}{pad}\n")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def redraw(self) -> None:
        """Draw the last line again (after a log line took its place)."""
        self._stream.write(self._shown)
        self._width = len(self._shown)
        self._stream.flush()


_ACTIVE: list[Progress] = []
"""The progress line drawn in place on a terminal right now, if any."""
_CLEAR_LINE = "\r\x1b[K"


class LogStream:
    """Where the CLI writes log lines: a whole line at a time, never onto a progress line.

    While a :class:`Progress` line is drawn in place, each log line first clears it, then
    the progress line is drawn again below the log line.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        """Buffer ``text``; write every complete line it finishes."""
        self._pending += text
        if "\n" in self._pending:
            done, _, self._pending = self._pending.rpartition("\n")
            progress = _ACTIVE[0] if _ACTIVE else None
            if progress is not None and progress._stream is self._stream:
                self._stream.write(f"{_CLEAR_LINE}{done}\n")
                progress.redraw()
            else:
                self._stream.write(done + "\n")
        return len(text)

    def flush(self) -> None:
        """Flush the underlying stream (a partial line stays buffered)."""
        self._stream.flush()

    def isatty(self) -> bool:
        """Whether the underlying stream is a terminal (for colours)."""
        return _isatty(self._stream)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
