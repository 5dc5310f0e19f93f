"""File-system faults for the tests: a folder that cannot be written to, for real."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

__all__ = ["unwritable"]


@contextlib.contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """Saves into ``folder`` fail for real while inside: a file stands where the folder was.

    (The suite runs as root, for whom a read-only mode does not stop a write.) The folder and
    everything in it are put back on the way out.
    """
    away = folder.with_name(folder.name + ".away")
    folder.rename(away)
    folder.write_text("a file where the folder should be")
    try:
        yield
    finally:
        folder.unlink()
        away.rename(folder)
