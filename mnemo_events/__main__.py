"""``python -m mnemo_events``: the same as the ``mnemo-events`` command."""

from __future__ import annotations

from mnemo_events.cli import main

raise SystemExit(main())
