"""Tests of the webhook signature schemes against known vectors and outside verifiers."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import pytest
import standardwebhooks
import stripe

from mnemo_events.exceptions import WebhookConfigError
from mnemo_events.webhook_manager import WebhookSignature
from mnemo_events.webhooks._sender import Prepared
from mnemo_events.webhooks.models import RetiredSecret, Webhook
from mnemo_events.webhooks.signature import (
    StandardWebhookSignature,
    generate_secret,
    mask_secret,
    standard_key,
)

STRIPE_SECRET = "secret"
STRIPE_T = 1636936200
STRIPE_BODY = "hello !"
STRIPE_V1 = "1b3d69df55f1e52f05224ba94a5162abeb17ef52cd7f4948c390f810d6a87e98"

SW_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_T = 1614265330
SW_BODY = '{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


class TestMnemoCoreScheme:
    def test_known_vector(self) -> None:
        """Signing Stripe's published example gives its published v1 digest."""
        header = WebhookSignature.sign(STRIPE_BODY, STRIPE_SECRET, timestamp=STRIPE_T)
        assert header == f"t={STRIPE_T},v1={STRIPE_V1}"

    def test_bytes_and_str_payloads_sign_the_same(self) -> None:
        """A str payload is signed as its UTF-8 bytes."""
        body = '{"note": "caf\u00e9"}'
        assert WebhookSignature.sign(body, "k", 5) == WebhookSignature.sign(body.encode(), "k", 5)

    def test_stripe_verifier_accepts_our_header(self) -> None:
        """stripe.WebhookSignature.verify_header accepts a fresh header we made."""
        body = b'{"id":"evt_1","type":"memory.created"}'
        secret = generate_secret()
        header = WebhookSignature.sign(body, secret)
        assert stripe.WebhookSignature.verify_header(body, header, secret, tolerance=300)

    def test_verify_accepts_the_known_vector(self) -> None:
        """verify accepts the published vector at its own time."""
        header = f"t={STRIPE_T},v1={STRIPE_V1}"
        assert WebhookSignature.verify(STRIPE_BODY, STRIPE_SECRET, header, now=STRIPE_T)

    def test_verify_accepts_what_stripe_generates(self) -> None:
        """A header made by Stripe's own test helper verifies here."""
        header = stripe.WebhookSignature.generate_signature_header("payload", "whsec_x")
        assert WebhookSignature.verify("payload", "whsec_x", header)

    @pytest.mark.parametrize(
        "header",
        [
            f"v1={STRIPE_V1},t={STRIPE_T}",
            f" t = {STRIPE_T} , v1 = {STRIPE_V1} ",
            f"t={STRIPE_T},v0=deadbeef,v1={STRIPE_V1}",
            f"t={STRIPE_T},v1={'0' * 64},v1={STRIPE_V1}",
            f"t={STRIPE_T},v1={STRIPE_V1},scheme=future",
        ],
        ids=["reordered", "spaces", "unknown-scheme", "second-v1-matches", "extra-field"],
    )
    def test_verify_is_lenient_about_layout(self, header: str) -> None:
        """Field order, spaces, unknown schemes and extra v1 values do not matter."""
        assert WebhookSignature.verify(STRIPE_BODY, STRIPE_SECRET, header, now=STRIPE_T)

    @pytest.mark.parametrize(
        "header",
        [
            None,
            "",
            "garbage",
            ",,,",
            f"v1={STRIPE_V1}",
            f"t={STRIPE_T}",
            f"t={STRIPE_T},v0={STRIPE_V1}",
            f"t=abc,v1={STRIPE_V1}",
            f"t=1636936200.0,v1={STRIPE_V1}",
            f"t=-1636936200,v1={STRIPE_V1}",
            f"t=+1636936200,v1={STRIPE_V1}",
            f"t={STRIPE_T},t={STRIPE_T},v1={STRIPE_V1}",
            f"t={STRIPE_T},v1={STRIPE_V1[:-1]}",
            f"t={STRIPE_T},v1={STRIPE_V1.upper()}",
            f"t={STRIPE_T},v1=\u00e9\u00e9\u00e9",
            f"t={STRIPE_T},v1",
            f"t=\u0661\u0666,v1={STRIPE_V1}",
            12345,
        ],
    )
    def test_malformed_or_wrong_headers_give_false(self, header: Any) -> None:
        """A malformed header or a wrong signature gives False, never an exception."""
        assert WebhookSignature.verify(STRIPE_BODY, STRIPE_SECRET, header, now=STRIPE_T) is False

    @pytest.mark.parametrize(
        ("payload", "secret"),
        [("hello!", STRIPE_SECRET), (STRIPE_BODY, "Secret"), (STRIPE_BODY, "")],
    )
    def test_other_body_or_secret_gives_false(self, payload: str, secret: str) -> None:
        """The signature binds the exact body and secret."""
        header = f"t={STRIPE_T},v1={STRIPE_V1}"
        assert WebhookSignature.verify(payload, secret, header, now=STRIPE_T) is False

    @pytest.mark.parametrize(
        ("offset", "expected"),
        [(0, True), (299, True), (300, True), (301, False), (-300, True), (-301, False)],
    )
    def test_tolerance_applies_both_ways(self, offset: int, expected: bool) -> None:
        """A timestamp more than `tolerance` seconds in the past or the future is refused."""
        header = f"t={STRIPE_T},v1={STRIPE_V1}"
        now = STRIPE_T + offset
        assert WebhookSignature.verify(STRIPE_BODY, STRIPE_SECRET, header, 300, now=now) is expected

    def test_tolerance_none_skips_the_time_check(self) -> None:
        """With tolerance None an old but correct signature verifies."""
        header = f"t={STRIPE_T},v1={STRIPE_V1}"
        assert WebhookSignature.verify(STRIPE_BODY, STRIPE_SECRET, header, tolerance=None)

    def test_default_tolerance_refuses_an_old_signature(self) -> None:
        """The default tolerance (300 s) refuses the 2021 vector today."""
        header = f"t={STRIPE_T},v1={STRIPE_V1}"
        assert WebhookSignature.verify(STRIPE_BODY, STRIPE_SECRET, header) is False

    def test_rotation_signs_with_every_secret(self) -> None:
        """During a rotation each secret verifies, with our verifier and with Stripe's."""
        body = b'{"a":1}'
        old, new = generate_secret(), generate_secret()
        header = WebhookSignature.sign(body, [new, old])
        assert header.count("v1=") == 2
        for secret in (old, new):
            assert WebhookSignature.verify(body, secret, header)
            assert stripe.WebhookSignature.verify_header(body, header, secret, 300)
        assert not WebhookSignature.verify(body, generate_secret(), header)

    def test_sign_refuses_no_secret(self) -> None:
        """Signing needs a secret."""
        with pytest.raises(WebhookConfigError, match="secret"):
            WebhookSignature.sign(b"x", [])


