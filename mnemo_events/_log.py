"""The library's loggers: quiet until the application asks for more.

The library never calls ``structlog.configure()``. Until the application (or the CLI's
``configure_logging``) configures structlog, lines go to the standard library's logger
``mnemo_events.<component>``, so ``logging.basicConfig(level=logging.INFO)`` shows the info
lines, and with nothing configured only warnings and above appear, on stderr (logging's
last-resort handler), never on stdout. Once structlog is configured, lines go through it and
:func:`set_library_level` sets the bar. Float fields are rounded to three decimals.

The level check is decided once, when the library level changes (as structlog's filtering
bound loggers do): a method at or above it emits directly; one below it only asks whether
the standard library wants the line (a cached look-up), so debug lines may sit on hot paths.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

__all__ = [
    "LibraryLogger",
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
    _apply_level()


def library_level() -> int:
    """The current minimum level of the library's log lines."""
    return _state["level"]


class LibraryLogger:
    """A structlog logger that drops lines below the library level before any processing.

    As structlog's filtering bound loggers do, the level check is decided once, when the
    level changes (:func:`_apply_level`): each method below it is swapped for a gate that only
    asks whether the standard library wants the line (while structlog is unconfigured).

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
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log at info level."""
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log at warning level."""
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log at error level."""
        self._emit("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """Log at error level with the current exception's traceback."""
        self._emit("exception", event, fields)

    def is_enabled_for(self, level: int) -> bool:
        """Whether a line at ``level`` (a :mod:`logging` number) would be emitted."""
        # _stdlib_wants inlined, the cheaper test first: one call instead of three on the
        # hot path (publish asks for every event whether to log bus.published).
        return level >= _state["level"] or (_stdlib_enabled(level) and not _is_configured())

    def warning_every(self, count: int, every: int, event: str, **fields: Any) -> None:
        """Log the first and every ``every``-th occurrence at warning, the others at debug.

        For a failure that repeats per event (a full mailbox, a malformed producer): the
        operator sees it at once and is reminded, without one line per event.
        """
        if count == 1 or count % every == 0:
            self.warning(event, **fields)
        else:
            self.debug(event, **fields)


_METHOD_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
}
_EMITTERS = {name: LibraryLogger.__dict__[name] for name in _METHOD_LEVELS}


def _stdlib_gate(method: str, level: int) -> Any:
    """A method below the library level: emitted only if the standard library wants it."""

    def gate(self: LibraryLogger, event: str, **fields: Any) -> None:
        if _stdlib_wants(level):
            self._emit(method, event, fields)

    gate.__doc__ = _EMITTERS[method].__doc__
    return gate


_GATES = {name: _stdlib_gate(name, level) for name, level in _METHOD_LEVELS.items()}


def _apply_level() -> None:
    threshold = _state["level"]
    for name, level in _METHOD_LEVELS.items():
        setattr(LibraryLogger, name, _EMITTERS[name] if level >= threshold else _GATES[name])


# -- routing to the standard library's logging ----------------------------------------------
# Until structlog is configured, the library's lines go to the stdlib logger
# "mnemo_events.<component>": an application's logging.basicConfig(level=logging.INFO) shows
# its info lines; with nothing configured, stdlib's last-resort handler shows warnings and
# above on stderr, never stdout.

STDLIB_ROOT = "mnemo_events"
_stdlib = logging.getLogger(STDLIB_ROOT)


_stdlib_enabled = _stdlib.isEnabledFor
_is_configured = structlog.is_configured


def _stdlib_wants(level: int) -> bool:
    # isEnabledFor is cached by the logging module (one dict look-up per call); it is asked
    # first, as it is the one that usually says no.
    return _stdlib_enabled(level) and not _is_configured()


def _rounded(value: Any) -> Any:
    """Floats to three decimals (``retry_in=0.229``, not ``0.22923892017164815``)."""
    return round(value, 3) if type(value) is float else value


def _to_stdlib(method: str, event: str, values: dict[str, Any]) -> None:
    component = values.get("component")
    target = logging.getLogger(f"{STDLIB_ROOT}.{component}") if component else _stdlib
    level = _METHOD_LEVELS[method]
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


_apply_level()
