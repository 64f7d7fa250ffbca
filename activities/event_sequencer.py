"""The events sequencer (architecture.md "Data, events and real time"): gives committed events
their `seq`, the total order `GET /events` and its cursors follow.

Only one sequencer runs at a time (a transaction-level advisory lock), and it numbers only
committed rows, continuing from the highest number given. So a reader who has seen `seq` N
can never later meet a newly visible event numbered below N: nothing is skipped by a cursor,
whatever order the writing transactions committed in."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("offerhub.events")
SEQUENCER_LOCK = 7_311_001  # pg advisory lock key of the sequencer
BATCH = 1000
IDLE_SECONDS = 0.1

NUMBER_BATCH = text(
    """
    WITH next AS (
        SELECT id, row_number() OVER (ORDER BY occurred_at, id) AS n
        FROM events WHERE seq IS NULL ORDER BY occurred_at, id LIMIT :batch
    ), base AS (SELECT coalesce(max(seq), 0) AS top FROM events)
    UPDATE events SET seq = base.top + next.n FROM next, base WHERE events.id = next.id
    """
)


async def sequence_events(engine: AsyncEngine) -> int:
    """Number one batch of unsequenced events; how many were numbered (0 if another sequencer holds the lock)."""
    async with engine.begin() as conn:
        if not await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SEQUENCER_LOCK}):
            return 0
        numbered = await conn.execute(NUMBER_BATCH, {"batch": BATCH})
        return int(numbered.rowcount or 0)


async def run_sequencer(engine: AsyncEngine) -> None:
    """Keep numbering events until cancelled (runs in every worker process; one works at a time)."""
    while True:
        try:
            numbered = await sequence_events(engine)
        except Exception as exc:  # the database may be briefly away: try again, never die
            log.warning("event sequencing failed: %s", type(exc).__name__)
            numbered = 0
        if numbered < BATCH:
            await asyncio.sleep(IDLE_SECONDS)
