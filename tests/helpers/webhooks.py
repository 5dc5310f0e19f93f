"""Webhooks for the registry tests (the file registry and the KV registry take the same)."""

from __future__ import annotations

from mnemo_events.webhooks.models import Webhook


def numbered_webhook(n: int = 1, **fields: object) -> Webhook:
    """Webhook ``wh_<n>`` on ``https://hooks.example.com/<n>`` for ``memory.*`` with secret
    ``whsec_secret<n>``; ``fields`` replace any of these or set others."""
    base: dict[str, object] = {
        "id": f"wh_{n}",
        "url": f"https://hooks.example.com/{n}",
        "events": ("memory.*",),
        "secret": f"whsec_secret{n}",
    }
    return Webhook(**(base | fields))  # type: ignore[arg-type]
