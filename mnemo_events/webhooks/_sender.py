"""One HTTP attempt: headers, signatures, the POST, and what the answer means.

The sender owns no state between attempts beyond the manager's one ``ClientSession``. It
never raises: every outcome is a :class:`Response` (the actor decides about retries). A
network problem is a retryable failure; an unexpected error (aiohttp raising ``ValueError``
for a request it refuses to build, a bug) is a final failure with ``internal=True``, logged
as ``webhooks.attempt_error`` without its traceback (whose locals hold the secrets).
Redirects are not followed; the response body is read up to a cap.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from yarl import URL

from mnemo_events import __version__
from mnemo_events._log import logger
from mnemo_events.webhooks._secret_refs import resolve_header_refs, resolve_ref
from mnemo_events.webhooks.backoff import RETRY_AFTER_STATUSES, parse_retry_after
from mnemo_events.webhooks.models import Webhook
from mnemo_events.webhooks.signature import (
    SIGNATURE_HEADER,
    StandardWebhookSignature,
    keyed,
    signature_header,
    standard_key,
)
from mnemo_events.webhooks.ssrf import BlockedAddressError, literal_host_problem

__all__ = ["RESERVED_HEADERS", "USER_AGENT", "Prepared", "Response", "Sender"]

USER_AGENT = f"mnemo-events/{__version__}"
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "Content-Type",
        "Content-Length",
        "Content-Encoding",
        "Transfer-Encoding",
        "Host",
        "Connection",
        "User-Agent",
        "X-MnemoCore-Event",
        "X-MnemoCore-Delivery",
        "X-MnemoCore-Attempt",
        SIGNATURE_HEADER,
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    )
)
"""Headers the sender sets; a webhook's custom headers may not override them."""
_log = logger("webhooks")


@dataclass(frozen=True, slots=True)
class Response:
    """What one attempt came to."""

    ok: bool
    status_code: int | None
    error: str | None
    latency_ms: float
    body: str | None
    retry_after: float | None = None
    gone: bool = False
    """410 Gone: the endpoint asks to be disabled."""
    final: bool = False
    """Not worth retrying (a refused address, a missing secret, an internal error)."""
    internal: bool = False
    """The attempt ended in an unexpected error (counted in ``internal_errors``)."""


class Prepared:
    """What every attempt to one webhook version shares, computed once per version."""

    __slots__ = (
        "_keys",
        "_secrets",
        "_secrets_until",
        "base_headers",
        "inline",
        "literal_problem",
        "mnemocore",
        "standard",
        "timeout",
        "url",
        "webhook",
    )

    def __init__(self, webhook: Webhook, *, allow_private_networks: bool) -> None:
        self.webhook = webhook
        self.url = URL(webhook.url)
        self.base_headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **webhook.headers,
        }
        self.timeout = aiohttp.ClientTimeout(total=webhook.retry_config.timeout_seconds)
        self.standard = webhook.signature_scheme in ("standard", "both")
        self.mnemocore = webhook.signature_scheme in ("mnemocore", "both")
        self._keys: tuple[list[str], tuple[hmac.HMAC, ...], list[bytes] | str] | None = None
        self.literal_problem = None if allow_private_networks else literal_host_problem(self.url)
        # Inline secrets only change when a retired one expires: cache them until then.
        inline = webhook.secret_ref is None and all(
            old.secret_ref is None for old in webhook.previous_secrets
        )
        self.inline = inline
        """Every secret is stored inline (no reference to resolve at send time)."""
        self._secrets: list[str] = []
        self._secrets_until = 0.0
        if inline:
            self._secrets_until = min(
                (old.expires_at for old in webhook.previous_secrets), default=float("inf")
            )
            self._secrets = webhook.active_secrets(0.0)

    def secrets(self, now: float) -> list[str]:
        """The secrets to sign with at ``now`` (``env:`` references are read each time)."""
        if now < self._secrets_until:
            return self._secrets
        return self.webhook.active_secrets(now)

    def keys(self, secrets: list[str]) -> tuple[tuple[hmac.HMAC, ...], list[bytes] | str]:
        """Keyed HMAC states and Standard Webhooks keys for these secrets (or why not),
        computed once per set of active secrets."""
        cached = self._keys
        if cached is None or cached[0] != secrets:
            standard: list[bytes] | str = []
            if self.standard:
                try:
                    standard = [standard_key(secret) for secret in secrets]
                except ValueError as err:
                    standard = str(err)
            cached = self._keys = (secrets, keyed(secrets), standard)
        return cached[1], cached[2]


