"""The service's middlewares: JSON errors, bearer-key auth, the request-body limit.

Every error leaves as a JSON body ``{"error", "status", "detail", "problems"}``: malformed
JSON is a 400, an invalid payload a 422 listing every problem, an unknown id a 404, a body
over ``server.max_body_bytes`` a 413, a body not sent within ``server.body_timeout`` a 408.
Request bodies are strict RFC 8259 JSON: no ``NaN``/``Infinity``, no number that overflows
to infinity, no integer of more than :data:`MAX_INTEGER_DIGITS` digits, no nesting deeper
than :data:`MAX_BODY_DEPTH` (each a 400), no lone surrogate (a 422); each names the problem, decided
before any of it reaches the bus or a log line.

An unexpected exception is logged with its type and stack (file, line, function) only: no
exception message and no local variables, whatever renderer the application configured, so
neither a secret nor a user payload reaches a log line or a traceback renderer. It is
answered with a bare 500 whose body names no internals.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from aiohttp import web

from mnemo_events._log import logger
from mnemo_events.exceptions import (
    BusClosedError,
    BusNotRunningError,
    EventValidationError,
    InvalidEventTypeError,
    InvalidPatternError,
    QueueFullError,
    TransportError,
    WebhookConfigError,
    WebhookError,
    WebhookNotFoundError,
)

__all__ = [
    "BODY_TIMEOUT",
    "MAX_BODY_DEPTH",
    "MAX_INTEGER_DIGITS",
    "OPEN_PATHS",
    "OPEN_PREFIXES",
    "ApiError",
    "auth_middleware",
    "body_limit_middleware",
    "decode_json",
    "error_middleware",
    "problem_response",
    "query_int",
    "query_middleware",
    "read_body",
    "read_json",
    "safe_traceback",
]

_log = logger("server")
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPEN_PATHS = frozenset({"/healthz", "/", "/docs"})
"""Paths served without an API key (the dashboard and docs pages ask for it themselves)."""
OPEN_PREFIXES = ("/ui/",)
"""Path prefixes served without an API key: the dashboard's static files."""

MAX_BODY_DEPTH = 100
"""Deepest nesting of arrays and objects a request body may have (an event's ``data`` is
bounded more tightly by the bus)."""
MAX_INTEGER_DIGITS = 64
"""Longest integer literal (digits) a request body may hold."""
BODY_TIMEOUT = web.AppKey("mnemo_events.body_timeout", float)
"""Seconds a handler waits for the whole request body (``server.body_timeout``)."""


class ApiError(Exception):
    """An HTTP error with a JSON body; raised by handlers, rendered by the error middleware."""

    def __init__(
        self,
        status: int,
        detail: str,
        problems: Sequence[str] = (),
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problems = list(problems) or [detail]
        self.headers = dict(headers or {})


def problem_response(
    status: int,
    detail: str,
    problems: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A JSON error response."""
    body = {
        "error": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "problems": list(problems) or [detail],
    }
    return web.json_response(body, status=status, headers=headers)


class _BodyError(Exception):
    """A strictness problem found while decoding a body (a 400, or the status given)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _BodyError(
            f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INTEGER_DIGITS})"
        )
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise _BodyError(f"the number {shown} is out of range (it overflows to infinity)")
    return value


def _constant(text: str) -> Any:
    raise _BodyError(f"{text} is not JSON (RFC 8259 has no NaN or Infinity)")


