"""Settings models and the loader for ``config.yaml``.

Library objects take these models as arguments; only the ``get_*()`` singletons, the CLI and
the notebook read files. Unknown keys are refused with their full path and the file named.
"""

# No `from __future__ import annotations`: pydantic resolves these annotations at runtime.

import difflib
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from mnemo_events.bus._jetstream_config import JetStreamConfig
from mnemo_events.exceptions import ConfigError

__all__ = [
    "CONFIG_ENV_VAR",
    "EventsConfig",
    "RetryConfig",
    "ServerConfig",
    "Settings",
    "WebhooksConfig",
    "check_api_key",
    "group_transport",
    "load_config",
]

CONFIG_ENV_VAR = "MNEMO_EVENTS_CONFIG"
_ENV_PREFIX = "MNEMO_EVENTS_"
MIN_API_KEY_LENGTH = 12

ValidationMode = Literal["strict", "warn", "off"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class EventsConfig(_Section):
    """The ``events:`` section: the bus."""

    enabled: bool = True
    """When false, ``publish`` returns the event without dispatching it."""
    max_queue_size: int = Field(10_000, ge=1)
    """Capacity of the bus mailbox; a full mailbox makes ``publish`` wait (backpressure)."""
    delivery_timeout: float = Field(30.0, gt=0)
    """Seconds an async handler may run before it is cancelled and counted as an error."""
    history_size: int = Field(1_000, ge=0)
    """How many recent events ``get_history`` keeps."""
    publish_timeout: float = Field(5.0, ge=0)
    """Seconds ``publish`` waits for room in a full mailbox before raising QueueFullError."""
    validation: ValidationMode = "strict"
    """How payloads of registered event types are checked on publish."""
    max_payload_bytes: int = Field(1_048_576, ge=64)
    """Largest UTF-8 JSON size of an event's ``data`` (and of its ``metadata``) that
    ``publish`` accepts; larger ones raise EventValidationError."""
    transport: str | JetStreamConfig | None = None
    """Where events travel: None or ``"memory"`` (in this process), ``"nats://host:4222"``
    (JetStream, several URLs comma-separated) or a mapping of JetStream settings."""
    subscriber_queue_size: int = Field(10_000, ge=1)
    """Events one subscription may hold unhandled; beyond that the bus waits for its
    handler, so ``publish`` waits too and raises QueueFullError after ``publish_timeout``."""


class RetryConfig(_Section):
    """How one webhook retries: ``max_attempts`` counts every attempt, the first included.

    The delay before retry ``n`` (n >= 1) is
    ``min(base_delay_seconds * 2 ** (n - 1), max_delay_seconds)``, optionally jittered.
    """

    max_attempts: int = Field(5, ge=1, le=100)
    base_delay_seconds: float = Field(1.0, ge=0)
    max_delay_seconds: float = Field(300.0, ge=0)
    timeout_seconds: float = Field(30.0, gt=0)
    jitter: float = Field(0.0, ge=0, le=1)
    """Fraction of each delay drawn at random (0.2 means +/-20%)."""

    @model_validator(mode="after")
    def _max_not_below_base(self) -> "RetryConfig":
        if self.max_delay_seconds < self.base_delay_seconds:
            raise ValueError(
                f"max_delay_seconds ({self.max_delay_seconds}) is below "
                f"base_delay_seconds ({self.base_delay_seconds})"
            )
        return self


class WebhooksConfig(_Section):
    """The ``webhooks:`` section: the webhook manager."""

    enabled: bool = True
    persistence_path: str | None = "./data/webhooks.json"
    """JSON file holding the registered webhooks; null keeps them in memory only."""
    delivery_store_path: str | None = "./data/deliveries.sqlite3"
    """SQLite file recording every delivery and attempt; null keeps it in memory."""
    allow_private_networks: bool = False
    """Allow webhook URLs on loopback and private networks (off: SSRF guard)."""
    retention_days: float = Field(30.0, gt=0)
    """Finished delivery records older than this are pruned."""
    disable_after_failures: int = Field(20, ge=1)
    """Consecutive failed deliveries after which a webhook is disabled."""
    max_in_flight_per_endpoint: int = Field(10, ge=1)
    """Attempts in flight at once for one webhook."""
    stop_timeout: float = Field(10.0, ge=0)
    """Seconds ``stop()`` waits for in-flight attempts before leaving them pending."""
    response_body_limit: int = Field(4_096, ge=0)
    """Bytes of a response body read and recorded."""
    default_retry: RetryConfig = RetryConfig()
    transport: str | JetStreamConfig | None = "events"
    """Where deliveries are shared: ``"events"`` (a webhook group on ``events.transport`` when
    that is JetStream, else this process alone), ``"local"`` or null (this process alone,
    SQLite), or a NATS URL / JetStream settings (a group on that stream)."""
    takeover_seconds: float = Field(30.0, ge=0.5)
    """In a group: how long a dead worker's deliveries wait before another takes them over
    (the work consumer's ``ack_wait`` and the lease time); each attempt is capped at half."""
    group_max_jobs: int = Field(256, ge=1)
    """In a group: deliveries one worker holds at once (attempting or waiting for a retry)."""


class ServerConfig(_Section):
    """The ``server:`` section: ``mnemo-events serve``."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    api_key: str | None = "env:MNEMO_EVENTS_API_KEY"
    """The bearer key, inline or as ``env:NAME``; with none, only loopback binds are allowed."""
    max_body_bytes: int = Field(1_048_576, ge=1)
    """Request bodies larger than this are refused with 413."""
    stream_queue_size: int = Field(1_000, ge=1)
    """Events that may wait for one ``/events/stream`` client; beyond that it is disconnected."""
    header_timeout: float = Field(10.0, gt=0)
    """Seconds a new connection has to send its first request's headers, else it is closed."""
    keepalive_timeout: float = Field(15.0, gt=0)
    """Seconds an idle keep-alive connection (or a later request's headers) may take."""
    body_timeout: float = Field(30.0, gt=0)
    """Seconds a request has to send its whole body, else 408."""


class Settings(_Section):
    """The whole ``config.yaml``."""

    events: EventsConfig = EventsConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    server: ServerConfig = ServerConfig()


def group_transport(settings: Settings) -> str | JetStreamConfig | None:
    """The JetStream transport the webhook manager forms a group on, or None (alone).

    ``webhooks.transport: events`` follows ``events.transport``; ``local``, ``memory`` and
    null mean this process alone.
    """
    value = settings.webhooks.transport
    if value == "events":
        value = settings.events.transport
    if value is None or (isinstance(value, str) and value in ("local", "memory")):
        return None
    return value


def _format_errors(err: ValidationError, source: str) -> str:
    problems = []
    for item in err.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            close = _closest(item["loc"])
            problems.append(
                f"unknown key {path!r}" + (f" (did you mean {close!r}?)" if close else "")
            )
        elif item["loc"][-1:] == ("api_key",):  # never echo a key
            problems.append(f"{path}: {item['msg']}")
        else:
            problems.append(f"{path}: {item['msg']} (got {item.get('input')!r})")
    return f"invalid configuration in {source}: " + "; ".join(problems)


def _leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """Every leaf key of ``model`` as ``{flat_name: key_path}`` (``events_max_queue_size``)."""
    found: dict[str, tuple[str, ...]] = {}
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found |= _leaves(annotation, path)
        else:
            found["_".join(path)] = path
    return found


def _nullable(model: type[BaseModel], path: tuple[str, ...]) -> bool:
    for key in path[:-1]:
        model = model.model_fields[key].annotation  # type: ignore[assignment]
    return type(None) in get_args(model.model_fields[path[-1]].annotation)


def _closest(loc: tuple[int | str, ...]) -> str | None:
    """The known key closest to a mistyped one at ``loc``, as a dotted path."""
    model: type[BaseModel] = Settings
    for key in loc[:-1]:
        field = model.model_fields.get(str(key))
        if field is None or not isinstance(field.annotation, type):
            return None
        model = field.annotation
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return ".".join([*(str(k) for k in loc[:-1]), close[0]]) if close else None


_LEAVES = _leaves(Settings)
_NULLABLE = {flat for flat, path in _LEAVES.items() if _nullable(Settings, path)}
_ENV_NAMES = {_ENV_PREFIX + flat.upper(): flat for flat in _LEAVES}


@functools.cache
def _environment_source() -> Any:
    """pydantic-settings' environment source class over one flat settings model, built on
    first use (importing pydantic-settings costs ~0.1 s, paid only when a variable is set).

    The flat model has one string field per leaf key, so pydantic-settings matches the
    variable names and hands each value over verbatim ('Tr0ub4dor #3', '~'); the section
    models then validate and convert.
    """
    from pydantic_settings import BaseSettings, EnvSettingsSource
    from pydantic_settings.sources.utils import parse_env_vars

    flat = create_model(  # type: ignore[call-overload]
        "_FlatEnvironment", __base__=BaseSettings, **dict.fromkeys(_LEAVES, (str | None, None))
    )

    class _Environment(EnvSettingsSource):
        """The environment source, reading a given mapping instead of os.environ."""

        def __init__(self, environ: Mapping[str, str]) -> None:
            self._environ = environ  # read by _load_env_vars, which the base __init__ calls
            super().__init__(flat, case_sensitive=False, env_prefix=_ENV_PREFIX)

        def _load_env_vars(self) -> Mapping[str, str | None]:
            return parse_env_vars(self._environ, False, False, None)

    return _Environment


_EXEMPT = frozenset({CONFIG_ENV_VAR, "MNEMO_EVENTS_API_KEY", "MNEMO_EVENTS_URL"})
"""Variables with the prefix that are not settings: the file, the default key, the CLI's URL."""


def _env_overrides(
    environ: Mapping[str, str], raw: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The settings the environment overrides, nested, and the variable names used.

    Raises:
        ConfigError: a ``MNEMO_EVENTS_*`` variable names no setting (the closest is named).
    """
    server = raw.get("server")
    in_file = server.get("api_key") if isinstance(server, dict) else None
    _refuse_unknown(environ, [in_file, *environ.values()])
    if not any(name.upper().startswith(_ENV_PREFIX) for name in environ):
        return {}, []
    found: dict[str, Any] = _environment_source()(environ)()
    nested: dict[str, Any] = {}
    for flat, value in found.items():
        if value is None:
            continue
        *parents, last = _LEAVES[flat]
        target = nested
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = None if value == "" and flat in _NULLABLE else value
    return nested, sorted(_ENV_PREFIX + flat.upper() for flat in found)


def _refuse_unknown(environ: Mapping[str, str], values: list[Any]) -> None:
    # A variable named by an `env:NAME` reference holds a key, not a setting.
    referenced = {v[4:] for v in values if isinstance(v, str) and v.startswith("env:")}
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(_ENV_PREFIX) or upper in _ENV_NAMES or upper in _EXEMPT:
            continue
        if name in referenced:
            continue
        close = difflib.get_close_matches(upper, list(_ENV_NAMES), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(
            f"unknown environment variable {name}: it names no setting{hint} (each setting "
            f"is MNEMO_EVENTS_<SECTION>_<KEY>, e.g. MNEMO_EVENTS_SERVER_PORT)"
        )


def _merge(raw: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        current = raw.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            _merge(current, value)
        elif isinstance(value, dict) and current is not None:
            continue  # a bad section in the file: validation reports it
        else:
            raw[key] = value


def check_api_key(key: str, where: str) -> None:
    """Refuse an API key shorter than 12 characters or not printable ASCII, never echoing it.

    Raises:
        ConfigError: naming ``where`` the key came from and what is wrong with it.
    """
    if len(key) < MIN_API_KEY_LENGTH:
        problem = f"is {len(key)} characters long; use at least {MIN_API_KEY_LENGTH}"
    elif not all(" " <= char <= "~" for char in key):
        problem = "holds characters that are not printable ASCII"
    else:
        return
    raise ConfigError(f"the API key from {where} {problem} (the key itself is not shown)")


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load settings from YAML, then apply ``MNEMO_EVENTS_<SECTION>_<KEY>`` overrides.

    With no ``path``, the file named by ``MNEMO_EVENTS_CONFIG`` is read, else ``config.yaml``
    in the working directory if it exists, else the defaults apply. Nested keys join with
    ``_`` (``MNEMO_EVENTS_WEBHOOKS_DEFAULT_RETRY_MAX_ATTEMPTS``). Values are taken verbatim
    (``'Tr0ub4dor #3'`` stays whole, ``~`` is the string ``~``) and converted by the models;
    an empty value sets a nullable key to null.

    Raises:
        ConfigError: an unreadable or invalid file, a bad value, or a ``MNEMO_EVENTS_*``
            variable that names no setting (the closest one is named).
    """
    env = os.environ if environ is None else environ
    source = "defaults"
    raw: Any = {}
    chosen = Path(path) if path is not None else None
    if chosen is None and env.get(CONFIG_ENV_VAR):
        chosen = Path(env[CONFIG_ENV_VAR])
    if chosen is None and Path("config.yaml").is_file():
        chosen = Path("config.yaml")
    if chosen is not None:
        source = str(chosen)
        try:
            raw = yaml.safe_load(chosen.read_text(encoding="utf-8")) or {}
        except OSError as err:
            raise ConfigError(f"cannot read configuration file {source}: {err}") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"configuration file {source} is not valid YAML: {err}") from err
        if not isinstance(raw, dict):
            raise ConfigError(
                f"configuration file {source} must hold a mapping, not {type(raw).__name__}"
            )
    overrides, names = _env_overrides(env, raw)
    if names:
        _merge(raw, overrides)
        source += f" + environment ({', '.join(names)})"
    try:
        return Settings.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from err
