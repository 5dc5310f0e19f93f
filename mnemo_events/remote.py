"""The live events of a running ``mnemo-events serve``, as an async iterator or an observable.

Reads ``GET /events/stream`` (server-sent events) with the API key in the ``Authorization``
header, and reconnects by itself, sending ``Last-Event-ID`` so the service replays from its
history what was published while the connection was down::

    async with RemoteStream("http://127.0.0.1:8080", api_key=key, pattern="memory.*") as events:
        async for event in events:
            ...

    observe_remote("http://127.0.0.1:8080", api_key=key).pipe(...).subscribe(...)

It reconnects when the connection drops, when the service ends the stream (a restart), and
at once when the service cuts this client off for falling behind (``mnemo:resume``). When
the last id is no longer in the service's history, the stream goes on and :attr:`gaps`
counts it (a ``remote.gap`` warning says so): those events cannot be replayed. The service's
``retry:`` sets the wait between attempts (3 s by default), doubled after each failed
attempt up to 30 s; ``max_reconnects`` bounds consecutive failures. An answer that retrying
cannot fix (401, 400, 404) raises :class:`~mnemo_events.exceptions.RemoteStreamError` at
once. SSE parsing is httpx-sse's, over an httpx client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

import httpx
import reactivex
from httpx_sse import SSEError, aconnect_sse
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from mnemo_events._log import logger
from mnemo_events.event import Event
from mnemo_events.exceptions import RemoteStreamError

__all__ = ["RemoteStream", "observe_remote"]

_log = logger("remote")

_RESUME_EVENT = "mnemo:resume"  # mnemo_events.server._sse.RESUME_EVENT
_GAP_EVENT = "mnemo:gap"  # mnemo_events.server._sse.GAP_EVENT
_DEFAULT_RETRY_SECONDS = 3.0
_MAX_RETRY = 30.0
_FATAL = frozenset({400, 401, 403, 404, 405})


def _public(url: str) -> str:
    """The URL without user info, for logs and messages."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url