def _check_tree(document: Any) -> None:
    """Refuse nesting deeper than MAX_BODY_DEPTH and strings that are not valid Unicode.

    Iterative, so a deep document cannot exhaust the stack here. Paths are only worked out for
    a refused string (:func:`_surrogate_path`), so a valid body pays nothing for them.
    """
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and not _is_unicode(value):
                _refuse_text(value, _surrogate_path(document))
            continue
        if isinstance(value, dict):
            children: Any = value.values()
            for key in value:
                if not key.isascii() and not _is_unicode(key):
                    _refuse_text(key, _surrogate_path(document))
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_BODY_DEPTH:
            raise _BodyError(f"it nests deeper than {MAX_BODY_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _surrogate_path(document: Any) -> str:
    """Where in the body the first string that is not Unicode stands (``description``,
    ``headers.X-Team``, ``events[2]``; a key is named by its object's path)."""
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if not _is_unicode(value):
                return path
        elif isinstance(value, dict):
            for key, child in value.items():
                if not _is_unicode(key):
                    return f"{path} (a key)" if path else "a key"
                stack.append((child, f"{path}.{key}" if path else key))
        elif isinstance(value, list):
            stack.extend((child, f"{path}[{n}]") for n, child in enumerate(value))
    return ""


def _refuse_text(text: str, path: str) -> None:
    start = next(n for n, char in enumerate(text) if 0xD800 <= ord(char) <= 0xDFFF)
    where = f"{path}: " if path else ""
    raise _BodyError(
        f"{where}a string holds a lone surrogate (\\u{ord(text[start]):04x}), which is not "
        "Unicode text",
        422,
    )


def decode_json(raw: bytes) -> Any:
    """``raw`` decoded as strict JSON (see the module docstring).

    Raises:
        ApiError: 400 naming the problem.
    """
    if not raw.strip():
        raise ApiError(400, "the request body is empty; send a JSON document")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ApiError(
            400, f"the request body is not UTF-8: {err.reason} at byte {err.start}"
        ) from None
    try:
        document = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
        _check_tree(document)
    except _BodyError as err:
        raise ApiError(err.status, f"the request body is refused: {err}") from None
    except RecursionError:  # the C scanner stops around the interpreter's recursion limit
        raise ApiError(
            400, f"the request body is refused: it nests deeper than {MAX_BODY_DEPTH} levels"
        ) from None
    except json.JSONDecodeError as err:
        raise ApiError(
            400,
            f"the request body is not valid JSON: {err.msg} (line {err.lineno}, column "
            f"{err.colno})",
        ) from None
    return document


async def read_json(request: web.Request) -> Any:
    """The request body decoded as strict JSON, read within ``body_timeout`` seconds.

    Raises:
        ApiError: 400 for an empty body, bad UTF-8, malformed or non-strict JSON; 408 when
            the body is not fully sent in time (413 comes from aiohttp when the body exceeds
            the limit).
    """
    return decode_json(await read_body(request))


async def read_body(request: web.Request) -> bytes:
    """The raw request body, read within the service's ``body_timeout`` (408 otherwise)."""
    timeout = request.app.get(BODY_TIMEOUT, 30.0)
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise ApiError(
            408,
            f"the request body was not fully sent within {timeout:g} s (server.body_timeout)",
            headers={"Connection": "close"},
        ) from None


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """The integer query parameter ``name`` (``default`` when absent), from ``low`` to ``high``.

    Only ASCII digits count (``"²".isdigit()`` is true, yet ``int("²")`` fails).

    Raises:
        ApiError: 400 naming the parameter, the range and the value given.
    """
    raw = request.query.get(name)
    if raw is None:
        return default
    digits = raw[1:] if raw[:1] in "+-" and len(raw) > 1 else raw
    value = int(raw) if digits.isascii() and digits.isdigit() and len(digits) <= 9 else None
    if value is None or not low <= value <= high:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise ApiError(
            400,
            f"query parameter {name!r} must be an integer from {low} to {high}, got {shown!r}",
        )
    return value


def safe_traceback(err: BaseException) -> str:
    """The exception's type and stack (file, line, function, source line), without its message
    or any local variable: safe to log whatever the exception holds."""
    frames = traceback.extract_tb(err.__traceback__)
    lines = [
        f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}\n'
        + (f"    {frame.line.strip()}\n" if frame.line else "")
        for frame in frames[-30:]
    ]
    skipped = len(frames) - 30
    head = "Traceback (most recent call last):\n"
    if skipped > 0:
        head += f"  [{skipped} earlier frames not shown]\n"
    return head + "".join(lines) + f"{type(err).__module__}.{type(err).__qualname__}"


def _from_exception(err: Exception) -> web.Response | None:
    """The response for a library error, or None when it is not one we translate."""
    if isinstance(err, ApiError):
        return problem_response(err.status, err.detail, err.problems, err.headers)
    if isinstance(err, EventValidationError):
        return problem_response(422, str(err), err.errors)
    if isinstance(err, InvalidEventTypeError | InvalidPatternError | WebhookConfigError):
        return problem_response(422, str(err))
    if isinstance(err, WebhookNotFoundError):
        return problem_response(404, str(err))
    if isinstance(err, QueueFullError):
        return problem_response(503, str(err), headers={"Retry-After": "1"})
    if isinstance(err, BusClosedError | BusNotRunningError):
        return problem_response(503, str(err), headers={"Retry-After": "1"})
    if isinstance(err, TransportError):  # JetStream refused or did not answer; named in the text
        return problem_response(503, str(err), headers={"Retry-After": "1"})
    if isinstance(err, WebhookError):  # e.g. redelivering a delivery that is still pending
        return problem_response(409, str(err))
    return None


