"""The Temporal worker: every workflow and activity of the product on one task queue.

At start (crypto mode) it also makes sure the platform wallets exist on test networks,
that the deposit monitor runs, and that every PENDING wallet has its setup workflow.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from typing import Any

import uvloop
from sqlalchemy import select
from sqlmodel import col
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.context import WorkerContext
from activities.database_refusals import DatabaseRefusals
from activities.deposits import DepositActivities
from activities.disputes import DisputeActivities
from activities.escrow import EscrowActivities
from activities.escrow_records import EscrowRecordActivities
from activities.event_sequencer import run_sequencer
from activities.log_context import LogContext
from activities.milestones import MilestoneActivities
from activities.orders import OrderActivities
from activities.outbox_relay import run_relay
from activities.payouts import PayoutActivities
from activities.reconciliation import ReconciliationActivities
from activities.retention import RetentionActivities
from activities.system import SystemActivities
from activities.topups import TopupActivities
from activities.wallets import WalletActivities, ensure_platform_wallets
from activities.webhook_deliveries import WebhookDeliveryActivities
from activities.withdrawals import WithdrawalActivities
from api.reconciliation import ensure_schedule as ensure_reconciliation_schedule
from api.retention import ensure_retention_schedule
from api.services import connect_temporal
from api.starts import start_wallet_setup
from models.tables import Wallet
from models.workflow_io import DepositMonitorState
from settings import Settings, get_settings
from workflows.deposit_monitor import WORKFLOW_ID as DEPOSIT_MONITOR_ID
from workflows.deposit_monitor import DepositMonitorWorkflow
from workflows.dispute import DisputeWorkflow
from workflows.milestone import MilestoneWorkflow
from workflows.order import OrderWorkflow
from workflows.probe import ProbeWorkflow
from workflows.reconciliation import ReconciliationWorkflow
from workflows.retention import RetentionWorkflow
from workflows.topup import TopUpWorkflow
from workflows.wallet_setup import WalletSetupWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow
from workflows.withdrawal import WithdrawalWorkflow

log = logging.getLogger("offerhub.worker")
SHUTDOWN_GRACE = timedelta(seconds=20)
# Our workflow modules are imported once, not again for every new workflow run (the
# sandbox's per-run import was the largest part of starting one). Determinism under the full
# sandbox is checked by replaying recorded histories in the tests (tests/workflows/test_replay.py).
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
)

WORKFLOWS: list[type] = [
    ProbeWorkflow,
    WalletSetupWorkflow,
    TopUpWorkflow,
    DepositMonitorWorkflow,
    OrderWorkflow,
    MilestoneWorkflow,
    DisputeWorkflow,
    WithdrawalWorkflow,
    ReconciliationWorkflow,
    RetentionWorkflow,
    WebhookDeliveryWorkflow,
]


def activities_for(ctx: WorkerContext) -> list[Any]:
    system = SystemActivities(ctx.engine)
    wallets = WalletActivities(ctx)
    deposits = DepositActivities(ctx)
    topups = TopupActivities(ctx)
    orders = OrderActivities(ctx)
    escrow = EscrowActivities(ctx)
    disputes = DisputeActivities(ctx)
    escrow_records = EscrowRecordActivities(ctx)
    milestones = MilestoneActivities(ctx)
    withdrawals = WithdrawalActivities(ctx)
    payouts = PayoutActivities(ctx)
    reconciliation = ReconciliationActivities(ctx)
    retention = RetentionActivities(ctx)
    webhook_deliveries = WebhookDeliveryActivities(ctx)
    return [
        disputes.open,
        disputes.assigned,
        disputes.decided,
        disputes.decision_failed,
        disputes.settled,
        disputes.milestone_settled,
        disputes.comment,
        disputes.signal_rejected,
        system.probe_database,
        wallets.wallet_activate,
        deposits.deposits_scan,
        deposits.topups_start,
        topups.credit_crypto,
        topups.create,
        topups.apply,
        topups.start,
        topups.read,
        topups.cancel,
        escrow.deploy,
        escrow.fund,
        escrow.call,
        escrow.calls,
        orders.create,
        orders.reserve,
        orders.cancel,
        escrow_records.escrow_prepare,
        escrow_records.escrow_deployed,
        escrow_records.escrow_deploy_failed,
        escrow_records.escrow_funding_started,
        escrow_records.escrow_funded,
        escrow_records.escrow_funding_failed,
        orders.settlement_requested,
        orders.settlement_failed,
        orders.released,
        orders.refunded,
        milestones.milestone_completed,
        milestones.milestone_approved,
        milestones.milestone_released,
        milestones.milestone_refunded,
        milestones.milestone_record,
        orders.record,
        orders.step_failed,
        withdrawals.create,
        withdrawals.commit,
        withdrawals.cancel,
        withdrawals.apply,
        payouts.check_destination,
        payouts.pay_crypto,
        payouts.payout_create,
        payouts.payout_commit,
        payouts.payout_read,
        payouts.payout_cancel,
        reconciliation.start,
        retention.purge,
        reconciliation.finish,
        reconciliation.ledger,
        reconciliation.escrows,
        reconciliation.wallets,
        reconciliation.stuck_flows,
        reconciliation.webhook_deliveries,
        webhook_deliveries.send,
        webhook_deliveries.record,
    ]


async def prepare(ctx: WorkerContext, client: Client) -> None:
    settings = ctx.settings
    if settings.stellar_network == "testnet":
        await ensure_platform_wallets(ctx)
    await ensure_reconciliation_schedule(client, settings)
    await ensure_retention_schedule(client, settings)
    if settings.payment_provider == "crypto":
        await client.start_workflow(
            "DepositMonitorWorkflow",
            DepositMonitorState(poll_interval_seconds=settings.deposit_poll_interval_seconds),
            id=DEPOSIT_MONITOR_ID,
            task_queue=settings.temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary="Deposit monitor: Horizon payments of every wallet -> crypto top-ups",
        )
    async with ctx.sessions() as session:
        pending = (
            (
                await session.execute(
                    select(Wallet).where(col(Wallet.status) == "PENDING", col(Wallet.purpose) == "USER")
                )
            )
            .scalars()
            .all()
        )
    for wallet in pending:
        await start_wallet_setup(client, settings, wallet)


async def prepare_until_done(ctx: WorkerContext, client: Client) -> None:
    """Start-up work that needs providers: retried in the background, never blocks polling."""
    delay = 1.0
    while True:
        try:
            await prepare(ctx, client)
            log.info("worker start-up tasks done")
            return
        except Exception as exc:
            log.warning("worker start-up tasks failed; retrying in %.0f s: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


def metrics_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime exporting the SDK's metrics (workflow completions, activity failures
    by type, task latencies) in Prometheus format, when TEMPORAL_METRICS_BIND_ADDRESS is set."""
    if not settings.metrics_enabled or not settings.temporal_metrics_bind_address:
        return None
    return Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=settings.temporal_metrics_bind_address))
    )


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    client = await connect_temporal(settings, runtime=metrics_runtime(settings))
    ctx = WorkerContext.build(settings, client)
    try:
        worker = Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=WORKFLOWS,
            activities=activities_for(ctx),
            workflow_runner=WORKFLOW_RUNNER,
            interceptors=[LogContext(), DatabaseRefusals()],
            # on SIGTERM running activities get this long to finish (heartbeating ones see the
            # cancellation); what is still running then is retried by another worker
            graceful_shutdown_timeout=SHUTDOWN_GRACE,
        )
        async with worker:
            log.info("worker polling task queue %s", settings.temporal_task_queue)
            preparing = asyncio.create_task(prepare_until_done(ctx, client))
            sequencing = asyncio.create_task(run_sequencer(ctx.engine, settings.redis_url.get_secret_value()))
            relaying = asyncio.create_task(run_relay(ctx.engine, client, settings))
            try:
                await (stop.wait() if stop is not None else asyncio.Event().wait())
            finally:
                preparing.cancel()
                sequencing.cancel()
                relaying.cancel()
    finally:
        await ctx.close()
    log.info("worker stopped")


async def run_until_signalled(settings: Settings) -> None:
    """Run the worker until SIGTERM or SIGINT, then stop it gracefully (no new tasks polled,
    running activities given SHUTDOWN_GRACE)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    await run_worker(settings, stop=stop)


def main() -> None:
    from cli.logs import configure_logging
    from cli.startup import freeze_startup_objects

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    freeze_startup_objects()  # the workflows and activities imported: out of every later collection
    # uvloop's event loop spends a fraction of asyncio's CPU per socket event (bench: docs/decisions.md)
    uvloop.run(run_until_signalled(settings))


if __name__ == "__main__":
    main()
