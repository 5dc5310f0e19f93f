"""Settings models and the loader for ``config.yaml``.

Library objects take these models as arguments; only the ``get_*()`` singletons, the CLI and
the notebook read files. Unknown keys are refused with their full path and the file named.
"""

# No `from __future__ import annotations`: pydantic resolves these annotations at runtime.

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mnemo_events.bus._jetstream_config import JetStreamConfig
from mnemo_events.exceptions import ConfigError

__all__ = [
    "CONFIG_ENV_VAR",
    "EventsConfig",
    "RetryConfig",
    "ServerConfig",
    "Settings",
    "WebhooksConfig",
    "load_config",
]

CONFIG_ENV_VAR = "MNEMO_EVENTS_CONFIG"
_ENV_PREFIX = "MNEMO_EVENTS_"

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


class ServerConfig(_Section):
    """The ``server:`` section: ``mnemo-events serve``."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    api_key: str | None = "env:MNEMO_EVENTS_API_KEY"
    """The bearer key, inline or as ``env:NAME``; with none, only loopback binds are allowed."""
    max_body_bytes: int = Field(1_048_576, ge=1)
    """Request bodies larger than this are refused with 413."""


class Settings(_Section):
    """The whole ``config.yaml``."""

    events: EventsConfig = EventsConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    server: ServerConfig = ServerConfig()


def _format_errors(err: ValidationError, source: str) -> str:
    problems = []
    for item in err.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown key {path!r}")
        else:
            problems.append(f"{path}: {item['msg']} (got {item.get('input')!r})")
    return f"invalid configuration in {source}: " + "; ".join(problems)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    sections = {name: set(model.model_fields) for name, model in _SECTIONS.items()}
    overrides: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(_ENV_PREFIX) or name == CONFIG_ENV_VAR:
            continue
        rest = name[len(_ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section not in sections or key not in sections[section]:
            continue  # e.g. MNEMO_EVENTS_API_KEY is a secret's name, not a setting
        overrides.setdefault(section, {})[key] = yaml.safe_load(raw) if raw else None
    return overrides


_SECTIONS: dict[str, type[BaseModel]] = {
    "events": EventsConfig,
    "webhooks": WebhooksConfig,
    "server": ServerConfig,
}


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load settings from YAML, then apply ``MNEMO_EVENTS_<SECTION>_<KEY>`` overrides.

    With no ``path``, the file named by ``MNEMO_EVENTS_CONFIG`` is read, else ``config.yaml``
    in the working directory if it exists, else the defaults apply.
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
    for section, values in _env_overrides(env).items():
        current = raw.get(section) or {}
        if not isinstance(current, dict):
            break  # let validation report the bad section
        raw[section] = {**current, **values}
        source += f" + environment overrides ({', '.join(sorted(values))})"
    try:
        return Settings.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from err
