"""A small client of a running ``mnemo-events serve`` for the operator's commands.

The service's base URL comes from ``--url``, else ``MNEMO_EVENTS_URL``, else
``http://<server.host>:<server.port>`` from the configuration; the key from ``--api-key``
(inline or ``env:NAME``), else ``server.api_key`` of the configuration (by default the
``MNEMO_EVENTS_API_KEY`` variable).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Mapping
from typing import Any

import aiohttp

from mnemo_events.config import Settings
from mnemo_events.server import resolve_api_key

__all__ = ["URL_ENV_VAR", "ServiceClient", "ServiceError", "api_key_of", "base_url_of"]

URL_ENV_VAR = "MNEMO_EVENTS_URL"


class ServiceError(Exception):
    """The service answered with an error status (its JSON problem is kept)."""

    def __init__(self, method: str, path: str, status: int, detail: str, problems: list[str]):
        super().__init__(f"{method} {path} answered {status}: {detail}")
        self.status = status
        self.detail = detail
        self.problems = problems


def base_url_of(args: argparse.Namespace, settings: Settings) -> str:
    """The service's base URL (see the module docstring)."""
    chosen = getattr(args, "url", None) or os.environ.get(URL_ENV_VAR)
    if chosen:
        return str(chosen).rstrip("/")
    host = settings.server.host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.server.port}"


def api_key_of(args: argparse.Namespace, settings: Settings) -> str | None:
    """The bearer key (see the module docstring); None when none is configured."""
    given = getattr(args, "api_key", None)
    server = settings.server
    if given:
        server = server.model_copy(update={"api_key": given})
    return resolve_api_key(server)


class ServiceClient:
    """JSON requests to the service with the bearer key; errors as :class:`ServiceError`."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 30.0) -> None:
        self.base_url = base_url
        self._headers = {"Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=10)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ServiceClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """One request; the decoded JSON body (None for an empty one).

        Raises:
            ServiceError: the service answered 4xx or 5xx.
            aiohttp.ClientError: the service could not be reached.
        """
        assert self._session is not None, "use `async with ServiceClient(...)`"
        kwargs: dict[str, Any] = {"params": dict(params or {})}
        if body is not None:
            kwargs["json"] = body
        async with self._session.request(method, self.base_url + path, **kwargs) as response:
            raw = await response.read()
            decoded: Any = None
            if raw:
                with contextlib.suppress(ValueError):
                    decoded = json.loads(raw)
            if response.status >= 400:
                problem = decoded if isinstance(decoded, dict) else {}
                detail = str(problem.get("detail") or raw.decode("utf-8", "replace")[:200])
                problems = [str(p) for p in problem.get("problems") or [] if str(p) != detail]
                raise ServiceError(method, path, response.status, detail, problems)
            return decoded
