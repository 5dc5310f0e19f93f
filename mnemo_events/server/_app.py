"""The aiohttp application around one bus and one webhook manager, and its runner.

Life of a service: on start-up the webhook manager opens its store and resumes unfinished
deliveries, then the bus starts. On shutdown (SIGTERM, SIGINT) the listening socket closes,
live streams end, requests in flight finish, then the bus stops after dispatching every
accepted event (so each reaches the webhook manager and is recorded), and the manager stops:
running attempts get ``webhooks.stop_timeout`` seconds, anything unfinished stays pending in
the delivery store and is resumed by the next start.

Slow or half-sent requests are bounded: a new connection has ``server.header_timeout``
seconds to send its first request's headers, an idle keep-alive connection (or one sending a
later request's headers) ``server.keepalive_timeout`` seconds, and a request its body
``server.body_timeout`` seconds (a 408, after which the rest of the body is drained for at
most one second); past that the connection is closed.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from aiohttp import web

from mnemo_events._log import logger
from mnemo_events.config import Settings, group_transport
from mnemo_events.event_bus import EventBus
from mnemo_events.server import _events, _metrics, _openapi, _operator, _webhooks
from mnemo_events.server._middleware import (
    BODY_TIMEOUT,
    auth_middleware,
    body_limit_middleware,
    error_middleware,
    query_middleware,
)
from mnemo_events.server._state import SERVICE, Service, check_exposure, resolve_api_key
from mnemo_events.server._ui import install as install_ui
from mnemo_events.webhook_manager import WebhookManager

__all__ = ["create_app", "run_server"]

_log = logger("server")
_LINGER_SECONDS = 1.0


def create_app(
    settings: Settings | None = None,
    bus: EventBus | None = None,
    webhook_manager: WebhookManager | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> web.Application:
    """The service as an aiohttp application.

    Args:
        settings: the whole configuration (default: the built-in defaults).
        bus: a bus to serve; by default one is made from ``settings.events``.
        webhook_manager: a manager to serve; by default one is made from
            ``settings.webhooks`` (a member of the webhook group on JetStream when
            ``webhooks.transport``, or ``events.transport`` it follows, names one). It is
            attached to the bus.
        environ: where ``env:NAME`` references are looked up (default ``os.environ``).

    The application starts the bus and the manager if they are not running, and stops (on
    cleanup) the ones it created; objects passed in are left for their owner to stop.

    Raises:
        ConfigError: no API key is configured and ``server.host`` is not a loopback address.
    """
    settings = settings or Settings()
    api_key = resolve_api_key(settings.server, environ)
    check_exposure(settings.server, api_key)
    service = Service(
        settings=settings,
        bus=bus if bus is not None else EventBus(settings.events),
        webhooks=(
            webhook_manager
            if webhook_manager is not None
            else WebhookManager(config=settings.webhooks, transport=group_transport(settings))
        ),
        api_key=api_key,
        owns_bus=bus is None,
        owns_webhooks=webhook_manager is None,
    )
    service.webhooks.attach(service.bus)
    limit = settings.server.max_body_bytes
    app = web.Application(
        middlewares=[
            error_middleware(service.responses),
            auth_middleware(api_key),
            query_middleware(_openapi.query_parameters()),
            body_limit_middleware(limit),
        ],
        client_max_size=limit,
    )
    app[SERVICE] = service
    _operator.install(app)  # metrics registry, request timing, POST /webhooks/{id}/test
    app[BODY_TIMEOUT] = settings.server.body_timeout
    for table in (_events.routes, _webhooks.routes, _metrics.routes, _openapi.routes):
        app.router.add_routes(table)
    install_ui(app)  # the event stream, the dashboard, /docs
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_end_streams)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    service = app[SERVICE]
    if service.settings.webhooks.enabled:
        await service.webhooks.start()
    await service.bus.start()
    _log.info(
        "server.started",
        webhooks=len(service.webhooks.list_webhooks()),
        auth="api key" if service.api_key else "none (loopback only)",
    )
    yield
    service.closing.set()
    # The bus first: its stop dispatches every accepted event, so each reaches the manager
    # (and its store) before the manager stops.
    if service.owns_bus:
        await service.bus.shutdown()
    else:
        await service.bus.stop()
    deliveries = service.webhooks.get_metrics().get("deliveries")  # gone once stopped
    if service.owns_webhooks:
        await service.webhooks.stop()
    _log.info("server.stopped", deliveries=deliveries)


async def _end_streams(app: web.Application) -> None:
    app[SERVICE].closing.set()


async def run_server(
    app: web.Application,
    host: str,
    port: int,
    *,
    on_ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``app`` until SIGTERM or SIGINT (or ``stop`` is set), then drain and return.

    Args:
        on_ready: called with the base URL once listening (the real port when ``port`` is 0).
        stop: set it to shut down as a signal would.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            continue
    server = app[SERVICE].settings.server
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=10.0,
        access_log=None,
        keepalive_timeout=server.keepalive_timeout,
        # After an early answer (408, 413) aiohttp reads what is left of the body before
        # closing; 10 s by default, which a half-sent body would use in full.
        lingering_time=_LINGER_SECONDS,
    )
    try:
        await runner.setup()
        site = GuardedTCPSite(runner, host, port, header_timeout=server.header_timeout)
        await site.start()
        addresses = runner.addresses
        bound_port = int(addresses[0][1]) if addresses else port
        url = f"http://{host if ':' not in host else f'[{host}]'}:{bound_port}"
        _log.info("server.listening", url=url)
        if on_ready is not None:
            on_ready(url)
        await stop.wait()
        _log.info("server.draining")
    finally:
        await runner.cleanup()
        for sig in handled:
            loop.remove_signal_handler(sig)


_HEADER_ENDS = (b"\r\n\r\n", b"\n\n")


class _HeaderDeadline(asyncio.Protocol):
    """aiohttp's connection handler behind a deadline for the first request's headers.

    aiohttp only bounds a connection's idle time after a response (and, in recent releases,
    from the start); a client that opens a connection and trickles a partial request would
    otherwise hold it for as long as it likes. This closes the connection when the end of
    the first header block has not arrived within ``timeout`` seconds; later requests on a
    kept-alive connection are bounded by aiohttp's ``keepalive_timeout``.
    """

    def __init__(self, inner: asyncio.Protocol, timeout: float) -> None:
        self._inner = inner
        self._timeout = timeout
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(self._timeout, self._expire)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if any(end in seen for end in _HEADER_ENDS):
                self._timer.cancel()
                self._timer = None
                self._tail = b""
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def _expire(self) -> None:
        self._timer = None
        _log.info("server.header_timeout", timeout=self._timeout)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class GuardedTCPSite(web.TCPSite):
    """A TCP site whose connections must send their first request's headers within
    ``header_timeout`` seconds (see :class:`_HeaderDeadline`)."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, header_timeout: float
    ) -> None:
        super().__init__(runner, host, port)
        self._header_timeout = header_timeout

    async def start(self) -> None:
        """Listen, wrapping each connection's handler in the header deadline."""
        await web.BaseSite.start(self)
        handler_factory = self._runner.server
        assert handler_factory is not None
        timeout = self._header_timeout

        def _protocol() -> asyncio.Protocol:
            return _HeaderDeadline(handler_factory(), timeout)

        self._server = await asyncio.get_running_loop().create_server(
            _protocol, self._host, self._port, backlog=self._backlog
        )
