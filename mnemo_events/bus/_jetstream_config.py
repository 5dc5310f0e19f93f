"""The settings of the JetStream transport, and the ``transport`` string forms.

``events.transport`` in ``config.yaml`` (and ``EventBus(transport=...)``) is ``"memory"``, a
server URL list ``"nats://host:4222[,nats://other:4222]"``, or a mapping of
:class:`JetStreamConfig` fields::

    events:
      transport:
        servers: ["nats://127.0.0.1:4222"]
        stream: MNEMO_EVENTS
        subject_prefix: mnemo
        max_age_seconds: 604800
"""

# No `from __future__ import annotations`: pydantic resolves these annotations at runtime.

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["JetStreamConfig", "is_nats_url", "safe_server", "split_servers"]

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_PREFIX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_SCHEMES = ("nats://", "tls://", "ws://", "wss://")


def is_nats_url(text: str) -> bool:
    """True when ``text`` (or its first comma-separated part) is a NATS server URL."""
    return text.strip().lower().startswith(_SCHEMES)


def split_servers(text: str) -> list[str]:
    """``"nats://a:4222, nats://b:4222"`` as a list of URLs."""
    return [part.strip() for part in text.split(",") if part.strip()]


def safe_server(url: str) -> str:
    """A server URL without its user and password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


class JetStreamConfig(BaseModel):
    """Where the JetStream transport connects and how its stream is shaped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    servers: list[str] = Field(default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1)
    """NATS server URLs (``nats://``, ``tls://``); the client fails over between them."""
    stream: str = "MNEMO_EVENTS"
    """The stream holding every event; created if missing."""
    subject_prefix: str = "mnemo"
    """Event type ``memory.created`` is subject ``<prefix>.memory.created``."""
    credentials: str | None = None
    """Path of a NATS ``.creds`` file (JWT and NKey seed)."""
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    tls_ca_file: str | None = None
    """A CA bundle to verify the server with; setting any ``tls_*`` turns TLS on."""
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    max_age_seconds: float = Field(7 * 86_400.0, ge=0)
    """Events older than this are dropped from the stream (0: kept forever)."""
    max_bytes: int = Field(-1, ge=-1)
    """Size limit of the stream in bytes (-1: none); the oldest events go first."""
    max_msgs: int = Field(-1, ge=-1)
    """Event count limit of the stream (-1: none); the oldest events go first."""
    duplicate_window_seconds: float = Field(120.0, gt=0)
    """How long the stream remembers ``Nats-Msg-Id``s: a publish retried within it is
    stored once."""
    connect_timeout: float = Field(5.0, gt=0)
    """Seconds the first connection may take before ``start()`` raises TransportError."""
    reconnect_wait: float = Field(0.25, gt=0)
    """Seconds between reconnection attempts after the server went away."""
    max_ack_pending: int = Field(256, ge=1)
    """Events a durable subscription may hold unacknowledged (all its processes together)."""
    atomic_batches: bool = True
    """``publish_batch`` stores each window of up to 1,000 events as one JetStream atomic
    batch (nats-server 2.12+; the stream's ``allow_atomic`` is switched on): whole and in the
    batch's order, or not at all, so a retry after a fault cannot reorder it. False, or a
    server without them: acknowledgements pipelined one per event, and a batch retried
    after a fault may be stored out of order."""

    @field_validator("stream")
    @classmethod
    def _stream_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(f"stream name {value!r} must be letters, digits, '_' or '-'")
        return value

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREFIX.fullmatch(value):
            raise ValueError(
                f"subject_prefix {value!r} must be dot-separated names without wildcards"
            )
        return value

    @field_validator("servers")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not is_nats_url(url):
                raise ValueError(
                    f"server {safe_server(url)!r} is not a NATS URL (nats://host:port or tls://)"
                )
        return value

    @classmethod
    def from_transport(
        cls, value: "str | dict[str, object] | JetStreamConfig"
    ) -> "JetStreamConfig":
        """The settings from a ``transport`` value: a URL list, a mapping, or settings."""
        if isinstance(value, JetStreamConfig):
            return value
        if isinstance(value, str):
            return cls(servers=split_servers(value))
        return cls.model_validate(value)
