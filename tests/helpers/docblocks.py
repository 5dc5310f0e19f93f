"""Running the python blocks of a Markdown document as a reader would.

:func:`python_blocks` extracts the blocks, :func:`undefined_names` finds the names a block
uses without defining (the ones the document leaves to the reader), and
:class:`ThreadedReceiver` is the test receiver on its own thread, so a block may call
``asyncio.run`` itself while the receiver answers.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.helpers.receiver import Received, Receiver

__all__ = ["Block", "ThreadedReceiver", "compile_block", "python_blocks", "undefined_names"]

_FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Block:
    """One python block: where it starts, the heading above it, and its code."""

    line: int
    heading: str
    code: str

    @property
    def name(self) -> str:
        """A test id: the heading and the line."""
        return f"{self.heading or 'top'}@{self.line}"


def python_blocks(markdown: str) -> list[Block]:
    """Every ```` ```python ```` block, with the nearest heading above it."""
    blocks = []
    for match in _FENCE.finditer(markdown):
        before = markdown[: match.start()]
        headings = re.findall(r"^#+ (.+)$", before, flags=re.M)
        line = before.count("\n") + 1
        blocks.append(Block(line, headings[-1] if headings else "", match.group(1)))
    return blocks


def _bound(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def undefined_names(code: str) -> set[str]:
    """Names the code reads but never binds, builtins excepted."""
    tree = ast.parse(code)
    loaded = {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }
    return loaded - _bound(tree) - set(dir(builtins))


def compile_block(code: str, where: str) -> Any:
    """Compile a block as a notebook cell would (top-level ``await`` allowed)."""
    return compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


class ThreadedReceiver:
    """A :class:`Receiver` running on its own event loop in a thread (a context manager)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._receiver = Receiver()

    def __enter__(self) -> ThreadedReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._receiver.__aenter__(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._receiver.__aexit__(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def url(self, path: str = "/hook") -> str:
        """The URL of a path on the receiver."""
        return self._receiver.url(path)

    def expect_secret(self, path: str, secret: str) -> None:
        """Check the ``X-MnemoCore-Signature`` of requests to ``path`` with ``secret``."""
        self._receiver.secrets[path] = secret

    def requests(self) -> list[Received]:
        """A copy of the requests received so far."""
        return list(iter_copy(self._receiver.requests))

    async def wait_for(self, count: int, within: float = 10.0) -> None:
        """Wait (from another loop) until ``count`` requests arrived."""
        future = asyncio.run_coroutine_threadsafe(
            self._receiver.wait_for(count, within=within), self._loop
        )
        await asyncio.wrap_future(future)


def iter_copy(items: list[Received]) -> Iterator[Received]:
    """The items of a list another thread appends to, as of now."""
    yield from items[: len(items)]