def error_middleware(counts: Counter[int]) -> Any:
    """Translate every failure into a JSON response and count responses by status."""

    @web.middleware
    async def _errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                counts[exc.status] += 1
                raise
            response = problem_response(
                exc.status, _describe(request, exc), headers=_kept_headers(exc)
            )
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as err:
            translated = _from_exception(err)
            if translated is None:
                # No exc_info: a configured renderer would print local variables (the API
                # key, a payload). Type and stack only, rendered here at a bounded cost.
                _log.error(
                    "server.unhandled_error",
                    method=request.method,
                    path=request.path,
                    error=type(err).__name__,
                    traceback=safe_traceback(err),
                )
                translated = problem_response(
                    500, "an unexpected error occurred; it was logged by the server"
                )
            response = translated
        counts[response.status] += 1
        return response

    return _errors


def _describe(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"no such resource: {request.method} {request.path}"
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return f"method {request.method} is not allowed on {request.path} (allowed: {allowed})"
    if exc.status == 413:
        return f"the request body is too large: {exc.text}"
    return exc.text or exc.reason


def _kept_headers(exc: web.HTTPException) -> dict[str, str]:
    keep = ("Allow", "WWW-Authenticate", "Retry-After")
    return {name: exc.headers[name] for name in keep if name in exc.headers}


def auth_middleware(api_key: str | None) -> Any:
    """Require ``Authorization: Bearer <api_key>`` on every path but :data:`OPEN_PATHS`.

    With no key configured the service is open (it then only binds to loopback). The key is
    compared in constant time, as bytes: a header that is not UTF-8 (aiohttp hands its bytes
    over as surrogate escapes) is simply a wrong key, a 401.
    """
    expected = api_key.encode("utf-8", "surrogateescape") if api_key is not None else None

    @web.middleware
    async def _auth(request: web.Request, handler: _Handler) -> web.StreamResponse:
        path = request.path
        if expected is None or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="mnemo-events"'}
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(
                401,
                "missing API key: send the header 'Authorization: Bearer <key>'",
                headers=challenge,
            )
        if not hmac.compare_digest(_header_bytes(given.strip()), expected):
            raise ApiError(401, "invalid API key", headers=challenge)
        return await handler(request)

    return _auth


def _header_bytes(text: str) -> bytes:
    """A header value back as the bytes sent; b"" (never a match) if it cannot be."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return b""


def query_middleware(documented: Mapping[tuple[str, str], frozenset[str]]) -> Any:
    """Refuse a query parameter the OpenAPI document does not list for the route (400): a
    typo such as ``?limt=5`` is named instead of silently ignored.

    Routes the document does not describe, and the live stream (whose handler has its own
    owner), are left alone.
    """

    @web.middleware
    async def _query(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.query:
            resource = request.match_info.route.resource
            template = resource.canonical if resource is not None else None
            allowed = documented.get((request.method, template or ""))
            if allowed is not None and template != "/events/stream":
                unknown = sorted(set(request.query) - allowed)
                if unknown:
                    shown = [name if len(name) <= 40 else name[:40] + "..." for name in unknown]
                    expected = ", ".join(sorted(allowed)) or "none"
                    raise ApiError(
                        400,
                        f"unknown query parameter(s) {shown} on {request.method} {template} "
                        f"(expected: {expected})",
                    )
        return await handler(request)

    return _query


def body_limit_middleware(limit: int) -> Any:
    """Refuse a declared ``Content-Length`` over ``limit`` before reading the body (413).

    Bodies without a length (chunked) are bounded by the application's ``client_max_size``.
    """

    @web.middleware
    async def _limit(request: web.Request, handler: _Handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > limit:
            raise ApiError(
                413,
                f"the request body is {length} bytes; the limit is {limit} (server.max_body_bytes)",
            )
        return await handler(request)

    return _limit
