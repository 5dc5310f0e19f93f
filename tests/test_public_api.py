"""The public API: what `mnemo_events` re-exports, and the reference's module paths."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import mnemo_events
from mnemo_events import exceptions

# The package builds `__all__` at runtime from its `__init__.pyi` stub (lazy_loader), and the
# stub, which is what mypy reads, does not declare it; read it from the module's namespace.
EXPORTED: list[str] = vars(mnemo_events)["__all__"]

PUBLIC_MODULES = [
    "mnemo_events.config",
    "mnemo_events.event",
    "mnemo_events.event_bus",
    "mnemo_events.exceptions",
    "mnemo_events.integration",
    "mnemo_events.logging",
    "mnemo_events.operators",
    "mnemo_events.patterns",
    "mnemo_events.schemas",
    "mnemo_events.simulation",
    "mnemo_events.webhook_manager",
    "pipelines",
]


def test_all_is_sorted_unique_and_resolvable() -> None:
    """`__all__` is sorted, has no duplicates, and every name in it exists."""
    names = EXPORTED
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    assert [name for name in names if not hasattr(mnemo_events, name)] == []


def test_stub_names_and_all_agree() -> None:
    """Every name the `__init__.pyi` stub re-exports is in `__all__`, and nothing else is."""
    stub = Path(mnemo_events.__file__).with_suffix(".pyi")
    tree = ast.parse(stub.read_text())
    names = {
        a.asname for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for a in node.names
    }
    assert names | {"__version__"} == set(EXPORTED)


def test_importing_a_submodule_does_not_load_the_webhook_stack() -> None:
    """`import mnemo_events.event_bus` stays light: aiohttp loads only when needed."""
    code = (
        "import sys, mnemo_events.event_bus; "
        "print('aiohttp' in sys.modules, 'mnemo_events.webhook_manager' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_modules_declare_resolvable_all(module_name: str) -> None:
    """Each public module declares `__all__`, and every name in it exists."""
    module = importlib.import_module(module_name)
    assert [name for name in module.__all__ if not hasattr(module, name)] == []


def test_every_exception_is_exported_at_the_top() -> None:
    """The whole error tree is importable from `mnemo_events`."""
    assert set(exceptions.__all__) <= set(EXPORTED)


def test_version_comes_from_package_metadata() -> None:
    """`__version__` is the installed distribution's version, not a typed string."""
    assert mnemo_events.__version__ == version("mnemo-events")


def test_reference_import_paths_work() -> None:
    """The reference's imports work with `mnemocore.events` spelled `mnemo_events`."""
    from mnemo_events.event_bus import get_event_bus, reset_event_bus
    from mnemo_events.integration import emit_dream_completed, emit_memory_created
    from mnemo_events.schemas import export_openapi_spec, list_event_types, validate_event
    from mnemo_events.webhook_manager import RetryConfig, WebhookSignature, get_webhook_manager

    assert callable(get_event_bus)
    assert callable(reset_event_bus)
    assert callable(emit_memory_created)
    assert callable(emit_dream_completed)
    assert callable(validate_event)
    assert callable(list_event_types)
    assert callable(export_openapi_spec)
    assert callable(get_webhook_manager)
    assert RetryConfig().max_attempts == 5
    assert hasattr(WebhookSignature, "verify")