def _error_text(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _blocked_cause(err: BaseException) -> BlockedAddressError | None:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, BlockedAddressError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class Sender:
    """Sends signed attempts through one ``ClientSession``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        body_limit: int,
        resolve_refs: bool = False,
        secret_resolver: Callable[[str], str] | None = None,
    ) -> None:
        self._session = session
        self._body_limit = body_limit
        self._resolve_refs = resolve_refs
        """Resolve bare-name and resolver references (MnemoCore's forms) at send time."""
        self._secret_resolver = secret_resolver

    def _signing_secrets(self, prepared: Prepared, now: float) -> list[str]:
        if prepared.inline or not self._resolve_refs:
            return prepared.secrets(now)
        webhook = prepared.webhook
        pairs = [(webhook.secret, webhook.secret_ref)]
        pairs += [(o.secret, o.secret_ref) for o in webhook.previous_secrets if o.expires_at > now]
        values: list[str] = []
        for secret, ref in pairs:
            value = secret
            if value is None and ref is not None:
                value = resolve_ref(ref, self._secret_resolver, webhook.id)
            if value:
                values.append(value)
        return values

    def headers(
        self, prepared: Prepared, delivery_id: str, event_type: str, body: bytes, number: int
    ) -> dict[str, str] | str:
        """The request headers, or an error message when no secret is available."""
        now = time.time()
        secrets = self._signing_secrets(prepared, now)
        if not secrets:
            ref = prepared.webhook.secret_ref or "(inline)"
            return f"no signing secret: {ref} is not set"
        stamp = int(now)
        macs, standard = prepared.keys(secrets)
        headers = prepared.base_headers.copy()
        if self._resolve_refs and prepared.webhook.headers:
            problem = resolve_header_refs(
                headers, prepared.webhook.headers, self._secret_resolver, prepared.webhook.id
            )
            if problem is not None:
                return problem
        headers["X-MnemoCore-Event"] = event_type
        headers["X-MnemoCore-Delivery"] = delivery_id
        headers["X-MnemoCore-Attempt"] = str(number)
        if prepared.mnemocore:
            headers[SIGNATURE_HEADER] = signature_header(body, macs, stamp)
        if prepared.standard:
            if isinstance(standard, str):
                return standard
            headers["webhook-id"] = delivery_id
            headers["webhook-timestamp"] = str(stamp)
            headers["webhook-signature"] = StandardWebhookSignature.sign(
                delivery_id, stamp, body, standard
            )
        return headers

    async def send(
        self, prepared: Prepared, delivery_id: str, event_type: str, body: bytes, number: int
    ) -> Response:
        """POST ``body`` once and classify the answer; never raises for network trouble."""
        if prepared.literal_problem is not None:
            return Response(False, None, prepared.literal_problem, 0.0, None, final=True)
        headers = self.headers(prepared, delivery_id, event_type, body, number)
        if isinstance(headers, str):
            return Response(False, None, headers, 0.0, None, final=True)
        started = time.perf_counter()
        try:
            async with self._session.post(
                prepared.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=prepared.timeout,
            ) as resp:
                text = await self._read(resp)
                status = resp.status
                retry_after_header = resp.headers.get("Retry-After")
        except TimeoutError:
            elapsed = (time.perf_counter() - started) * 1000.0
            limit = prepared.webhook.retry_config.timeout_seconds
            return Response(False, None, f"timed out after {limit:g}s", elapsed, None)
        except (aiohttp.ClientError, OSError) as err:
            elapsed = (time.perf_counter() - started) * 1000.0
            blocked = _blocked_cause(err)
            if blocked is not None:
                return Response(False, None, str(blocked), elapsed, None, final=True)
            return Response(False, None, _error_text(err), elapsed, None)
        except Exception as err:  # never a stuck delivery: a final, counted failure
            elapsed = (time.perf_counter() - started) * 1000.0
            _log.error(
                "webhooks.attempt_error",
                webhook_id=prepared.webhook.id,
                delivery_id=delivery_id,
                attempt=number,
                error_type=type(err).__name__,
            )
            text = f"internal error: {type(err).__name__}"
            return Response(False, None, text, elapsed, None, final=True, internal=True)
        elapsed = (time.perf_counter() - started) * 1000.0
        if 200 <= status < 300:
            return Response(True, status, None, elapsed, text)
        retry_after = (
            parse_retry_after(retry_after_header) if status in RETRY_AFTER_STATUSES else None
        )
        reason = "redirect not followed" if 300 <= status < 400 else "non-2xx response"
        return Response(
            False,
            status,
            f"HTTP {status}: {reason}",
            elapsed,
            text,
            retry_after=retry_after,
            gone=status == 410,
        )

    async def _read(self, resp: aiohttp.ClientResponse) -> str | None:
        if self._body_limit <= 0:
            return None
        stream = resp.content
        chunks: list[bytes] = []
        size = 0
        while size < self._body_limit:
            chunk = await stream.read(self._body_limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if stream.at_eof():  # the usual short answer: no second read
                break
        return b"".join(chunks).decode("utf-8", "replace") if chunks else ""
