"""The outbox relay (architecture.md "Data, events and real time", domain.md §5.2): every
sequenced event not yet relayed gets one WebhookDeliveryWorkflow per active endpoint whose
`event_types` match, then `relayed_at`.

It runs in every worker process. Each batch is claimed `FOR UPDATE SKIP LOCKED`, so several
workers share the backlog without taking the same event twice; and the starts are idempotent
anyway (workflow ID `whd_<event>_<endpoint>`, conflict policy USE_EXISTING, a closed run is not
started again), so an event whose transaction failed after its starts is relayed again
harmlessly. The starts happen before the commit: a crash in between repeats them, never loses
them. An endpoint receives the events that occurred since its creation.

With no active endpoint (the common case of a marketplace that reads `GET /events`) a batch
is a single UPDATE that marks up to BATCH events relayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from models.ids import delivery_id
from models.search import attributes
from models.webhook_delivery import DeliveryStart, DeliveryStatus, matches
from settings import Settings

log = logging.getLogger("offerhub.relay")
BATCH = 500
IDLE_SECONDS = 0.2
CONCURRENT_STARTS = 20

ACTIVE_ENDPOINTS = text("SELECT id, event_types, created_at FROM webhook_endpoints WHERE status = 'ACTIVE'")
MARK_ALL = text(
    """
    UPDATE events SET relayed_at = now() WHERE id IN (
        SELECT id FROM events WHERE relayed_at IS NULL AND seq IS NOT NULL
        ORDER BY seq LIMIT :batch FOR UPDATE SKIP LOCKED)
    """
)
CLAIM = text(
    """
    SELECT id, type, user_ids, occurred_at FROM events WHERE relayed_at IS NULL AND seq IS NOT NULL
    ORDER BY seq LIMIT :batch FOR UPDATE SKIP LOCKED
    """
)
MARK = text("UPDATE events SET relayed_at = now() WHERE id = ANY(:ids)")
INSERT_DELIVERIES = text(
    """
    INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, status, attempts, created_at, updated_at)
    SELECT d.id, d.endpoint_id, d.event_id, d.event_type, 'PENDING', 0, now(), now()
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d(id text, endpoint_id text, event_id text, event_type text)
    ON CONFLICT (id) DO NOTHING
    """
)


@dataclass(frozen=True)
class Endpoint:
    id: str
    event_types: list[str]
    created_at: datetime


@dataclass(frozen=True)
class Claimed:
    id: str
    type: str
    user_ids: list[str]
    occurred_at: datetime


class OutboxRelay:
    def __init__(self, engine: AsyncEngine, client: Client, settings: Settings) -> None:
        self.engine = engine
        self.client = client
        self.settings = settings

    async def relay_batch(self) -> int:
        """Relay one batch; how many events it marked relayed."""
        async with self.engine.begin() as conn:
            endpoints = [
                Endpoint(r.id, list(r.event_types), r.created_at) for r in await conn.execute(ACTIVE_ENDPOINTS)
            ]
            if not endpoints:
                marked = await conn.execute(MARK_ALL, {"batch": BATCH})
                return int(marked.rowcount or 0)
            return await self._deliver(conn, endpoints)

    async def _deliver(self, conn: AsyncConnection, endpoints: list[Endpoint]) -> int:
        events = [
            Claimed(r.id, r.type, list(r.user_ids), r.occurred_at) for r in await conn.execute(CLAIM, {"batch": BATCH})
        ]
        if not events:
            return 0
        starts = [
            self._start_input(event, endpoint)
            for event in events
            for endpoint in endpoints
            if event.occurred_at >= endpoint.created_at and matches(endpoint.event_types, event.type)
        ]
        if starts:
            rows = [
                {"id": s.delivery_id, "endpoint_id": s.endpoint_id, "event_id": s.event_id, "event_type": s.event_type}
                for s in starts
            ]
            await conn.execute(INSERT_DELIVERIES, {"rows": json.dumps(rows)})
            gate = asyncio.Semaphore(CONCURRENT_STARTS)

            async def start(req: DeliveryStart) -> None:
                async with gate:
                    await self._start(req)

            await asyncio.gather(*(start(s) for s in starts))
            log.info("outbox relay: %d events, %d deliveries started", len(events), len(starts))
        await conn.execute(MARK, {"ids": [e.id for e in events]})
        return len(events)

    def _start_input(self, event: Claimed, endpoint: Endpoint) -> DeliveryStart:
        s = self.settings
        return DeliveryStart(
            delivery_id=delivery_id(event.id, endpoint.id),
            event_id=event.id,
            endpoint_id=endpoint.id,
            event_type=event.type,
            user_ids=event.user_ids,
            retry_schedule_seconds=list(s.webhook_retry_schedule_seconds),
            max_age_seconds=s.webhook_delivery_max_age_seconds,
            timeout_seconds=s.webhook_delivery_timeout_seconds,
        )

    async def _start(self, req: DeliveryStart) -> None:
        options: dict[str, Any] = {
            "id": req.delivery_id,
            "task_queue": self.settings.temporal_task_queue,
            "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
            "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
            "search_attributes": attributes("webhook_delivery", DeliveryStatus.PENDING.value, req.user_ids),
            "static_summary": f"Webhook {req.event_type} {req.event_id} -> endpoint {req.endpoint_id}",
        }
        # a closed run is refused, not started again: this delivery already ran (a relay repeated after a crash)
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self.client.start_workflow("WebhookDeliveryWorkflow", req, **options)


async def run_relay(engine: AsyncEngine, client: Client, settings: Settings) -> None:
    """Relay until cancelled (every worker process runs one; SKIP LOCKED shares the work)."""
    relay = OutboxRelay(engine, client, settings)
    while True:
        try:
            relayed = await relay.relay_batch()
        except Exception as exc:  # the database or Temporal may be briefly away: try again, never die
            log.warning("outbox relay failed: %s: %s", type(exc).__name__, str(exc)[:200])
            relayed = 0
            await asyncio.sleep(1.0)
        if relayed < BATCH:
            await asyncio.sleep(IDLE_SECONDS)
