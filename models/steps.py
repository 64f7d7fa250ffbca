"""Every activity as the workflows call it: its registered name with its input and output types.

Workflows pass these declarations to `db_step` / `provider_step` (workflows/common.py), never
a bare name, so mypy checks what goes in and what comes back. Each implementation is
registered under the declaration's name (`@activity.defn(name=steps.ORDER_RESERVE.name)`):
"go to definition" from a workflow leads here, "find references" from here leads to the
implementation, and `tests/unit/test_steps.py` checks that every step has exactly one.
Workflows may not import `activities/` itself (architecture.md: workflows -> models only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from models.disputes_io import DisputeInput, DisputeOutcome, DisputeStep, OpenDispute
from models.orders_io import (
    ChainDone,
    CreateOrder,
    EscrowCallInput,
    EscrowCalls,
    EscrowPlan,
    MilestoneStep,
    OrderOutcome,
    OrderStep,
)
from models.reconciliation_io import CheckResult, ReconciliationInput, RunOutcome, RunRef, RunReport
from models.retention_io import PurgeReport, RetentionInput
from models.topups_io import PayinRef, PayinSnapshot, TopUpMove, TopUpOutcome, TopUpRecord
from models.webhook_delivery import Attempt, AttemptRecord, AttemptResult, DeliveryOutcome
from models.withdrawals_io import (
    CreateWithdrawal,
    DestinationCheck,
    DestinationChecked,
    PayoutApplied,
    PayoutRef,
    PayoutState,
    WithdrawalOutcome,
    WithdrawalStep,
)
from models.workflow_io import (
    DepositPage,
    DepositScan,
    ProbeResult,
    TopUpInput,
    TopUpResult,
    WalletSetupInput,
    WalletSetupResult,
)

In = TypeVar("In", contravariant=True)
Out = TypeVar("Out", bound=BaseModel | int)


@dataclass(frozen=True)
class Step(Generic[In, Out]):
    """One activity: `name` is what the worker registers and the Temporal UI shows."""

    name: str
    input: type[In]
    output: type[Out]


# orders (activities/orders.py) ------------------------------------------------------------------
ORDER_CREATE = Step("order_create", CreateOrder, OrderOutcome)
ORDER_RESERVE = Step("order_reserve", OrderStep, OrderOutcome)
ORDER_CANCEL = Step("order_cancel", OrderStep, OrderOutcome)
SETTLEMENT_REQUESTED = Step("settlement_requested", OrderStep, EscrowPlan)
SETTLEMENT_FAILED = Step("settlement_failed", OrderStep, OrderOutcome)
ORDER_STEP_FAILED = Step("order_step_failed", OrderStep, OrderOutcome)
ORDER_RELEASED = Step("order_released", OrderStep, OrderOutcome)
ORDER_REFUNDED = Step("order_refunded", OrderStep, OrderOutcome)
ORDER_RECORD = Step("order_record", OrderStep, OrderOutcome)  # read-only: the order's recorded status

# escrow records (activities/escrow_records.py) --------------------------------------------------
ESCROW_PREPARE = Step("escrow_prepare", OrderStep, EscrowPlan)
ESCROW_DEPLOYED = Step("escrow_deployed", ChainDone, EscrowPlan)
ESCROW_DEPLOY_FAILED = Step("escrow_deploy_failed", OrderStep, OrderOutcome)
ESCROW_FUNDING_STARTED = Step("escrow_funding_started", OrderStep, EscrowPlan)
ESCROW_FUNDED = Step("escrow_funded", ChainDone, OrderOutcome)
ESCROW_FUNDING_FAILED = Step("escrow_funding_failed", OrderStep, OrderOutcome)

# milestone records (activities/milestones.py) ---------------------------------------------------
MILESTONE_COMPLETED = Step("milestone_completed", MilestoneStep, OrderOutcome)
MILESTONE_APPROVED = Step("milestone_approved", MilestoneStep, OrderOutcome)
MILESTONE_RELEASED = Step("milestone_released", MilestoneStep, OrderOutcome)
MILESTONE_REFUNDED = Step("milestone_refunded", MilestoneStep, OrderOutcome)
MILESTONE_RECORD = Step("milestone_record", MilestoneStep, OrderOutcome)  # read-only: the recorded status

# escrow on chain (activities/escrow.py) ----------------------------------------------------------
ESCROW_DEPLOY = Step("escrow_deploy", EscrowPlan, ChainDone)
ESCROW_FUND = Step("escrow_fund", EscrowPlan, ChainDone)
ESCROW_CALL = Step("escrow_call", EscrowCallInput, ChainDone)
ESCROW_CALLS = Step("escrow_calls", EscrowCalls, ChainDone)  # the last step's answer

# disputes (activities/disputes.py) ---------------------------------------------------------------
DISPUTE_OPEN = Step("dispute_open", OpenDispute, DisputeInput)
DISPUTE_ASSIGNED = Step("dispute_assigned", DisputeStep, DisputeOutcome)
DISPUTE_DECIDED = Step("dispute_decided", DisputeStep, DisputeOutcome)
DISPUTE_SETTLEMENT_FAILED = Step("dispute_settlement_failed", DisputeStep, DisputeOutcome)
DISPUTE_MILESTONE_SETTLED = Step("dispute_milestone_settled", DisputeStep, DisputeOutcome)
DISPUTE_SETTLED = Step("dispute_settled", DisputeStep, DisputeOutcome)
DISPUTE_COMMENT = Step("dispute_comment", DisputeStep, DisputeOutcome)
DISPUTE_SIGNAL_REJECTED = Step("dispute_signal_rejected", DisputeStep, DisputeOutcome)

# wallets, deposits, top-ups, probe ---------------------------------------------------------------
WALLET_ACTIVATE = Step("wallet_activate", WalletSetupInput, WalletSetupResult)
DEPOSITS_SCAN = Step("deposits_scan", DepositScan, DepositPage)
TOPUPS_START = Step("topups_start", list, int)
TOPUP_CREDIT_CRYPTO = Step("topup_credit_crypto", TopUpInput, TopUpResult)
PROBE_DATABASE = Step("probe_database", type(None), ProbeResult)

# airtm top-ups (activities/topups.py) -----------------------------------------------------------
TOPUP_CREATE = Step("topup_create", TopUpRecord, TopUpOutcome)
TOPUP_APPLY = Step("topup_apply", TopUpMove, TopUpOutcome)
TOPUP_START = Step("topup_start", PayinRef, PayinSnapshot)
TOPUP_READ = Step("topup_read", PayinRef, PayinSnapshot)
TOPUP_CANCEL = Step("topup_cancel", PayinRef, PayinSnapshot)

# withdrawals: records (activities/withdrawals.py) and payouts (activities/payouts.py) ------------
WITHDRAWAL_CREATE = Step("withdrawal_create", CreateWithdrawal, WithdrawalOutcome)
WITHDRAWAL_COMMIT = Step("withdrawal_commit", WithdrawalStep, WithdrawalOutcome)
WITHDRAWAL_CANCEL = Step("withdrawal_cancel", WithdrawalStep, WithdrawalOutcome)
WITHDRAWAL_APPLY = Step("withdrawal_apply", PayoutApplied, WithdrawalOutcome)
WITHDRAWAL_CHECK_DESTINATION = Step("withdrawal_check_destination", DestinationCheck, DestinationChecked)
WITHDRAWAL_PAY_CRYPTO = Step("withdrawal_pay_crypto", PayoutRef, PayoutState)
WITHDRAWAL_PAYOUT_CREATE = Step("withdrawal_payout_create", PayoutRef, PayoutState)
WITHDRAWAL_PAYOUT_COMMIT = Step("withdrawal_payout_commit", PayoutRef, PayoutState)
WITHDRAWAL_PAYOUT_READ = Step("withdrawal_payout_read", PayoutRef, PayoutState)
WITHDRAWAL_PAYOUT_CANCEL = Step("withdrawal_payout_cancel", PayoutRef, PayoutState)

# outbound webhooks (activities/webhook_deliveries.py) --------------------------------------------
WEBHOOK_SEND = Step("webhook_send", Attempt, AttemptResult)
WEBHOOK_DELIVERY_RECORD = Step("webhook_delivery_record", AttemptRecord, DeliveryOutcome)

# reconciliation (activities/reconciliation.py) -----------------------------------------------------
RECONCILIATION_START = Step("reconciliation_start", ReconciliationInput, RunRef)
RECONCILIATION_FINISH = Step("reconciliation_finish", RunReport, RunOutcome)
RECONCILE_LEDGER = Step("reconcile_ledger_invariants", RunRef, CheckResult)
RECONCILE_ESCROWS = Step("reconcile_escrows_on_chain", RunRef, CheckResult)
RECONCILE_WALLETS = Step("reconcile_wallets_on_chain", RunRef, CheckResult)
RECONCILE_STUCK_FLOWS = Step("reconcile_stuck_flows", RunRef, CheckResult)
RECONCILE_WEBHOOK_DELIVERIES = Step("reconcile_webhook_deliveries", RunRef, CheckResult)

# retention (activities/retention.py) ------------------------------------------------------------
RETENTION_PURGE = Step("retention_purge", RetentionInput, PurgeReport)

ALL: tuple[Step[object, BaseModel | int], ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, Step)
)
