"""What :class:`~mnemo_events.event_bus.EventBus` asks of a JetStream transport, in one place.

The bus stays transport-agnostic: it calls these functions, which resolve the ``transport``
setting (``"memory"``, ``"nats://..."``, a mapping, :class:`JetStreamConfig`), and reach the
JetStream-only features (durable subscriptions, history and replay from the stream) when the
transport has them. ``nats-py`` is imported only when a JetStream transport is asked for, so
the in-process bus needs no extra.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from mnemo_events.bus._jetstream_config import JetStreamConfig, is_nats_url
from mnemo_events.bus._jetstream_observable import EventReplay
from mnemo_events.bus._reducers import StreamState
from mnemo_events.bus._subscription import Handler, SubscriptionInfo
from mnemo_events.bus._subscriptions import new_subscription_id
from mnemo_events.config import EventsConfig, RetryConfig
from mnemo_events.event import Event
from mnemo_events.exceptions import ConfigError
from mnemo_events.patterns import parse_pattern

if TYPE_CHECKING:
    from mnemo_events.bus._jetstream import JetStreamTransport
    from mnemo_events.bus._transport import Transport

__all__ = [
    "durable_infos",
    "durable_start",
    "durable_totals",
    "jetstream_of",
    "remove_durable",
    "replay",
    "stream_history",
    "subscribe_durable",
    "transport_from_setting",
    "want_feed",
]


def transport_from_setting(value: object, config: EventsConfig) -> Transport | None:
    """A JetStream transport for a string, mapping or settings value; None for "memory".

    Raises:
        ConfigError: the value is none of those, or nats-py is not installed.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "memory")):
        return None
    if isinstance(value, str) and not is_nats_url(value):
        raise ConfigError(
            f"transport {value!r} is neither 'memory' nor a NATS URL such as "
            "'nats://127.0.0.1:4222'"
        )
    if not isinstance(value, str | Mapping | JetStreamConfig):
        raise ConfigError(
            "transport must be None, 'memory', a 'nats://...' URL, a JetStreamConfig or a "
            f"Transport object, got {value!r}"
        )
    try:
        settings = JetStreamConfig.from_transport(value)  # type: ignore[arg-type]
    except ValueError as err:
        raise ConfigError(f"invalid events.transport: {err}") from None
    try:
        from mnemo_events.bus._jetstream import JetStreamTransport
    except ImportError as err:  # pragma: no cover - the dev extra installs nats-py
        raise ConfigError(
            f"transport {value!r} needs nats-py: pip install 'mnemo-events[nats]' ({err})"
        ) from None
    return JetStreamTransport(config=settings, publish_timeout=config.publish_timeout)


def jetstream_of(transport: object) -> JetStreamTransport | None:
    """The transport if it is a JetStream one (without importing nats-py otherwise)."""
    return transport if getattr(transport, "name", None) == "jetstream" else None  # type: ignore[return-value]


def want_feed(transport: object) -> None:
    """A local subscription was made: a JetStream transport starts reading its live feed."""
    js = jetstream_of(transport)
    if js is not None:
        js.want_feed()