class TestStandardScheme:
    def test_known_vector(self) -> None:
        """The Standard Webhooks published example gives its published signature."""
        assert StandardWebhookSignature.sign(SW_ID, SW_T, SW_BODY, SW_KEY) == SW_SIGNATURE

    def test_package_verifier_accepts_our_headers(self) -> None:
        """standardwebhooks.Webhook.verify accepts headers we made, also mid-rotation."""
        body = b'{"id":"evt_9"}'
        old, new = generate_secret(), generate_secret()
        headers = StandardWebhookSignature.headers("dlv_1", int(time.time()), body, [new, old])
        for secret in (old, new):
            standardwebhooks.Webhook(secret).verify(body, headers, json_parse=False)
            assert StandardWebhookSignature.verify(body, secret, headers)

    def test_verify_accepts_the_package_signature(self) -> None:
        """A signature made by the standardwebhooks package verifies here."""
        secret = generate_secret()
        when = int(time.time())
        signature = standardwebhooks.Webhook(secret).sign(
            "msg_1", datetime.fromtimestamp(when, UTC), "body"
        )
        headers = {"webhook-id": "msg_1", "webhook-timestamp": str(when)}
        assert StandardWebhookSignature.verify(
            "body", secret, headers | {"webhook-signature": signature}
        )

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"webhook-id": SW_ID, "webhook-timestamp": str(SW_T)},
            {"webhook-id": SW_ID, "webhook-timestamp": "soon", "webhook-signature": SW_SIGNATURE},
            {"webhook-id": SW_ID, "webhook-timestamp": str(SW_T), "webhook-signature": "v1"},
            {"webhook-id": SW_ID, "webhook-timestamp": str(SW_T), "webhook-signature": "v1,!!"},
            {"webhook-id": SW_ID, "webhook-timestamp": str(SW_T), "webhook-signature": "v2,abc"},
            {
                "webhook-id": "other",
                "webhook-timestamp": str(SW_T),
                "webhook-signature": SW_SIGNATURE,
            },
        ],
        ids=["none", "no-signature", "bad-time", "no-comma", "bad-base64", "v2", "other-id"],
    )
    def test_malformed_gives_false(self, headers: dict[str, str]) -> None:
        """Missing or malformed Standard Webhooks headers give False (the package would raise)."""
        assert StandardWebhookSignature.verify(SW_BODY, SW_KEY, headers, now=SW_T) is False

    def test_verify_vector_with_tolerance(self) -> None:
        """The vector verifies at its own time and not six minutes later."""
        headers = {
            "webhook-id": SW_ID,
            "webhook-timestamp": str(SW_T),
            "webhook-signature": SW_SIGNATURE,
        }
        assert StandardWebhookSignature.verify(SW_BODY, SW_KEY, headers, now=SW_T)
        assert not StandardWebhookSignature.verify(SW_BODY, SW_KEY, headers, now=SW_T + 360)

    @pytest.mark.parametrize("secret", ["your-hmac-secret!", "whsec_", "whsec_@@@@"])
    def test_standard_key_refuses_non_base64(self, secret: str) -> None:
        """A secret that is not whsec_<base64> cannot key the Standard scheme."""
        with pytest.raises(WebhookConfigError, match="whsec_"):
            standard_key(secret)


