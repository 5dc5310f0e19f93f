"""What the suite ran on: CPU, cores, Python, package versions, date and commit."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

__all__ = ["PACKAGES", "describe"]

PACKAGES = ("mnemo-events", "reactivex", "pyee", "blinker", "aiohttp")
_ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _cores() -> str:
    total = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = total
    return f"{total} ({usable} usable by this process)" if usable != total else str(total)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=_ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _commit() -> str:
    head = _git("rev-parse", "--short", "HEAD")
    if not head:
        return "unknown"
    dirty = _git("status", "--porcelain", "--", "mnemo_events", "benchmarks")
    return f"{head} with uncommitted changes" if dirty else head


def describe() -> dict[str, str]:
    """The machine and software of this run, as ordered label -> value pairs."""
    loop = asyncio.new_event_loop()
    loop_name = type(loop).__name__
    loop.close()
    info = {
        "CPU": _cpu_model(),
        "Cores": _cores(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": platform.platform(),
        "Event loop": f"asyncio {loop_name}",
    }
    info.update({package: _version(package) for package in PACKAGES})
    info["Commit"] = _commit()
    info["Date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return info
