"""The library's structlog loggers: quiet until the application asks for more.

The library never calls ``structlog.configure()``. Until the application (or the CLI) does,
structlog's default prints every level to stdout, so the library's own loggers drop lines below
``warning`` unless :func:`set_library_level` (used by ``configure_logging``) lowers the bar.
A dropped line costs one integer comparison, so debug lines may sit on hot paths.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

__all__ = [
    "LibraryLogger",
    "current_level",
    "library_level",
    "logger",
    "set_library_level",
]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_state = {"level": logging.WARNING}
current_level = _state
"""The live threshold, for hot paths that test it inline: ``current_level["level"] <= 10``."""


def parse_level(level: str | int) -> int:
    """A level name (``"info"``) or number as a :mod:`logging` number."""
    if isinstance(level, int):
        return level
    try:
        return _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r}; expected one of {', '.join(_LEVELS)}"
        ) from None


def set_library_level(level: str | int) -> None:
    """Let the library's log lines at ``level`` and above through (default ``warning``)."""
    _state["level"] = parse_level(level)


def library_level() -> int:
    """The current minimum level of the library's log lines."""
    return _state["level"]


class LibraryLogger:
    """A structlog logger that drops lines below the library level before any processing.

    The structlog logger is looked up per line (only for lines that pass the level), so an
    application that configures structlog after importing the library, or a test capturing
    logs, sees every line with its current settings.
    """

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def bind(self, **values: Any) -> LibraryLogger:
        """A logger with ``values`` bound to every line."""
        return LibraryLogger({**self._values, **values})

    def is_enabled_for(self, level: int) -> bool:
        """Whether a line at ``level`` (a :mod:`logging` number) would be emitted."""
        return _state["level"] <= level

    def _emit(self, method: str, event: str, fields: dict[str, Any]) -> None:
        target = structlog.get_logger("mnemo_events")
        getattr(target, method)(event, **self._values, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        """Log at debug level."""
        if _state["level"] <= logging.DEBUG:
            self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log at info level."""
        if _state["level"] <= logging.INFO:
            self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log at warning level."""
        if _state["level"] <= logging.WARNING:
            self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log at error level."""
        if _state["level"] <= logging.ERROR:
            self._emit("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """Log at error level with the current exception's traceback."""
        if _state["level"] <= logging.ERROR:
            self._emit("exception", event, fields)


def logger(component: str, **bound: Any) -> LibraryLogger:
    """The library logger of one component (``"bus"``, ``"webhooks"``, ...)."""
    return LibraryLogger({"component": component, **bound})
