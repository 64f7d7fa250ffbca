"""How the benchmarks start a product workflow: as the API's POST does, one update-with-start
of its `created` Update (the workflow's start options are the API's own)."""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

Outcome = TypeVar("Outcome")


async def created_with_start(
    client: Client,
    workflow: str,
    arg: Any,
    *,
    workflow_id: str,
    queue: str,
    options: dict[str, Any],
    created: Any,
    result_type: type[Outcome],
) -> Outcome:
    start: WithStartWorkflowOperation = WithStartWorkflowOperation(  # type: ignore[type-arg]
        workflow,
        arg,
        id=workflow_id,
        task_queue=queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        **options,
    )
    outcome: Outcome = await client.execute_update_with_start_workflow(
        "created", created, start_workflow_operation=start, result_type=result_type
    )
    return outcome
