"""Reconciliation activities (operations.md §2): the run's row, and the five checks.

Each check gathers the product's records and the other side (the ledger's own sums,
Trustless Work, Horizon, Temporal, the delivery table) and leaves the comparison to the
pure rules of models/reconciliation.py. A difference seen on the first look is looked at
again after `CONFIRM_DELAY` (a movement that landed on chain a moment before its record
is in flight, not a finding). A run never changes money: only its own row and the audit
entries of its findings are written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import text, update
from sqlmodel import col
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.context import WorkerContext, provider_errors
from activities.deposits import deposit_of
from activities.ledger_check import run_checks
from models import steps
from models.audit import audit_entry
from models.escrow_io import EscrowType
from models.reconciliation import (
    ORDER_STEPS,
    TOPUP_OPEN,
    WITHDRAWAL_PENDING,
    EscrowRecord,
    FlowState,
    StuckCandidate,
    StuckLimits,
    WalletRecord,
    audit_target,
    delivery_finding,
    escrow_finding,
    ledger_findings,
    stuck_finding,
    wallet_finding,
)
from models.reconciliation_io import CheckResult, Finding, ReconciliationInput, RunOutcome, RunRef, RunReport
from models.tables import ReconciliationRun
from models.timefmt import iso, utcnow
from providers.stellar.horizon import usdc_balance_stroops
from providers.trustless_work.escrow import snapshot_of

log = logging.getLogger("offerhub.reconciliation")
T = TypeVar("T")

CONFIRM_DELAY = 2.0  # seconds between the first look at a difference and the second
CONTRACTS_PER_READ = 50  # contract IDs per get-escrow-by-contract-ids call
CHAIN_READS_AT_ONCE = 8  # concurrent Horizon account reads
SETTLED_RECENTLY = timedelta(days=1)  # settled escrows are still compared for this long

COVERED = """
    SELECT (SELECT count(*) FROM balances) + (SELECT count(*) FROM escrows WHERE discarded_at IS NULL)
         + (SELECT count(*) FROM orders) + (SELECT count(*) FROM topups) + (SELECT count(*) FROM withdrawals)"""

ESCROWS = """
    SELECT id, status, type, trustless_contract_id, amount - released_amount - refunded_amount AS in_escrow
    FROM escrows
    WHERE funded_at IS NOT NULL AND discarded_at IS NULL AND trustless_contract_id IS NOT NULL
      AND (status NOT IN ('RELEASED', 'REFUNDED') OR updated_at > now() - make_interval(secs => :settled))"""

WALLETS = """
    SELECT w.id, w.user_id, w.public_key, w.deposit_cursor,
           coalesce(b.available, 0) AS available, coalesce(b.reserved, 0) AS reserved
    FROM wallets w LEFT JOIN balances b ON b.user_id = w.user_id AND b.currency = 'USD'
    WHERE w.purpose = 'USER' AND w.status = 'READY' AND w.is_active"""

UNCREDITED_DEPOSITS = """
    SELECT count(*) FROM topups WHERE user_id = :user_id AND provider = 'crypto' AND status = 'TOPUP_CREATED'"""


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


# the resources that can be stuck: (type, id, status, since, workflow id), past their limit
STUCK = f"""
    SELECT 'order' AS resource_type, id, status, updated_at AS since, id AS workflow_id, 'order_step' AS rule
      FROM orders WHERE status IN {_in(ORDER_STEPS)} AND updated_at < now() - make_interval(secs => :order_step)
    UNION ALL
    SELECT 'milestone', m.id, m.status, m.updated_at, m.order_id, 'order_step'
      FROM milestones m JOIN orders o ON o.id = m.order_id
     WHERE m.status = 'APPROVED' AND o.status <> 'CLOSED' AND m.updated_at < now() - make_interval(secs => :order_step)
    UNION ALL
    SELECT 'dispute', id, status, updated_at, id, 'order_step'
      FROM disputes WHERE resolution_decision IS NOT NULL AND status <> 'RESOLVED'
       AND updated_at < now() - make_interval(secs => :order_step)
    UNION ALL
    SELECT 'topup', id, status, coalesce(expires_at, created_at), id, 'topup_grace'
      FROM topups WHERE status IN {_in(TOPUP_OPEN)}
       AND coalesce(expires_at, created_at) < now() - make_interval(secs => :topup_grace)
    UNION ALL
    SELECT 'withdrawal', id, status, updated_at, id, 'withdrawal_pending'
      FROM withdrawals WHERE status IN {_in(WITHDRAWAL_PENDING)}
       AND updated_at < now() - make_interval(secs => :withdrawal_pending)"""

WATCHED = f"""
    SELECT (SELECT count(*) FROM orders WHERE status IN {_in(ORDER_STEPS)})
         + (SELECT count(*) FROM milestones WHERE status = 'APPROVED')
         + (SELECT count(*) FROM disputes WHERE resolution_decision IS NOT NULL AND status <> 'RESOLVED')
         + (SELECT count(*) FROM topups WHERE status IN {_in(TOPUP_OPEN)})
         + (SELECT count(*) FROM withdrawals WHERE status IN {_in(WITHDRAWAL_PENDING)})"""

# deliveries that ended FAILED (retries exhausted; not the ones a deleted endpoint canceled)
# since the previous run started, so each is reported once
DELIVERY_WINDOW = """
    SELECT coalesce(max(started_at), 'epoch'::timestamptz) FROM reconciliation_runs
    WHERE id < :run_id AND status <> 'RUNNING'"""
DELIVERIES_CHECKED = "SELECT count(*) FROM webhook_deliveries WHERE updated_at >= :since"
DELIVERIES_FAILED = """
    SELECT id, endpoint_id, event_type, attempts, last_error FROM webhook_deliveries
    WHERE status = 'FAILED' AND coalesce(last_error, '') <> 'ENDPOINT_DELETED' AND updated_at >= :since
    ORDER BY updated_at, id"""


async def _bounded(calls: Sequence[Callable[[], Awaitable[T]]], at_once: int) -> list[T]:
    gate = asyncio.Semaphore(at_once)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(call) for call in calls)))


class ReconciliationActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    # the run's row -------------------------------------------------------------------------

    @activity.defn(name=steps.RECONCILIATION_START.name)
    async def start(self, req: ReconciliationInput) -> RunRef:
        """A new RUNNING row. The schedule never overlaps runs, so a row still RUNNING belongs
        to a run whose workflow ended without finishing it: it is closed as ERROR first."""
        now = utcnow()
        async with self.ctx.sessions() as session, session.begin():
            await session.execute(
                update(ReconciliationRun)
                .where(col(ReconciliationRun.status) == "RUNNING")
                .values(status="ERROR", error="abandoned: its workflow ended first", finished_at=now, updated_at=now)
            )
            run = ReconciliationRun(
                status="RUNNING", started_at=now, checks={}, findings=[], created_at=now, updated_at=now
            )
            session.add(run)
            await session.flush()
            assert run.id is not None
        return RunRef(run_id=run.id, workflow_id=activity.info().workflow_id)

    @activity.defn(name=steps.RECONCILIATION_FINISH.name)
    async def finish(self, report: RunReport) -> RunOutcome:
        """The run's verdict on its row, each finding an audit entry and a warning, once."""
        findings = [f for result in report.checks.values() for f in result.findings]
        found = sum(result.found for result in report.checks.values())
        status = "ERROR" if report.error else "FINDINGS" if found else "OK"
        now = utcnow()
        run_id = report.run.run_id
        async with self.ctx.sessions() as session, session.begin():
            finished = (
                await session.execute(
                    update(ReconciliationRun)
                    .where(col(ReconciliationRun.id) == run_id, col(ReconciliationRun.status) == "RUNNING")
                    .values(
                        status=status,
                        finished_at=now,
                        checks={name: result.counts() for name, result in report.checks.items()},
                        findings=[f.model_dump(mode="json") for f in findings],
                        error=report.error,
                        updated_at=now,
                    )
                    .returning(col(ReconciliationRun.id))
                )
            ).first()
            if finished is None:  # recorded by an earlier attempt
                row = await session.get(ReconciliationRun, run_id)
                assert row is not None
                return RunOutcome(run_id=run_id, status=row.status, findings=len(row.findings))
            for finding in findings:
                session.add(self._audit(finding, report.run))
        for finding in findings:
            log.warning(
                "reconciliation finding",
                extra={
                    "run_id": run_id,
                    "check": finding.check,
                    "resource_type": finding.resource_type,
                    "resource_id": finding.resource_id,
                    "expected": finding.expected,
                    "actual": finding.actual,
                },
            )
        if report.error:
            log.warning("reconciliation run incomplete", extra={"run_id": run_id, "error": report.error})
        return RunOutcome(run_id=run_id, status=status, findings=found)

    @staticmethod
    def _audit(finding: Finding, run: RunRef) -> Any:
        resource_type, resource_id = audit_target(finding)
        user_id = finding.resource_id if finding.resource_type == "user" else None
        if isinstance(finding.expected, dict) and isinstance(finding.expected.get("user_id"), str):
            user_id = finding.expected["user_id"]
        return audit_entry(
            action="RECONCILIATION_FINDING",
            resource_type=resource_type,
            resource_id=resource_id,
            user_id=user_id,
            actor=("system", run.workflow_id),
            result="FAILURE",
            error={"code": "RECONCILIATION_FINDING", "message": f"{finding.check}: records and reality differ"},
            after={"run_id": run.run_id, **finding.model_dump(mode="json")},
        )

    # ledger_invariants ----------------------------------------------------------------------

    @activity.defn(name=steps.RECONCILE_LEDGER.name)
    async def ledger(self, run: RunRef) -> CheckResult:
        """Invariants 1-7 in one REPEATABLE READ snapshot (the code of `offerhub ledger check`)."""
        async with self.ctx.engine.connect() as conn:
            await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            report = await run_checks(conn)
            checked = int((await conn.execute(text(COVERED))).scalar_one())
            await conn.rollback()
        findings = [ledger_findings(check.name, row) for check in report.checks for row in check.violations]
        return CheckResult.of(checked, findings)

    # escrows_on_chain -----------------------------------------------------------------------

    async def _escrow_records(self, only: set[str] | None = None) -> dict[str, tuple[EscrowRecord, str, EscrowType]]:
        async with self.ctx.engine.connect() as conn:
            rows = (await conn.execute(text(ESCROWS), {"settled": SETTLED_RECENTLY.total_seconds()})).mappings().all()
        found: dict[str, tuple[EscrowRecord, str, EscrowType]] = {}
        for row in rows:
            if only is not None and row["id"] not in only:
                continue
            kind: EscrowType = "single-release" if row["type"] == "SINGLE_RELEASE" else "multi-release"
            record = EscrowRecord(escrow_id=row["id"], status=row["status"], amount_in_escrow=int(row["in_escrow"]))
            found[row["id"]] = (record, row["trustless_contract_id"], kind)
        return found

    async def _escrow_differences(self, records: dict[str, tuple[EscrowRecord, str, EscrowType]]) -> dict[str, Finding]:
        contracts = [contract for _, contract, _ in records.values()]
        read: dict[str, dict[str, Any]] = {}
        for start in range(0, len(contracts), CONTRACTS_PER_READ):
            batch = contracts[start : start + CONTRACTS_PER_READ]
            for escrow in await self.ctx.trustless.escrows_by_contract_ids(batch):
                read[str(escrow.get("contractId"))] = escrow
        differences: dict[str, Finding] = {}
        for escrow_id, (record, contract, kind) in records.items():
            raw = read.get(contract)
            snapshot = snapshot_of(raw, kind) if raw is not None else None
            finding = escrow_finding(
                record,
                snapshot.status if snapshot else None,
                snapshot.balance_stroops if snapshot else None,
            )
            if finding is not None:
                differences[escrow_id] = finding
        return differences

    @activity.defn(name=steps.RECONCILE_ESCROWS.name)
    @provider_errors
    async def escrows(self, run: RunRef) -> CheckResult:
        """Live funded escrows (and those settled within a day) against Trustless Work's read-back."""
        records = await self._escrow_records()
        differences = await self._escrow_differences(records)
        if differences:
            await asyncio.sleep(CONFIRM_DELAY)
            again = await self._escrow_records(set(differences))
            unchanged = {i: again[i] for i in differences if i in again and again[i][0] == records[i][0]}
            confirmed = await self._escrow_differences(unchanged)
            differences = {i: confirmed[i] for i in differences if i in confirmed}
        return CheckResult.of(len(records), list(differences.values()))

    # wallets_on_chain -----------------------------------------------------------------------

    async def _wallet_records(self, only: set[str] | None = None) -> dict[str, tuple[WalletRecord, str | None]]:
        async with self.ctx.engine.connect() as conn:
            rows = (await conn.execute(text(WALLETS))).mappings().all()
        return {
            row["id"]: (
                WalletRecord(
                    wallet_id=row["id"],
                    user_id=row["user_id"],
                    public_key=row["public_key"],
                    available=int(row["available"]),
                    reserved=int(row["reserved"]),
                ),
                row["deposit_cursor"],
            )
            for row in rows
            if only is None or row["id"] in only
        }

    async def _usdc(self, public_key: str) -> int | None:
        account = await self.ctx.horizon.account(public_key)
        return usdc_balance_stroops(account or {}, self.ctx.usdc_code, self.ctx.usdc_issuer)

    async def _wallet_differences(self, records: dict[str, tuple[WalletRecord, str | None]]) -> dict[str, Finding]:
        wallets = [record for record, _ in records.values()]
        balances = await _bounded([partial(self._usdc, w.public_key) for w in wallets], CHAIN_READS_AT_ONCE)
        differences: dict[str, Finding] = {}
        for wallet, usdc in zip(wallets, balances, strict=True):
            finding = wallet_finding(wallet, usdc)
            if finding is not None:
                differences[wallet.wallet_id] = finding
        return differences

    async def _deposit_in_flight(self, wallet: WalletRecord, cursor: str | None) -> bool:
        """A deposit on chain the monitor has not credited yet (seen or not): in flight."""
        async with self.ctx.engine.connect() as conn:
            waiting = (await conn.execute(text(UNCREDITED_DEPOSITS), {"user_id": wallet.user_id})).scalar_one()
        if waiting:
            return True
        payments = await self.ctx.horizon.payments(wallet.public_key, cursor=cursor, join=False)
        return any(
            deposit_of(
                {**p, "transaction_successful": p.get("transaction_successful", True)},
                wallet.public_key,
                self.ctx.usdc_code,
                self.ctx.usdc_issuer,
            )
            for p in payments
        )

    @activity.defn(name=steps.RECONCILE_WALLETS.name)
    @provider_errors
    async def wallets(self, run: RunRef) -> CheckResult:
        """Invariant 8 for every READY user wallet (crypto mode; airtm-mode users have none)."""
        records = await self._wallet_records()
        differences = await self._wallet_differences(records)
        if differences:
            await asyncio.sleep(CONFIRM_DELAY)
            again = await self._wallet_records(set(differences))
            confirmed = await self._wallet_differences({i: again[i] for i in differences if i in again})
            for wallet_id in list(confirmed):
                wallet, cursor = again[wallet_id]
                if await self._deposit_in_flight(wallet, cursor):
                    del confirmed[wallet_id]
            differences = confirmed
        return CheckResult.of(len(records), list(differences.values()))

    # stuck_flows ----------------------------------------------------------------------------

    async def _flow(self, workflow_id: str) -> FlowState:
        client = self.ctx.temporal
        assert client is not None, "the worker's context carries its Temporal client"
        try:
            described = await client.get_workflow_handle(workflow_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return FlowState(status="NOT_FOUND")
            raise
        status = described.status.name if described.status else "UNKNOWN"
        retrying = None
        for pending in described.raw_description.pending_activities:
            if pending.attempt > 1:
                reason = pending.last_failure.message if pending.HasField("last_failure") else ""
                retrying = f"{pending.activity_type.name} attempt {pending.attempt}: {reason}"[:500]
                break
        return FlowState(
            status="RUNNING" if status == WorkflowExecutionStatus.RUNNING.name else status, retrying=retrying
        )

    @activity.defn(name=steps.RECONCILE_STUCK_FLOWS.name)
    @provider_errors
    async def stuck_flows(self, run: RunRef) -> CheckResult:
        """Resources past their limit (models/reconciliation.py) whose workflow is gone or retrying."""
        limits = StuckLimits.of(self.ctx.settings.withdrawal_poll_interval_seconds)
        seconds = {
            "order_step": limits.order_step.total_seconds(),
            "topup_grace": limits.topup_grace.total_seconds(),
            "withdrawal_pending": limits.withdrawal_pending.total_seconds(),
        }
        words = {
            "order_step": f"{limits.order_step} in this status",
            "topup_grace": f"{limits.topup_grace} past its expiry",
            "withdrawal_pending": f"{limits.withdrawal_pending} pending",
        }
        async with self.ctx.engine.connect() as conn:
            rows = (await conn.execute(text(STUCK), seconds)).mappings().all()
            watched = int((await conn.execute(text(WATCHED))).scalar_one())
        candidates = [
            StuckCandidate(
                resource_type=row["resource_type"],
                resource_id=row["id"],
                status=row["status"],
                since=iso(row["since"]) or "",
                limit=words[row["rule"]],
                workflow_id=row["workflow_id"],
            )
            for row in rows
        ]
        flows = await _bounded([partial(self._flow, c.workflow_id) for c in candidates], CHAIN_READS_AT_ONCE)
        findings = [f for c, flow in zip(candidates, flows, strict=True) if (f := stuck_finding(c, flow)) is not None]
        return CheckResult.of(watched, findings)

    # webhook_deliveries ---------------------------------------------------------------------

    @activity.defn(name=steps.RECONCILE_WEBHOOK_DELIVERIES.name)
    async def webhook_deliveries(self, run: RunRef) -> CheckResult:
        """Outbound deliveries that exhausted their retries since the previous run started."""
        async with self.ctx.engine.connect() as conn:
            since: datetime = (await conn.execute(text(DELIVERY_WINDOW), {"run_id": run.run_id})).scalar_one()
            checked = int((await conn.execute(text(DELIVERIES_CHECKED), {"since": since})).scalar_one())
            rows = (await conn.execute(text(DELIVERIES_FAILED), {"since": since})).mappings().all()
        findings = [
            delivery_finding(r["id"], r["endpoint_id"], r["event_type"], int(r["attempts"]), r["last_error"])
            for r in rows
        ]
        return CheckResult.of(checked, findings)
