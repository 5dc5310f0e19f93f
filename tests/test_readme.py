"""The README stays true: its commands, its code and its list of log events."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import re
from pathlib import Path
from typing import Any

import pytest
import structlog

from mnemo_events import EventBus
from tests.helpers.docblocks import (
    Block,
    ThreadedReceiver,
    compile_block,
    python_blocks,
    undefined_names,
)
from tests.helpers.payloads import VALID_PAYLOADS
from tests.helpers.service import API_KEY, running_service, service_settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
_LOG_METHODS = {"debug", "info", "warning", "error", "exception"}


def _log_event_names() -> set[str]:
    """Every event name passed to a log call in the library and the pipelines."""
    names: set[str] = set()
    for path in [*(ROOT / "mnemo_events").rglob("*.py"), *(ROOT / "pipelines").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in _LOG_METHODS:
                candidates = node.args[:1]
            elif name == "_record_error":  # the subscription actor's failure logger
                candidates = node.args[1:2]
            else:
                continue
            for arg in candidates:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value)
    return names


def test_every_log_event_is_listed_in_the_readme() -> None:
    """Each log line's event name appears in the README's logging table."""
    names = _log_event_names()
    assert len(names) > 40  # the scan itself works
    listed = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", README))
    assert sorted(names - listed) == []


def test_readme_opens_with_the_two_commands() -> None:
    """The first sh block holds exactly the install-and-demo and install-and-test commands."""
    block = README.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) == 2
    assert lines[0].endswith("mnemo-events demo")
    assert lines[1].endswith("pytest")
    assert all(line.startswith("python3 -m venv .venv && ") for line in lines)


def test_python_examples_are_valid_python() -> None:
    """Every python block in the README parses (top-level await allowed, as in a notebook)."""
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks
    for block in blocks:
        compile(block, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def _runnable(code: str, receiver_url: str) -> str:
    """The block with its URLs pointed at the local receiver, which the manager may reach."""
    code = re.sub(r'"https://[^"]+"', repr(receiver_url), code)
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "WebhookManager"
        ):
            node.keywords.append(
                ast.keyword(arg="allow_private_networks", value=ast.Constant(value=True))
            )
    return ast.unparse(tree)


async def _run_with_service(code: str, where: str, tmp_path: Path) -> None:
    """Run a block that reads a running service's stream: a real service on 127.0.0.1 whose
    bus publishes one event every 50 ms (at most 200) while the block runs."""
    async with running_service(service_settings(tmp_path)) as service:
        os.environ["MNEMO_EVENTS_URL"], os.environ["MNEMO_EVENTS_API_KEY"] = service.url, API_KEY

        async def publish() -> None:
            for n in range(200):
                await service.bus.publish(
                    "memory.created", {**VALID_PAYLOADS["memory.created"], "memory_id": f"m{n}"}
                )
                await asyncio.sleep(0.05)

        publisher = asyncio.create_task(publish())
        try:
            await asyncio.wait_for(_run_with_bus(code, where), timeout=10)
        finally:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher


async def _run_with_bus(code: str, where: str) -> dict[str, Any]:
    async with EventBus() as bus:
        namespace: dict[str, Any] = {"__name__": "__main__"}
        needed = undefined_names(code)
        assert needed <= {"bus"}, f"{where} needs names nobody provides: {sorted(needed)}"
        if "bus" in needed:
            namespace["bus"] = bus
        result = eval(compile_block(code, where), namespace)
        if asyncio.iscoroutine(result):
            await result
        return namespace


README_BLOCKS = python_blocks(README)


@pytest.mark.parametrize("block", README_BLOCKS, ids=[b.name for b in README_BLOCKS])
def test_python_examples_run(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every python block of the README runs as written (given only ``bus`` when it uses one
    undefined, its URLs pointed at a local receiver), files landing in a temporary directory."""
    monkeypatch.chdir(tmp_path)
    where = f"README.md:{block.line}"
    try:
        with ThreadedReceiver() as receiver:
            code = _runnable(block.code, receiver.url())
            if "MNEMO_EVENTS_URL" in code:  # reads a running service
                monkeypatch.setenv("MNEMO_EVENTS_URL", "")
                monkeypatch.setenv("MNEMO_EVENTS_API_KEY", "")
                asyncio.run(_run_with_service(code, where, tmp_path))
            elif "asyncio.run(" in code:  # a whole program: it brings its own loop and bus
                assert undefined_names(code) == set()
                exec(compile_block(code, where), {"__name__": "__main__"})
            else:
                asyncio.run(_run_with_bus(code, where))
    finally:
        structlog.reset_defaults()  # the logging example configures structlog
    if block.heading == "Quickstart":
        assert "'total_published': 1" in capsys.readouterr().out


def test_every_test_the_survival_table_names_exists() -> None:
    """Each row of "What survives what" names tests that exist (file, class and function)."""
    section = README.split("## What survives what", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(tests/[\w/]+\.py(?:::\w+)*)`", section)
    assert len(named) >= 15
    missing = []
    for reference in named:
        path, *parts = reference.split("::")
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        scope: list[ast.stmt] = tree.body
        for part in parts:
            found = [
                node
                for node in scope
                if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                and node.name == part
            ]
            if not found:
                missing.append(reference)
                break
            scope = found[0].body
    assert missing == []
