"""The pipelines package uses only the public API of mnemo_events (checked on the source's AST)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

import pipelines

PACKAGE = "mnemo_events"
PIPELINE_FILES = sorted(Path(pipelines.__file__).parent.glob("*.py"))


def _public_module(name: str) -> bool:
    """A module of the package whose every dotted part is public, and which exists."""
    parts = name.split(".")
    if parts[0] != PACKAGE or any(part.startswith("_") for part in parts[1:]):
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent is a module, not a package
        return False


def _exported(module: str, name: str) -> bool:
    """``name`` is in ``module.__all__``, or is a public submodule of it."""
    if name in getattr(importlib.import_module(module), "__all__", ()):
        return True
    return not name.startswith("_") and _public_module(f"{module}.{name}")


def private_uses(source: str) -> list[str]:
    """Every use of a non-public mnemo_events module or name in ``source``."""
    problems: list[str] = []
    aliases: dict[str, str] = {}  # local name -> public mnemo_events module it stands for
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != PACKAGE:
                    continue
                if not _public_module(alias.name):
                    problems.append(f"import {alias.name}")
                elif alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    aliases[PACKAGE] = PACKAGE
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != PACKAGE:
                continue
            if not _public_module(node.module):
                problems.append(f"from {node.module} import ...")
                continue
            for alias in node.names:
                if alias.name == "*" or not _exported(node.module, alias.name):
                    problems.append(f"from {node.module} import {alias.name}")
                elif _public_module(f"{node.module}.{alias.name}"):
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = aliases.get(node.value.id)
            if module is not None and not _exported(module, node.attr):
                problems.append(f"{module}.{node.attr}")
    return problems


@pytest.mark.parametrize("path", PIPELINE_FILES, ids=lambda p: p.name)
def test_pipeline_modules_use_only_the_public_api(path: Path) -> None:
    """No pipelines module imports or reaches a private mnemo_events module or name."""
    assert private_uses(path.read_text(encoding="utf-8")) == []


def test_every_pipeline_module_is_checked() -> None:
    """The check sees the package's modules (it would pass vacuously on an empty list)."""
    names = {path.name for path in PIPELINE_FILES}
    assert {"__init__.py", "rates.py", "dreams.py", "audit.py"} <= names


@pytest.mark.parametrize(
    "source",
    [
        "from mnemo_events._log import logger",
        "import mnemo_events._log",
        "import mnemo_events._log as log",
        "from mnemo_events import _log",
        "from mnemo_events.event import new_event_id as _n, _frozen_mapping",
        "from mnemo_events.operators import *",
        "from mnemo_events.schemas._models import Tier",
        "import mnemo_events\nmnemo_events._log.logger('x')",
        "from mnemo_events import operators\noperators._timed",
        "import mnemo_events.operators as o\no.PROCESS_ERRORS",
        "from mnemo_events.no_such_module import x",
    ],
)
def test_the_check_catches_private_uses(source: str) -> None:
    """Each way of reaching a private module or name is reported."""
    assert private_uses(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from mnemo_events.event import Event",
        "from mnemo_events.operators import match, pair",
        "from mnemo_events import operators\noperators.rate",
        "import mnemo_events.logging as mlog\nmlog.get_logger",
        "from mnemo_events import __version__",
        "from .rates import _event_type",
        "import reactivex._private_is_not_our_business",
    ],
)
def test_the_check_allows_public_uses(source: str) -> None:
    """Public modules, names in __all__ and imports of other packages pass."""
    assert private_uses(source) == []
