"""structlog set-up for applications and the CLI, and a pipeline step that logs events.

The library never configures logging. Its lines reach the standard library's ``logging``
(loggers ``mnemo_events.<component>``) until structlog is configured; an application on
structlog calls :func:`configure_logging` once at start-up (the CLI does it for
``--log-level``/``--json-logs``). :func:`log_events` is an operator for ``.pipe(...)`` that
logs each event it passes on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Protocol, TextIO

import structlog
import structlog.tracebacks
from reactivex import Observable
from reactivex import operators as ops

from mnemo_events._log import LibraryLogger, logger, parse_level, set_library_level
from mnemo_events.event import Event
from mnemo_events.operators._support import ElementErrors, element_errors

__all__ = ["configure_logging", "get_logger", "log_events"]

_LEVEL_NAMES = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "critical"}


class _Bindable(Protocol):
    def bind(self, **values: Any) -> Any: ...


def configure_logging(
    json: bool = False, level: str | int = "info", *, stream: TextIO | None = None
) -> None:
    """Configure structlog for an application: level filter, timestamps, one renderer.

    Lines at ``level`` and above are written to ``stream`` (default ``sys.stderr``) with an
    ISO 8601 UTC ``timestamp`` and ``level``, rendered as one JSON object per line when
    ``json`` is true, else by structlog's console renderer. Also lets the library's own lines
    at ``level`` and above through (they are dropped below ``warning`` otherwise). Calling it
    again replaces the previous configuration.

    Raises:
        ValueError: ``level`` is not a level name (``debug`` ... ``critical``) or number.
    """
    number = parse_level(level)
    out = stream if stream is not None else sys.stderr
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    # Tracebacks never carry local variables (a frame may hold an API key, a signing secret or
    # a user payload), and the console renders them plainly: rich's renderer would walk
    # arbitrarily deep payloads.
    if json:
        no_locals = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        processors += [
            structlog.processors.ExceptionRenderer(no_locals),
            structlog.processors.JSONRenderer(),
        ]
    else:
        processors.append(
            structlog.dev.ConsoleRenderer(
                colors=_is_tty(out), exception_formatter=structlog.dev.plain_traceback
            )
        )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    set_library_level(number)


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (OSError, ValueError):  # a closed or detached stream
        return False


def get_logger(component: str, **bound: Any) -> LibraryLogger:
    """The library's quiet logger for ``component``, for extensions such as ``pipelines``.

    Its lines below ``warning`` are dropped unless :func:`configure_logging` (or the CLI's
    ``--log-level``) lowered the bar, or, while structlog is not configured, the standard
    library's ``mnemo_events`` logger is enabled for them.
    """
    return logger(component, **bound)


def log_events(
    logger: _Bindable | None = None,
    *,
    level: str = "info",
    errors: ElementErrors | None = None,
) -> Callable[[Observable[Event]], Observable[Event]]:
    """Pass every event on unchanged, logging it as ``events.observed``.

    Each line has ``event_id`` and ``event_type`` and the metadata's ``agent_id`` bound (None
    when absent), at ``level``. ``logger`` is any structlog-style logger with ``bind``
    (default: ``structlog.get_logger("mnemo_events.events")``, which follows the application's
    configuration). A logger that raises is counted in ``errors`` (default:
    :func:`mnemo_events.operators.element_errors`) and logged; the event still goes on.

    ::

        events: -a-b-c-|
        [   log_events()   ]      one log line per event
        result: -a-b-c-|

    Raises:
        ValueError: ``level`` is not a level name.
    """
    method = _LEVEL_NAMES[parse_level(level)]
    counter = errors or element_errors()

    def _log_one(event: Event) -> None:
        target = logger if logger is not None else structlog.get_logger("mnemo_events.events")
        try:
            bound = target.bind(agent_id=event.metadata.get("agent_id"))
            getattr(bound, method)("events.observed", event_id=event.id, event_type=event.type)
        except Exception as err:
            counter.record("log_events", event, err)

    return ops.do_action(_log_one)