class RemoteStream:
    """Async iterator over the events a running service publishes, reconnecting by itself.

    Args:
        url: the service's base URL (``http://127.0.0.1:8080``).
        api_key: the service's ``server.api_key``, sent as ``Authorization: Bearer``.
        pattern: which event types (``memory.*``; default every event).
        last_event_id: resume after this message id (an event id, or an ``id`` the service
            sent: on JetStream it carries the stream sequence, and the service resumes from
            the stream).
        max_reconnects: consecutive failed attempts before giving up (None: never).
        read_timeout: seconds without a byte (the service sends a keep-alive every 15 s)
            before the connection counts as dead.
        transport: an httpx transport, for tests or proxies.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        pattern: str = ">",
        last_event_id: str | None = None,
        max_reconnects: int | None = None,
        read_timeout: float = 45.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_reconnects is not None and max_reconnects < 0:
            raise ValueError(f"max_reconnects must be >= 0 or None, got {max_reconnects}")
        self._url = url.rstrip("/") + "/events/stream"
        self._shown = _public(self._url)
        self._pattern = pattern
        self._headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._max_reconnects = max_reconnects
        self._timeout = httpx.Timeout(10.0, read=read_timeout)
        self._transport = transport
        self._retry = _DEFAULT_RETRY_SECONDS
        self._events: AsyncIterator[Event] | None = None
        self._resume_now = False
        self._closed = False
        self.last_event_id = last_event_id
        """The id of the last message received, where a reconnection resumes: the event's
        id, followed by ``@<stream sequence>`` when the service runs on JetStream."""
        self.reconnects = 0
        """Connections made after the first."""
        self.gaps = 0
        """Reconnections whose last id was no longer in the service's history."""

    def __repr__(self) -> str:
        return f"RemoteStream({self._shown!r}, pattern={self._pattern!r})"

    def __aiter__(self) -> RemoteStream:
        return self

    async def __anext__(self) -> Event:
        if self._closed:
            raise StopAsyncIteration
        if self._events is None:
            self._events = self._run()
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Close the connection; iteration ends for good."""
        self._closed = True
        events, self._events = self._events, None
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> RemoteStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self) -> AsyncIterator[Event]:
        failures = 0
        connected = False
        async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as client:
            while True:
                self._resume_now = False
                try:
                    async for event in self._connect(client):
                        if event is None:  # connected
                            self.reconnects += connected
                            connected, failures = True, 0
                            continue
                        yield event
                    reason = "the service ended the stream"
                except (httpx.TransportError, SSEError) as err:
                    failures += 1
                    reason = f"{type(err).__name__}: {err}"
                    if self._max_reconnects is not None and failures > self._max_reconnects:
                        raise RemoteStreamError(
                            f"cannot stream from {self._shown} after {failures} attempts ({reason})"
                        ) from None
                if self._resume_now:
                    reason, wait = "cut off for falling behind", 0.0
                else:
                    wait = min(self._retry * 2 ** max(failures - 1, 0), _MAX_RETRY)
                _log.warning("remote.reconnecting", url=self._shown, error=reason, retry_in=wait)
                await asyncio.sleep(wait)

    async def _connect(self, client: httpx.AsyncClient) -> AsyncIterator[Event | None]:
        """One connection's events; None once connected."""
        headers = dict(self._headers)
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        params = {"pattern": self._pattern}
        async with aconnect_sse(client, "GET", self._url, params=params, headers=headers) as src:
            status = src.response.status_code
            if status != 200:
                detail = (await src.response.aread()).decode("utf-8", "replace")
                with contextlib.suppress(ValueError, AttributeError):
                    detail = json.loads(detail).get("detail", detail)
                problem = f"{self._shown} answered {status}: {str(detail)[:300]}"
                if status in _FATAL:
                    raise RemoteStreamError(problem)
                raise httpx.TransportError(problem)
            _log.info(
                "remote.connected",
                url=self._shown,
                pattern=self._pattern,
                last_event_id=self.last_event_id,
            )
            yield None
            async for message in src.aiter_sse():
                if message.retry is not None:
                    self._retry = message.retry / 1000
                if message.event == _RESUME_EVENT:
                    self._resume_now = True  # cut off for falling behind: resume at once
                    return
                if message.event == _GAP_EVENT:
                    self.gaps += 1
                    _log.warning("remote.gap", url=self._shown, last_event_id=self.last_event_id)
                    continue
                if not message.data:
                    continue
                event = Event.from_dict(json.loads(message.data))
                # The message id is the resume point: the event id, plus its stream
                # sequence when the service runs on JetStream.
                self.last_event_id = message.id or event.id
                yield event


def observe_remote(
    url: str, *, on_observer_error: Callable[[Exception], None] | None = None, **options: Any
) -> Observable[Event]:
    """The live events of a running service as an RxPY observable (one stream each
    subscription).

    Subscribe from inside a running asyncio loop (a notebook's, an application's): the
    connection is a task on it, and disposing the subscription closes it. ``options`` are
    :class:`RemoteStream`'s. An observer whose ``on_next`` raises is logged
    (``remote.observer_failed``) and the stream goes on; a :class:`RemoteStreamError`
    reaches ``on_error``.

    ::

        ---e1---e2---(reconnect)---e3---e4--->   one event each, none missed
    """

    def _subscribe(
        observer: abc.ObserverBase[Event], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        stream = RemoteStream(url, **options)

        async def _pump() -> None:
            try:
                async for event in stream:
                    try:
                        observer.on_next(event)
                    except Exception as err:
                        _log.error("remote.observer_failed", error=repr(err), event_id=event.id)
                        if on_observer_error is not None:
                            on_observer_error(err)
            except RemoteStreamError as err:
                observer.on_error(err)
                return
            finally:
                await stream.aclose()
            observer.on_completed()

        task = asyncio.get_running_loop().create_task(_pump())

        def _dispose() -> None:
            task.cancel()

        return Disposable(_dispose)

    return reactivex.create(_subscribe)
