"""Inputs and outputs of ReconciliationWorkflow and its activities (operations.md §2)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# the five checks, in the order a run performs them
LEDGER_INVARIANTS = "ledger_invariants"
ESCROWS_ON_CHAIN = "escrows_on_chain"
WALLETS_ON_CHAIN = "wallets_on_chain"
STUCK_FLOWS = "stuck_flows"
WEBHOOK_DELIVERIES = "webhook_deliveries"
CHECKS = (LEDGER_INVARIANTS, ESCROWS_ON_CHAIN, WALLETS_ON_CHAIN, STUCK_FLOWS, WEBHOOK_DELIVERIES)

RUN_STATUSES = ("RUNNING", "OK", "FINDINGS", "ERROR")
# a run's findings travel through the workflow history: each check keeps the first ones and
# counts them all (`checks[name].findings`), so one bad day cannot overflow a history payload
MAX_FINDINGS_PER_CHECK = 100


class Finding(BaseModel):
    """What differs: `expected` is what the product's records say, `actual` what was found."""

    check: str
    resource_type: str
    resource_id: str
    expected: Any
    actual: Any


class ReconciliationInput(BaseModel):
    """The Schedule's argument (nothing today; a field added later keeps old schedules valid)."""


class RunRef(BaseModel):
    run_id: int
    workflow_id: str


class CheckResult(BaseModel):
    checked: int = 0
    findings: list[Finding] = Field(default_factory=list)  # the first MAX_FINDINGS_PER_CHECK
    found: int = 0  # every finding, including those not carried

    @classmethod
    def of(cls, checked: int, findings: list[Finding]) -> CheckResult:
        return cls(checked=checked, findings=findings[:MAX_FINDINGS_PER_CHECK], found=len(findings))

    def counts(self) -> dict[str, int]:
        return {"checked": self.checked, "findings": self.found}


class RunReport(BaseModel):
    """What the run found, recorded on its row by `reconciliation_finish`."""

    run: RunRef
    checks: dict[str, CheckResult] = Field(default_factory=dict)
    error: str | None = None  # the checks that could not run, and why


class RunOutcome(BaseModel):
    run_id: int
    status: str
    findings: int
