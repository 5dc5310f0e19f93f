"""Ready-made reactive pipelines over mnemo-events streams, built on the public API only."""

from __future__ import annotations

__all__: list[str] = []
