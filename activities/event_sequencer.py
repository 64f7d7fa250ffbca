"""The events sequencer (architecture.md "Data, events and real time"): gives committed events
their `seq`, the total order `GET /events` and its cursors follow.

Only one sequencer runs at a time (a transaction-level advisory lock), and it numbers only
committed rows, continuing from the highest number given. So a reader who has seen `seq` N
can never later meet a newly visible event numbered below N: nothing is skipped by a cursor,
whatever order the writing transactions committed in.

Between batches it looks for unsequenced events every PROBE_SECONDS with one index probe
on a connection of its own (cheap enough to run 40 times a second; commit-to-stream latency
starts here), and tries to number a batch every IDLE_SECONDS whatever the probe said.

After each committed batch it PUBLISHes a wake-up on WAKE_CHANNEL: every API process's one
subscriber then reads the new events and wakes its streams (api/event_feed.py). The message
carries nothing; a lost one (Redis down) only delays streams until their safety poll."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from models.event_wakeups import WAKE_CHANNEL

log = logging.getLogger("offerhub.events")
SEQUENCER_LOCK = 7_311_001  # pg advisory lock key of the sequencer
BATCH = 1000
IDLE_SECONDS = 1.0
PROBE_SECONDS = 0.025
# served by the partial index ix_events_unsequenced: an index-only look at the waiting rows
ANY_UNSEQUENCED = "SELECT EXISTS (SELECT 1 FROM events WHERE seq IS NULL)"

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


async def announce(redis: aioredis.Redis, numbered: asyncio.Event) -> None:
    """Publish a wake-up after each numbered batch, beside the sequencer, so an unreachable
    Redis (seconds per attempt) never slows numbering; streams then wait for their safety poll."""
    reachable = True
    while True:
        await numbered.wait()
        numbered.clear()  # batches numbered while publishing get one more wake-up
        try:
            await redis.publish(WAKE_CHANNEL, b"1")
        except Exception as exc:
            if reachable:
                log.warning("event wake-ups not published: %s", type(exc).__name__)
            reachable = False
        else:
            if not reachable:
                log.info("event wake-ups published again")
            reachable = True


class Probe:
    """Whether any committed event waits for its number, on one connection of the pool held
    between calls (reopened after a failure) and asked through asyncpg itself, outside any
    transaction: a prepared statement, no SQLAlchemy work per call."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.conn: AsyncConnection | None = None
        self.driver: Any = None  # the asyncpg connection under `conn`

    async def waiting(self) -> bool:
        if self.conn is None:
            self.conn = await self.engine.connect()
            self.driver = (await self.conn.get_raw_connection()).driver_connection
        return bool(await self.driver.fetchval(ANY_UNSEQUENCED))

    async def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await self.conn.close()
            self.conn = self.driver = None


async def until_waiting(probe: Probe) -> None:
    """Return once the probe finds an unsequenced event, or after IDLE_SECONDS (the probe
    failing, the database away: the numbering attempt then says why, once a period)."""
    give_up = time.monotonic() + IDLE_SECONDS
    while (left := give_up - time.monotonic()) > 0:
        await asyncio.sleep(min(PROBE_SECONDS, left))
        try:
            if await probe.waiting():
                return
        except Exception:
            await probe.close()
            await asyncio.sleep(max(give_up - time.monotonic(), 0))
            return


async def run_sequencer(engine: AsyncEngine, redis_url: str | None = None) -> None:
    """Keep numbering events until cancelled (runs in every worker process; one works at a time),
    announcing each numbered batch on Redis (REDIS_URL of the settings unless given)."""
    if redis_url is None:
        from settings import get_settings

        redis_url = get_settings().redis_url.get_secret_value()
    redis = aioredis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    numbered_some = asyncio.Event()
    announcing = asyncio.create_task(announce(redis, numbered_some))
    probe = Probe(engine)
    try:
        while True:
            try:
                numbered = await sequence_events(engine)
            except Exception as exc:  # the database may be briefly away: try again, never die
                log.warning("event sequencing failed: %s", type(exc).__name__)
                numbered = 0
            if numbered:
                numbered_some.set()
            if numbered < BATCH:
                await until_waiting(probe)
    finally:
        announcing.cancel()
        await probe.close()
        await redis.aclose()
