"""The library's loggers: quiet until the application asks for more.

The library never calls ``structlog.configure()``. Until the application (or the CLI's
``configure_logging``) configures structlog, lines go to the standard library's logger
``mnemo_events.<component>``, so ``logging.basicConfig(level=logging.INFO)`` shows the info
lines, and with nothing configured only warnings and above appear, on stderr (logging's
last-resort handler), never on stdout. Once structlog is configured, lines go through it and
:func:`set_library_level` sets the bar. Float fields are rounded to three decimals.
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

    def _emit(self, method: str, event: str, fields: dict[str, Any]) -> None:
        values = {key: _rounded(value) for key, value in {**self._values, **fields}.items()}
        if structlog.is_configured():  # the application's structlog (configure_logging)
            getattr(structlog.get_logger("mnemo_events"), method)(event, **values)
        else:
            _to_stdlib(method, event, values)

    def debug(self, event: str, **fields: Any) -> None:
        """Log at debug level."""
        if _state["level"] <= logging.DEBUG or _stdlib_wants(logging.DEBUG):
            self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log at info level."""
        if _state["level"] <= logging.INFO or _stdlib_wants(logging.INFO):
            self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log at warning level."""
        if _state["level"] <= logging.WARNING or _stdlib_wants(logging.WARNING):
            self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log at error level."""
        if _state["level"] <= logging.ERROR or _stdlib_wants(logging.ERROR):
            self._emit("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """Log at error level with the current exception's traceback."""
        if _state["level"] <= logging.ERROR or _stdlib_wants(logging.ERROR):
            self._emit("exception", event, fields)


# -- routing to the standard library's logging ----------------------------------------------
# Until structlog is configured, the library's lines go to the stdlib logger
# "mnemo_events.<component>": an application's logging.basicConfig(level=logging.INFO) shows
# its info lines; with nothing configured, stdlib's last-resort handler shows warnings and
# above on stderr, never stdout.

STDLIB_ROOT = "mnemo_events"
_stdlib = logging.getLogger(STDLIB_ROOT)
_STDLIB_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
}


def _stdlib_wants(level: int) -> bool:
    # isEnabledFor is cached by the logging module (one dict look-up per call).
    return not structlog.is_configured() and _stdlib.isEnabledFor(level)


def _rounded(value: Any) -> Any:
    """Floats to three decimals (``retry_in=0.229``, not ``0.22923892017164815``)."""
    return round(value, 3) if type(value) is float else value


def _to_stdlib(method: str, event: str, values: dict[str, Any]) -> None:
    component = values.get("component")
    target = logging.getLogger(f"{STDLIB_ROOT}.{component}") if component else _stdlib
    level = _STDLIB_LEVELS[method]
    if not target.isEnabledFor(level):
        return
    exc_info = values.pop("exc_info", None) or (method == "exception")
    text = " ".join(
        [
            event,
            *(
                f"{key}={value!r}" if isinstance(value, str) and " " in value else f"{key}={value}"
                for key, value in values.items()
            ),
        ]
    )
    target.log(
        level,
        "%s",
        text,
        exc_info=exc_info,
        extra={"mnemo_event": event, "mnemo_fields": values},
        stacklevel=4,
    )


def logger(component: str, **bound: Any) -> LibraryLogger:
    """The library logger of one component (``"bus"``, ``"webhooks"``, ...)."""
    return LibraryLogger({"component": component, **bound})
