"""The Redis channel on which the events sequencer announces newly sequenced events (the
message is only a wake-up: readers take the events themselves from PostgreSQL by cursor)."""

from __future__ import annotations

WAKE_CHANNEL = "offerhub:events:sequenced"
