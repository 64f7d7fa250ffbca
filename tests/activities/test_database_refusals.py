"""A value PostgreSQL refuses fails the step for good (one attempt, a recorded error), where
an outage would be retried: the worker's DatabaseRefusals interceptor, on the real database."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.database_refusals import DATABASE_REFUSED, DatabaseRefusals
from tests.support import Stack

ATTEMPTS: list[int] = []
DATABASE_URL: list[str] = [""]  # set by the test: the activity runs in this process


@workflow.defn(sandboxed=False)
class WriteOnce:
    @workflow.run
    async def run(self, value: str) -> str:
        # no maximum_attempts: without the interceptor this would retry forever
        result: str = await workflow.execute_activity(store_text, value, start_to_close_timeout=timedelta(seconds=10))
        return result


@activity.defn
async def store_text(value: str) -> str:
    ATTEMPTS.append(activity.info().attempt)
    engine = create_async_engine(DATABASE_URL[0])
    try:
        async with engine.begin() as conn:
            stored = await conn.execute(text("SELECT CAST(:value AS text)"), {"value": value})
            return str(stored.scalar_one())
    finally:
        await engine.dispose()


@pytest.mark.parametrize("value", ["nul\x00inside", "fine"])
async def test_a_refused_value_fails_the_step_once(stack: Stack, value: str) -> None:
    DATABASE_URL[0] = stack.database_url
    ATTEMPTS.clear()
    temporal = await Client.connect(stack.env["TEMPORAL_ADDRESS"])
    queue = f"refusals-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal,
        task_queue=queue,
        workflows=[WriteOnce],
        activities=[store_text],
        interceptors=[DatabaseRefusals()],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await temporal.start_workflow(WriteOnce.run, value, id=f"wf-{queue}", task_queue=queue)
        if value == "fine":
            assert await handle.result() == "fine"
            return
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert isinstance(failed.value.cause, ActivityError)
    cause = failed.value.cause.cause
    assert isinstance(cause, ApplicationError) and cause.type == DATABASE_REFUSED and cause.non_retryable
    assert "nul" not in cause.message  # the value itself is not echoed
    assert ATTEMPTS == [1]
