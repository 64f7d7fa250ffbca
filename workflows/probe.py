"""ProbeWorkflow: one activity round trip, so operators and tests can prove a worker is live."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.workflow_io import ProbeResult


@workflow.defn(name="ProbeWorkflow")
class ProbeWorkflow:
    @workflow.run
    async def run(self) -> ProbeResult:
        result: ProbeResult = await workflow.execute_activity(
            steps.PROBE_DATABASE.name,
            start_to_close_timeout=timedelta(seconds=10),
            result_type=steps.PROBE_DATABASE.output,
        )
        return result
