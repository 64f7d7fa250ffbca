"""DepositMonitorWorkflow (singleton id `deposit-monitor`): polls every wallet's Horizon
payments from its persisted cursor, and starts one TopUpWorkflow per USDC deposit. Balance
sync asks it to scan one wallet at once (`scan_wallet` Update)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.workflow_io import DepositMonitorState, DepositPage, DepositScan, ScanResult, ScanWallet
    from workflows.retry import FOREVER, PROVIDER_STEP

WORKFLOW_ID = "deposit-monitor"
ITERATIONS_PER_RUN = 500


@workflow.defn(name="DepositMonitorWorkflow")
class DepositMonitorWorkflow:
    @workflow.init
    def __init__(self, state: DepositMonitorState) -> None:
        self.state = state
        self.lock = asyncio.Lock()  # one scan at a time: cursors only move forward

    @workflow.run
    async def run(self, state: DepositMonitorState) -> None:
        interval = timedelta(seconds=state.poll_interval_seconds)
        for _ in range(ITERATIONS_PER_RUN):
            workflow.set_current_details(
                f"Watching wallets for USDC deposits every {interval.total_seconds():g} s "
                f"({self.state.deposits_seen} deposits recorded)"
            )
            async with self.lock:
                await self._scan(DepositScan())
            self.state.iterations += 1
            await workflow.sleep(interval)
            if workflow.info().is_continue_as_new_suggested():
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self.state)

    @workflow.update
    async def scan_wallet(self, req: ScanWallet) -> ScanResult:
        async with self.lock:
            page = await self._scan(DepositScan(wallet_ids=[req.wallet_id], force=True))
        return ScanResult(deposits_found=page.deposits_found, topup_ids=page.topup_ids)

    async def _scan(self, req: DepositScan) -> DepositPage:
        page: DepositPage = await workflow.execute_activity(
            steps.DEPOSITS_SCAN.name,
            req,
            result_type=steps.DEPOSITS_SCAN.output,
            start_to_close_timeout=PROVIDER_STEP,
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=FOREVER,
        )
        self.state.deposits_seen += page.deposits_found
        if page.topup_ids:
            await workflow.execute_activity(
                steps.TOPUPS_START.name,
                page.topup_ids,
                result_type=steps.TOPUPS_START.output,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=FOREVER,
            )
        return page
