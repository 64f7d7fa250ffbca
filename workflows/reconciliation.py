"""ReconciliationWorkflow (Temporal Schedule `reconciliation`, operations.md §2): one run of
the five checks, recorded as one `reconciliation_runs` row: RUNNING -> OK / FINDINGS / ERROR.

The row is opened and closed by local activities; each check is a regular activity (a check
reads providers, Temporal or large tables) retried a few times, not forever: a check that
keeps failing ends the run ERROR with its reason, so the next scheduled run is not held
back (the schedule skips overlapping runs). A run never changes money.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.reconciliation_io import (
        ESCROWS_ON_CHAIN,
        LEDGER_INVARIANTS,
        STUCK_FLOWS,
        WALLETS_ON_CHAIN,
        WEBHOOK_DELIVERIES,
        CheckResult,
        ReconciliationInput,
        RunOutcome,
        RunRef,
        RunReport,
    )
    from workflows.common import HEARTBEAT_TIMEOUT, business_cause, db_step, set_status

CHECK_STEPS: tuple[tuple[str, steps.Step[RunRef, CheckResult]], ...] = (
    (LEDGER_INVARIANTS, steps.RECONCILE_LEDGER),
    (ESCROWS_ON_CHAIN, steps.RECONCILE_ESCROWS),
    (WALLETS_ON_CHAIN, steps.RECONCILE_WALLETS),
    (STUCK_FLOWS, steps.RECONCILE_STUCK_FLOWS),
    (WEBHOOK_DELIVERIES, steps.RECONCILE_WEBHOOK_DELIVERIES),
)
CHECK_TIMEOUT = timedelta(minutes=5)
CHECK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
)


@workflow.defn(name="ReconciliationWorkflow")
class ReconciliationWorkflow:
    @workflow.init
    def __init__(self, req: ReconciliationInput) -> None:
        self.run_ref: RunRef | None = None
        self.report: RunReport | None = None

    @workflow.run
    async def run(self, req: ReconciliationInput) -> RunOutcome:
        workflow.set_current_details("Opening the run's record")
        run = await db_step(steps.RECONCILIATION_START, req)
        self.run_ref = run
        report = self.report = RunReport(run=run)
        failed: list[str] = []
        for position, (name, step) in enumerate(CHECK_STEPS, start=1):
            workflow.set_current_details(
                f"Run {run.run_id}: checking {name} ({position}/{len(CHECK_STEPS)}); "
                f"findings so far: {sum(r.found for r in report.checks.values())}"
            )
            try:
                report.checks[name] = await workflow.execute_activity(
                    step.name,
                    run,
                    result_type=step.output,
                    start_to_close_timeout=CHECK_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=CHECK_RETRY,
                )
            except ActivityError as exc:
                failed.append(f"{name}: {business_cause(exc).message}"[:300])
        report.error = "; ".join(failed) or None
        workflow.set_current_details(f"Run {run.run_id}: recording the report")
        outcome = await db_step(steps.RECONCILIATION_FINISH, report)
        set_status(
            outcome.status,
            f"Run {run.run_id}: {outcome.status}, {outcome.findings} finding(s)"
            + (f"; {report.error}" if report.error else ""),
        )
        return outcome

    @workflow.query
    def state(self) -> RunReport | None:
        """For operators: the checks done so far."""
        return self.report
