"""TopUpWorkflow (id = topup_…). Crypto: a recorded on-chain deposit is credited exactly once
(TOPUP_CREATED -> TOPUP_SUCCEEDED). The Airtm pay-in path comes with the top-ups API."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.search import STATUS
    from models.workflow_io import TopUpInput, TopUpResult
    from workflows.common import db_step


@workflow.defn(name="TopUpWorkflow")
class TopUpWorkflow:
    @workflow.run
    async def run(self, req: TopUpInput) -> TopUpResult:
        if req.provider != "crypto":
            raise ApplicationError(
                "Airtm top-ups are not served by this worker yet", type="ProviderNotSupported", non_retryable=True
            )
        workflow.set_current_details(f"Crediting on-chain deposit {req.topup_id} to the ledger")
        result = await db_step(steps.TOPUP_CREDIT_CRYPTO, req)
        workflow.upsert_search_attributes([STATUS.value_set(result.status)])
        workflow.set_current_details(f"Top-up {req.topup_id} {result.status}")
        return result
