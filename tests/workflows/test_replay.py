"""Recorded histories replay under the full workflow sandbox.

The worker passes our `workflows` package through the sandbox (imported once, not per run);
this test keeps the sandbox's guarantees: every history the session's worker recorded
(including orders driven here, single-release and milestone) replays deterministically with the
default restrictions, which refuse clocks, randomness and I/O in workflow code."""

from __future__ import annotations

import httpx
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.api.orders_support import act, funded_order
from tests.support import Stack, assert_eventually
from worker import WORKFLOWS

ESCROW_STEPS = ["reserve", "escrow", "escrow/fund"]
COMPLETED = "ExecutionStatus = 'Completed'"
MAX_HISTORIES = 300  # bounds the test when it runs after the whole suite


async def test_recorded_histories_replay_in_the_default_sandbox(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    _, _, single = await funded_order(client, stack, full_key, "12.00", ESCROW_STEPS)
    await act(client, full_key, single["id"], "resolution/release", {"reason": "delivered"})
    _, _, staged = await funded_order(
        client,
        stack,
        full_key,
        "20.00",
        ESCROW_STEPS,
        milestones=[
            {"milestone_ref": "draft", "title": "Draft", "amount": "5.00"},
            {"milestone_ref": "final", "title": "Final", "amount": "15.00"},
        ],
    )
    for ref in ("draft", "final"):
        await act(client, full_key, staged["id"], f"milestones/{ref}/complete", {"note": "done"})
        await act(client, full_key, staged["id"], f"milestones/{ref}/approve")

    temporal = await Client.connect(stack.env["TEMPORAL_ADDRESS"], data_converter=pydantic_data_converter)
    statuses: dict[str, object] = {}

    async def both_closed() -> bool:
        for order_id in (single["id"], staged["id"]):
            statuses[order_id] = (await temporal.get_workflow_handle(order_id).describe()).status
        return all(status == WorkflowExecutionStatus.COMPLETED for status in statuses.values())

    try:
        await assert_eventually(both_closed, timeout=30)
    except AssertionError:
        raise AssertionError(f"the order workflows did not complete: {statuses}") from None
    kinds = {execution.workflow_type async for execution in temporal.list_workflows(COMPLETED, limit=MAX_HISTORIES)}
    assert {"OrderWorkflow", "MilestoneWorkflow"} <= kinds

    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)  # the default sandbox
    histories = temporal.list_workflows(COMPLETED, limit=MAX_HISTORIES).map_histories()
    results = await replayer.replay_workflows(histories, raise_on_replay_failure=False)
    assert {run_id: str(failure) for run_id, failure in results.replay_failures.items()} == {}
