"""WalletSetupWorkflow (id = wal_…): fund the wallet's Stellar account and add its USDC
trustline, retrying until ready. The seed never enters this workflow: the activity
decrypts it inside the signing call."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.search import STATUS
    from models.workflow_io import WalletSetupInput, WalletSetupResult
    from workflows.retry import FOREVER, PROVIDER_STEP


@workflow.defn(name="WalletSetupWorkflow")
class WalletSetupWorkflow:
    @workflow.run
    async def run(self, req: WalletSetupInput) -> WalletSetupResult:
        workflow.set_current_details(
            f"Activating wallet {req.wallet_id} on Stellar: account + USDC trustline (retries until ready)"
        )
        result: WalletSetupResult = await workflow.execute_activity(
            "wallet_activate",
            req,
            result_type=WalletSetupResult,
            start_to_close_timeout=PROVIDER_STEP,
            retry_policy=FOREVER,
            heartbeat_timeout=timedelta(seconds=10),
        )
        workflow.upsert_search_attributes([STATUS.value_set(result.status)])
        workflow.set_current_details(f"Wallet {req.wallet_id} is READY at {result.public_key}")
        return result
