"""Retention (domain.md §5.2, §7.5, §2.18): events past EVENT_RETENTION_DAYS, idempotency
records past their `expires_at`, inbound webhook records past INBOUND_WEBHOOK_RETENTION_DAYS.

Deleted in bounded batches, oldest first. An event is deleted only once it is numbered and
relayed (an outbound delivery still to start must find it); outbound deliveries and the
audit log are kept (they are the record)."""

from __future__ import annotations

from sqlalchemy import text
from temporalio import activity

from activities.context import WorkerContext
from models import steps
from models.retention_io import PurgeReport, RetentionInput

PURGES = {
    "events": """
        DELETE FROM events WHERE id IN (
          SELECT id FROM events
          WHERE occurred_at < now() - make_interval(days => :event_days)
            AND seq IS NOT NULL AND relayed_at IS NOT NULL
          ORDER BY occurred_at LIMIT :batch)""",
    "idempotency_keys": """
        DELETE FROM idempotency_keys WHERE ctid IN (
          SELECT ctid FROM idempotency_keys
          WHERE expires_at IS NOT NULL AND expires_at < now() AND status = 'COMPLETED'
          ORDER BY expires_at LIMIT :batch)""",
    "inbound_webhooks": """
        DELETE FROM webhook_events WHERE id IN (
          SELECT id FROM webhook_events
          WHERE received_at < now() - make_interval(days => :webhook_days)
          ORDER BY received_at LIMIT :batch)""",
}


class RetentionActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    @activity.defn(name=steps.RETENTION_PURGE.name)
    async def purge(self, req: RetentionInput) -> PurgeReport:
        """One pass: at most `batch_size` rows per table, each table in its own transaction."""
        settings = self.ctx.settings
        params = {
            "batch": req.batch_size,
            "event_days": settings.event_retention_days,
            "webhook_days": settings.inbound_webhook_retention_days,
        }
        counts: dict[str, int] = {}
        for table, statement in PURGES.items():
            async with self.ctx.sessions() as session, session.begin():
                result = await session.execute(text(statement), params)
                counts[table] = int(getattr(result, "rowcount", 0) or 0)
        return PurgeReport(**counts, more=any(n >= req.batch_size for n in counts.values()))
