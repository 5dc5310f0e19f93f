"""docs/ARCHITECTURE.md keeps up with the package: one line per module."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mnemo_events"


def test_every_module_has_its_line() -> None:
    """Each module of mnemo_events is listed once in docs/ARCHITECTURE.md, and nothing else."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    listed = re.findall(r"^- `([\w/]+\.py)`: \S", text, flags=re.M)
    modules = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py"))
    assert sorted(listed) == modules
