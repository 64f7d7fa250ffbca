"""The reconciliation Schedule (operations.md §2): created or updated at worker start, triggered
by `POST /admin/reconciliation/run`; and the run rows the admin endpoints read."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from api.outages import service_unavailable
from api.pagination import bad_cursor, check_limit
from api.services import Services
from models.errors import ErrorCode, OfferhubError
from models.reconciliation_io import ReconciliationInput
from models.search import attributes
from models.tables import ReconciliationRun
from models.timefmt import iso
from settings import Settings

SCHEDULE_ID = "reconciliation"
WORKFLOW_ID = "reconciliation"  # each run's ID is this plus the time it was started
SUMMARY = "Reconciliation: ledger invariants, escrows and wallets on chain, stuck flows, webhook deliveries"
# a trigger that found a run finishing (overlap skip) is sent again after this; the answer
# waits at most START_WAIT for the new run's row
RETRIGGER_SECONDS = 3.0
START_WAIT_SECONDS = 15.0


def schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "ReconciliationWorkflow",
            ReconciliationInput(),
            id=WORKFLOW_ID,
            task_queue=settings.temporal_task_queue,
            typed_search_attributes=attributes("reconciliation", "RUNNING", []),
            static_summary=SUMMARY,
        ),
        spec=ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=settings.reconciliation_interval_seconds))]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_schedule(client: Client, settings: Settings) -> None:
    """Create the Schedule, or bring an existing one to these settings (interval, task queue)."""
    await upsert_schedule(client, SCHEDULE_ID, schedule(settings))


async def upsert_schedule(client: Client, schedule_id: str, wanted: Schedule) -> None:
    """Create a Schedule, or bring the existing one to `wanted` (every worker start does this).

    A worker on another task queue than the Schedule's (a second deployment, a test's extra
    worker) takes it over only when no worker polls the Schedule's queue any more: otherwise
    the last worker started would steer the runs to a queue that may soon have no worker."""
    try:
        await client.create_schedule(schedule_id, wanted)
        return
    except ScheduleAlreadyRunningError:
        pass
    handle = client.get_schedule_handle(schedule_id)
    current = (await handle.describe()).schedule.action
    ours = wanted.action
    if (
        isinstance(current, ScheduleActionStartWorkflow)
        and isinstance(ours, ScheduleActionStartWorkflow)
        and current.task_queue != ours.task_queue
        and await _polled(client, current.task_queue)
    ):
        return

    def updated(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=wanted)

    await handle.update(updated)


async def _polled(client: Client, task_queue: str) -> bool:
    """Whether a worker polls this task queue for workflow tasks right now."""
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return bool(described.pollers)


def run_view(run: ReconciliationRun) -> dict[str, Any]:
    """The run object of operations.md §2."""
    return {
        "id": run.id,
        "status": run.status,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "checks": run.checks,
        "findings": run.findings,
        "error": run.error,
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
    }


async def trigger_run(services: Services) -> ReconciliationRun:
    """The run in progress, else the one this trigger starts (the Schedule's overlap policy
    skips a second run, so concurrent triggers all answer with the same row)."""
    async with services.sessions() as session:
        running = (
            await session.execute(
                select(ReconciliationRun)
                .where(col(ReconciliationRun.status) == "RUNNING")
                .order_by(col(ReconciliationRun.id).desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if running is not None:
            return running
        last = (await session.execute(select(func.coalesce(func.max(ReconciliationRun.id), 0)))).scalar_one()
    try:
        handle = (await services.temporal()).get_schedule_handle(SCHEDULE_ID)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_WAIT_SECONDS
        next_trigger = loop.time()
        while True:
            if loop.time() >= next_trigger:
                await handle.trigger()
                next_trigger = loop.time() + RETRIGGER_SECONDS
            async with services.sessions() as session:
                started = (
                    await session.execute(
                        select(ReconciliationRun)
                        .where(col(ReconciliationRun.id) > last)
                        .order_by(col(ReconciliationRun.id))
                        .limit(1)
                    )
                ).scalar_one_or_none()
            if started is not None:
                return started
            if loop.time() > deadline:
                raise service_unavailable(
                    "The workflow engine", "The reconciliation run did not start; is a worker running?"
                )
            await asyncio.sleep(0.1)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise service_unavailable(
                "The workflow engine", "The reconciliation schedule does not exist yet; start a worker"
            ) from None
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise service_unavailable("The workflow engine") from None
        raise


async def load_run(session: AsyncSession, run_id: str) -> ReconciliationRun:
    run = await session.get(ReconciliationRun, int(run_id)) if run_id.isdigit() and len(run_id) < 19 else None
    if run is None:
        raise OfferhubError(ErrorCode.NOT_FOUND, "Reconciliation run not found", {"run_id": run_id})
    return run


async def list_runs(
    session: AsyncSession, *, status: str | None, limit: int, cursor: str | None
) -> tuple[list[ReconciliationRun], bool]:
    """Newest first (`created_at`, then `id`), after the `cursor` run."""
    check_limit(limit)
    query = select(ReconciliationRun)
    if status is not None:
        query = query.where(col(ReconciliationRun.status) == status)
    if cursor is not None:
        if not cursor.isdigit() or len(cursor) >= 19:
            raise bad_cursor()
        anchor = await session.get(ReconciliationRun, int(cursor))
        if anchor is None:
            raise bad_cursor()
        query = query.where(
            (col(ReconciliationRun.created_at) < anchor.created_at)
            | ((col(ReconciliationRun.created_at) == anchor.created_at) & (col(ReconciliationRun.id) < anchor.id))
        )
    rows = (
        (
            await session.execute(
                query.order_by(col(ReconciliationRun.created_at).desc(), col(ReconciliationRun.id).desc()).limit(
                    limit + 1
                )
            )
        )
        .scalars()
        .all()
    )
    return list(rows[:limit]), len(rows) > limit