class TestSecrets:
    def test_generated_secret_shape(self) -> None:
        """A generated secret is whsec_ and the base64 of 32 random bytes, fresh each time."""
        secret = generate_secret()
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret[6:], validate=True)) == 32
        assert secret != generate_secret()

    @pytest.mark.parametrize(
        ("secret", "shown"),
        [
            ("whsec_abcdef", "whsec_****"),
            ("plain-secret", "****"),
            ("env:HOOK_SECRET", "env:HOOK_SECRET"),
            (None, None),
        ],
    )
    def test_mask(self, secret: str | None, shown: str | None) -> None:
        """Masking keeps the prefix and hides the body; env references are shown."""
        assert mask_secret(secret) == shown


class _ExplodingHeaders(Mapping[str, str]):
    """Headers whose iteration fails, as a broken framework object might."""

    def __getitem__(self, key: str) -> str:
        raise RuntimeError("header store unavailable")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("header store unavailable")

    def __len__(self) -> int:
        return 3


class _Unencodable:
    """A payload that cannot be turned into bytes."""

    def __bytes__(self) -> bytes:
        raise RuntimeError("payload unavailable")


SW_HEADERS = {
    "webhook-id": SW_ID,
    "webhook-timestamp": str(SW_T),
    "webhook-signature": SW_SIGNATURE,
}
STRIPE_HEADER = f"t={STRIPE_T},v1={STRIPE_V1}"


class TestFailClosed:
    """An internal error inside a verifier answers False, never True and never an exception."""

    def test_controls_verify(self) -> None:
        """The inputs the faults below are injected into do verify when nothing fails."""
        assert StandardWebhookSignature.verify(SW_BODY, SW_KEY, SW_HEADERS, now=SW_T) is True
        assert WebhookSignature.verify(STRIPE_BODY, STRIPE_SECRET, STRIPE_HEADER, now=STRIPE_T)

    def test_standard_headers_that_fail_to_read(self) -> None:
        """A headers mapping that raises while read gives False."""
        assert StandardWebhookSignature.verify(SW_BODY, SW_KEY, _ExplodingHeaders()) is False

    @pytest.mark.parametrize("secret", ["whsec_@@@@", "whsec_", "not base64 at all!"])
    def test_standard_secret_that_cannot_key(self, secret: str) -> None:
        """A secret standard_key refuses (it raises inside verify) gives False."""
        assert StandardWebhookSignature.verify(SW_BODY, secret, SW_HEADERS, now=SW_T) is False

    def test_standard_payload_that_cannot_be_read(self) -> None:
        """A payload that raises when turned into bytes gives False."""
        payload = cast(Any, _Unencodable())
        assert StandardWebhookSignature.verify(payload, SW_KEY, SW_HEADERS, now=SW_T) is False

    def test_standard_signature_of_the_wrong_type(self) -> None:
        """A non-string webhook-signature value (it cannot be split) gives False."""
        headers = cast(dict[str, str], {**SW_HEADERS, "webhook-signature": 12345})
        assert StandardWebhookSignature.verify(SW_BODY, SW_KEY, headers, now=SW_T) is False

    def test_mnemocore_payload_that_cannot_be_read(self) -> None:
        """A payload that raises when turned into bytes gives False in the Stripe scheme too."""
        payload = cast(Any, _Unencodable())
        assert WebhookSignature.verify(payload, STRIPE_SECRET, STRIPE_HEADER, now=STRIPE_T) is False


class TestRotationWindow:
    """Which secrets sign at a given time, with the clock passed in."""

    def test_old_secret_stops_signing_when_the_grace_runs_out(self) -> None:
        """Before expiry both secrets sign; at and after it only the new one does."""
        expires = 1_000_000.0
        hook = Webhook(
            id="wh_1",
            url="https://hooks.example.com/",
            events=("memory.*",),
            secret="whsec_new",
            previous_secrets=(RetiredSecret("whsec_old", None, expires),),
        )
        prepared = Prepared(hook, allow_private_networks=False)
        assert prepared.secrets(expires - 0.001) == ["whsec_new", "whsec_old"]
        assert prepared.secrets(expires) == ["whsec_new"]
        assert prepared.secrets(expires + 3600) == ["whsec_new"]
        assert hook.active_secrets(expires) == ["whsec_new"]
        body = b'{"id":"evt_1"}'
        late = WebhookSignature.sign(body, prepared.secrets(expires + 1), timestamp=int(expires))
        assert not WebhookSignature.verify(body, "whsec_old", late, now=expires)
        assert WebhookSignature.verify(body, "whsec_new", late, now=expires)
