"""RetentionWorkflow (Temporal Schedule `retention`, daily): purges what is past its retention
window, pass after pass until a pass finds nothing more (domain.md §5.2, §7.5, §2.18)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.retention_io import PurgeReport, RetentionInput
    from workflows.common import db_step, set_status

MAX_PASSES = 100  # a backlog larger than this waits for the next day's run


@workflow.defn(name="RetentionWorkflow")
class RetentionWorkflow:
    @workflow.run
    async def run(self, req: RetentionInput) -> PurgeReport:
        total = PurgeReport()
        for _ in range(MAX_PASSES):
            report = await db_step(steps.RETENTION_PURGE, req)
            total = PurgeReport(
                events=total.events + report.events,
                idempotency_keys=total.idempotency_keys + report.idempotency_keys,
                inbound_webhooks=total.inbound_webhooks + report.inbound_webhooks,
                more=report.more,
            )
            workflow.set_current_details(
                f"Purged {total.events} events, {total.idempotency_keys} idempotency records, "
                f"{total.inbound_webhooks} inbound webhook records"
            )
            if not report.more:
                break
        set_status("DONE", workflow.info().workflow_id)
        return total