def subscribe_durable(
    transport: object,
    config: EventsConfig,
    *,
    pattern: str,
    handler: Handler,
    event_filter: Callable[[Event], bool] | None,
    durable: str | None,
    retry: RetryConfig | None,
    start: str | datetime | int | None = None,
) -> str:
    """Add a durable subscription on the transport's stream; returns its id.

    Raises:
        ConfigError: the bus does not run on JetStream, the durable name is malformed, or
            ``start`` comes without ``durable``.
        ValueError: ``start`` is not "new", "all", an aware datetime or a sequence >= 1.
    """
    if durable is None:
        raise ConfigError(
            f"subscribe(..., start={start!r}) needs durable='name': plain subscriptions are "
            "live (they see what is published from now on); bus.replay(pattern, since=...) "
            "reads the past"
        )
    checked_start = durable_start(start)
    js = jetstream_of(transport)
    if js is None:
        raise ConfigError(
            f"subscribe(..., durable={durable!r}) needs a JetStream transport "
            "(EventBus(transport='nats://...')); the in-process bus keeps nothing across restarts"
        )
    if not durable or not all(c.isalnum() or c in "_-" for c in durable):
        raise ConfigError(f"durable name {durable!r} must be letters, digits, '_' or '-'")
    parsed = parse_pattern(pattern)
    if not callable(handler):
        raise TypeError(f"handler for {pattern!r} must be callable, got {handler!r}")
    subscription = js.durable_for(
        subscription_id=new_subscription_id(),
        pattern=parsed,
        handler=handler,
        event_filter=event_filter,
        durable=durable,
        retry=retry or RetryConfig(),
        delivery_timeout=config.delivery_timeout,
        start_at=checked_start,
        start_given=start is not None,
    )
    js.add_durable(subscription)
    return subscription.id


def durable_start(start: object) -> str | datetime | int:
    """``start`` checked: "new" (also for None), "all", an aware datetime, or a sequence.

    Raises:
        ValueError: anything else; the message names the value.
    """
    if start is None:
        return "new"
    if isinstance(start, str) and start in ("new", "all"):
        return start
    if isinstance(start, datetime) and start.tzinfo is not None:
        return start
    if isinstance(start, int) and not isinstance(start, bool) and start >= 1:
        return start
    raise ValueError(
        f"durable start={start!r} must be 'new', 'all', a timezone-aware datetime or a "
        "stream sequence >= 1"
    )


def remove_durable(transport: object, subscription_id: str) -> bool:
    """Stop a durable subscription of this process; False if it has none by that id."""
    js = jetstream_of(transport)
    return js is not None and js.forget_durable(subscription_id)


def durable_infos(transport: object, pattern: str | None) -> list[SubscriptionInfo]:
    """Snapshots of the durable subscriptions (with exactly ``pattern`` when given)."""
    js = jetstream_of(transport)
    if js is None:
        return []
    return [d.info() for d in js.durables.values() if pattern is None or d.pattern.text == pattern]


def durable_totals(transport: object) -> tuple[int, int]:
    """Handler calls that completed and that failed, over the durable subscriptions."""
    js = jetstream_of(transport)
    if js is None:
        return 0, 0
    durables = js.durables.values()
    return sum(d.delivered for d in durables), sum(d.errors for d in durables)


async def stream_history(
    transport: object, state: StreamState, pattern: str | None, limit: int
) -> list[Event] | None:
    """``get_history`` read from the stream on JetStream; None on other transports."""
    js = jetstream_of(transport)
    if js is None:
        return None
    if pattern is not None:
        parse_pattern(pattern)
    return await js.history(pattern, limit)


def replay(
    transport: object, state: StreamState, pattern: str, since: datetime | int
) -> EventReplay:
    """``bus.replay``: from the stream on JetStream, else from this process's history.

    Raises:
        ValueError: ``since`` is a naive datetime, or a sequence on the in-process bus.
    """
    compiled = parse_pattern(pattern)
    if isinstance(since, datetime) and since.tzinfo is None:
        raise ValueError(f"replay since={since!r} must be timezone-aware (e.g. UTC)")
    if not isinstance(since, datetime) and (not isinstance(since, int) or since < 1):
        raise ValueError(f"replay since={since!r} must be a datetime or a sequence >= 1")
    js = jetstream_of(transport)
    if js is not None:
        return EventReplay(lambda: js.replay(pattern, since))
    if not isinstance(since, datetime):
        raise ValueError(
            f"replay since={since!r}: stream sequences exist on a JetStream transport only; "
            "pass a datetime to replay this process's history"
        )
    moment = since

    async def from_history() -> AsyncIterator[Event]:
        for event in list(state.history):
            if event.published_at >= moment and compiled.matches(event.type):
                yield event

    return EventReplay(from_history)
