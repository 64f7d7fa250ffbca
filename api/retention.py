"""The retention Schedule (daily, created or updated at worker start) that runs
RetentionWorkflow (workflows/retention.py, activities/retention.py)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from api.reconciliation import upsert_schedule
from models.retention_io import RetentionInput
from models.search import attributes
from settings import Settings

SCHEDULE_ID = "retention"
EVERY = timedelta(days=1)  # domain.md §7.5: "a daily job deletes expired records"


def retention_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "RetentionWorkflow",
            RetentionInput(),
            id=SCHEDULE_ID,
            task_queue=settings.temporal_task_queue,
            typed_search_attributes=attributes("retention", "RUNNING", []),
            static_summary="Retention: events, idempotency records and inbound webhooks past their windows",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=EVERY)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_retention_schedule(client: Client, settings: Settings) -> None:
    await upsert_schedule(client, SCHEDULE_ID, retention_schedule(settings))
