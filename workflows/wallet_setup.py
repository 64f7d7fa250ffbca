"""WalletSetupWorkflow (id = wal_…): fund the wallet's Stellar account and add its USDC
trustline, retrying until ready. The seed never enters this workflow: the activity
decrypts it inside the signing call."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.search import STATUS
    from models.workflow_io import WalletSetupInput, WalletSetupResult
    from workflows.common import provider_step


@workflow.defn(name="WalletSetupWorkflow")
class WalletSetupWorkflow:
    @workflow.run
    async def run(self, req: WalletSetupInput) -> WalletSetupResult:
        workflow.set_current_details(
            f"Activating wallet {req.wallet_id} on Stellar: account + USDC trustline (retries until ready)"
        )
        result = await provider_step(steps.WALLET_ACTIVATE, req)
        workflow.upsert_search_attributes([STATUS.value_set(result.status)])
        workflow.set_current_details(f"Wallet {req.wallet_id} is READY at {result.public_key}")
        return result
