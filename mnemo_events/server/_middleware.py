"""The service's middlewares: JSON errors, bearer-key auth, the request-body limit.

Every error leaves as a JSON body ``{"error", "status", "detail", "problems"}``: malformed
JSON is a 400, an invalid payload a 422 listing every problem, an unknown id a 404, a body
over ``server.max_body_bytes`` a 413. An unexpected exception is logged with its traceback
and answered with a bare 500 whose body names no internals.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from aiohttp import web

from mnemo_events._log import logger
from mnemo_events.exceptions import (
    BusClosedError,
    EventValidationError,
    InvalidEventTypeError,
    InvalidPatternError,
    QueueFullError,
    WebhookConfigError,
    WebhookError,
    WebhookNotFoundError,
)

__all__ = [
    "OPEN_PATHS",
    "OPEN_PREFIXES",
    "ApiError",
    "auth_middleware",
    "body_limit_middleware",
    "error_middleware",
    "problem_response",
    "read_json",
]

_log = logger("server")
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPEN_PATHS = frozenset({"/healthz", "/", "/docs"})
"""Paths served without an API key (the dashboard and docs pages ask for it themselves)."""
OPEN_PREFIXES = ("/ui/",)
"""Path prefixes served without an API key: the dashboard's static files."""


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


async def read_json(request: web.Request) -> Any:
    """The request body decoded as JSON.

    Raises:
        ApiError: 400 for an empty body, bad UTF-8 or malformed JSON (413 comes from aiohttp
            when the body exceeds the limit).
    """
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "the request body is empty; send a JSON document")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ApiError(
            400, f"the request body is not UTF-8: {err.reason} at byte {err.start}"
        ) from None
    except json.JSONDecodeError as err:
        raise ApiError(
            400,
            f"the request body is not valid JSON: {err.msg} (line {err.lineno}, column "
            f"{err.colno})",
        ) from None


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
    if isinstance(err, BusClosedError):
        return problem_response(503, str(err))
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
                _log.exception(
                    "server.unhandled_error",
                    method=request.method,
                    path=request.path,
                    error=repr(err),
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
    compared in constant time.
    """
    expected = api_key.encode("utf-8") if api_key is not None else None

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
        if not hmac.compare_digest(given.strip().encode("utf-8"), expected):
            raise ApiError(401, "invalid API key", headers=challenge)
        return await handler(request)

    return _auth


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
