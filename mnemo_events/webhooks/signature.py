"""Signing and verifying webhook bodies: Stripe's scheme and Standard Webhooks.

``X-MnemoCore-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`` where each ``v1`` is
HMAC-SHA256, keyed with a secret's UTF-8 bytes, over ``"{t}.{body}"`` (exactly Stripe's
scheme, so ``stripe.WebhookSignature.verify_header`` accepts it). During a secret rotation the
header carries one ``v1`` per active secret.

Standard Webhooks (https://www.standardwebhooks.com) signs ``"{id}.{timestamp}.{body}"`` with
the base64-decoded key after ``whsec_`` and sends ``webhook-signature: v1,<base64>`` (a
space-separated list during rotation).

Everything here is pure: no clock unless none is passed, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence

from mnemo_events.exceptions import WebhookConfigError

__all__ = [
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "StandardWebhookSignature",
    "WebhookSignature",
    "generate_secret",
    "keyed",
    "mask_secret",
    "signature_header",
    "standard_key",
]

SIGNATURE_HEADER = "X-MnemoCore-Signature"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300


def generate_secret() -> str:
    """A fresh secret: ``whsec_`` and the base64 of 32 random bytes.

    It is valid for both schemes: Stripe's uses the whole string, Standard Webhooks the
    decoded bytes.
    """
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def mask_secret(secret: str | None) -> str | None:
    """A secret as shown in listings and logs: its prefix and four stars, never its body.

    ``env:NAME`` references are not secret and are shown as they are.
    """
    if secret is None:
        return None
    if secret.startswith("env:"):
        return secret
    prefix = SECRET_PREFIX if secret.startswith(SECRET_PREFIX) else ""
    return f"{prefix}****"


def _as_bytes(payload: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return bytes(payload)


def _v1(body: bytes, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode("utf-8"), b"%d." % timestamp, hashlib.sha256)
    mac.update(body)
    return mac.hexdigest()


def keyed(secrets: Sequence[str]) -> tuple[hmac.HMAC, ...]:
    """HMAC-SHA256 states keyed with each secret, to copy per message (saves the key setup)."""
    return tuple(hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256) for secret in secrets)


def signature_header(body: bytes, keys: Sequence[hmac.HMAC], timestamp: int) -> str:
    """``t=<timestamp>,v1=<hex>...`` from states made by :func:`keyed` (the sender's hot path)."""
    prefix = b"%d." % timestamp
    parts = [f"t={timestamp}"]
    for key in keys:
        mac = key.copy()
        mac.update(prefix)
        mac.update(body)
        parts.append("v1=" + mac.hexdigest())
    return ",".join(parts)


def _parse_timestamp(raw: str) -> int | None:
    raw = raw.strip()
    if not raw or not raw.isascii() or not raw.isdigit():
        return None
    return int(raw)


def _within(timestamp: int, tolerance: float | None, now: float | None) -> bool:
    if tolerance is None:
        return True
    current = time.time() if now is None else now
    return abs(current - timestamp) <= tolerance


class WebhookSignature:
    """The ``X-MnemoCore-Signature`` scheme (Stripe-compatible)."""

    HEADER = SIGNATURE_HEADER
    SIGNATURE_HEADER = SIGNATURE_HEADER
    """MnemoCore's name for :attr:`HEADER`."""
    TOLERANCE_SECONDS = DEFAULT_TOLERANCE
    """MnemoCore's name for the default timestamp tolerance."""

    @staticmethod
    def sign(
        payload: bytes | str,
        secret: str | Sequence[str],
        timestamp: int | None = None,
    ) -> str:
        """The header value for ``payload``: ``t=<timestamp>,v1=<hex>``, one ``v1`` per secret.

        Args:
            payload: the exact body bytes sent (a ``str`` is encoded as UTF-8).
            secret: one secret, or several (a rotation) in order.
            timestamp: unix seconds; now when omitted.
        """
        keys = [secret] if isinstance(secret, str) else list(secret)
        if not keys or not all(isinstance(key, str) and key for key in keys):
            raise WebhookConfigError("a webhook signature needs at least one non-empty secret")
        stamp = int(time.time()) if timestamp is None else int(timestamp)
        return signature_header(_as_bytes(payload), keyed(keys), stamp)

    @staticmethod
    def verify(
        payload: bytes | str,
        secret: str,
        signature_header: str | None,
        tolerance: float | None = DEFAULT_TOLERANCE,
        *,
        now: float | None = None,
    ) -> bool:
        """Whether ``signature_header`` holds a valid ``v1`` of ``payload`` under ``secret``.

        Fields may come in any order and with spaces; unknown schemes (``v0``) are ignored;
        any matching ``v1`` is enough. The timestamp must be a plain integer within
        ``tolerance`` seconds of ``now`` in either direction (``None`` disables the check).
        Comparison is constant-time. A malformed header gives ``False``, never an exception.
        """
        try:
            if not isinstance(signature_header, str) or not isinstance(secret, str) or not secret:
                return False
            stamps: list[str] = []
            candidates: list[str] = []
            for item in signature_header.split(","):
                key, sep, value = item.partition("=")
                if not sep:
                    return False
                key = key.strip()
                if key == "t":
                    stamps.append(value)
                elif key == "v1":
                    candidates.append(value.strip())
            if len(stamps) != 1 or not candidates:
                return False
            timestamp = _parse_timestamp(stamps[0])
            if timestamp is None or not _within(timestamp, tolerance, now):
                return False
            expected = _v1(_as_bytes(payload), secret, timestamp).encode("ascii")
            # Every candidate is compared, so timing does not reveal which one matched.
            matched = False
            for candidate in candidates:
                given = candidate.encode("utf-8", "backslashreplace")
                matched |= hmac.compare_digest(expected, given)
            return matched
        except Exception:  # a verifier answers yes or no; a crash would be a 500 for an attacker
            return False


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks key of a ``whsec_<base64>`` secret.

    Raises:
        WebhookConfigError: the secret is not ``whsec_`` followed by valid base64.
    """
    body = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise WebhookConfigError(
            "the Standard Webhooks scheme needs a secret of the form whsec_<base64 key> "
            "(leave the secret out to have one generated)"
        )
    return key


def _standard_mac(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode(), hashlib.sha256)
    mac.update(body)
    return mac.digest()


class StandardWebhookSignature:
    """The Standard Webhooks scheme: headers ``webhook-id``, ``-timestamp``, ``-signature``."""

    @staticmethod
    def sign(
        msg_id: str,
        timestamp: int,
        payload: bytes | str,
        secret: str | Iterable[str | bytes] | bytes,
    ) -> str:
        """The ``webhook-signature`` value: ``v1,<base64>``, space-separated, one per secret."""
        keys: list[bytes]
        if isinstance(secret, bytes):
            keys = [secret]
        elif isinstance(secret, str):
            keys = [standard_key(secret)]
        else:
            keys = [item if isinstance(item, bytes) else standard_key(item) for item in secret]
        body = _as_bytes(payload)
        return " ".join(
            "v1," + base64.b64encode(_standard_mac(key, msg_id, timestamp, body)).decode("ascii")
            for key in keys
        )

    @staticmethod
    def headers(
        msg_id: str,
        timestamp: int,
        payload: bytes | str,
        secret: str | Iterable[str | bytes] | bytes,
    ) -> dict[str, str]:
        """The three Standard Webhooks headers for one request."""
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": StandardWebhookSignature.sign(msg_id, timestamp, payload, secret),
        }

    @staticmethod
    def verify(
        payload: bytes | str,
        secret: str,
        headers: Mapping[str, str],
        tolerance: float | None = DEFAULT_TOLERANCE,
        *,
        now: float | None = None,
    ) -> bool:
        """Whether the Standard Webhooks headers carry a valid signature; never raises."""
        try:
            lowered = {str(k).lower(): v for k, v in headers.items()}
            msg_id = lowered.get("webhook-id")
            raw_stamp = lowered.get("webhook-timestamp")
            signature = lowered.get("webhook-signature")
            if not (msg_id and raw_stamp and signature):
                return False
            timestamp = _parse_timestamp(raw_stamp)
            if timestamp is None or not _within(timestamp, tolerance, now):
                return False
            expected = _standard_mac(standard_key(secret), msg_id, timestamp, _as_bytes(payload))
            matched = False
            for item in signature.split(" "):
                version, sep, value = item.partition(",")
                if not sep or version != "v1":
                    continue
                try:
                    given = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    continue
                matched |= hmac.compare_digest(expected, given)
            return matched
        except Exception:
            return False
