"""The worker process runs workflows and activities against the session's real stack."""

from __future__ import annotations

import uuid

from temporalio.client import Client

from api.payload_codec import data_converter
from models.workflow_io import ProbeResult
from tests.support import Stack, stack_settings


async def test_probe_workflow_round_trips_through_the_worker(stack: Stack) -> None:
    client = await Client.connect(stack.env["TEMPORAL_ADDRESS"], data_converter=data_converter(stack_settings(stack)))
    result = await client.execute_workflow(
        "ProbeWorkflow", id=f"probe-{uuid.uuid4()}", task_queue=stack.task_queue, result_type=ProbeResult
    )
    assert result.database_ok is True and result.worker_identity
