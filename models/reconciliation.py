"""Reconciliation rules (operations.md §2) as pure functions: what a run's checks compare,
and how a difference becomes a finding. The activities only gather the two sides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from models.money import STROOPS_PER_CENT, format_cents
from models.reconciliation_io import (
    ESCROWS_ON_CHAIN,
    LEDGER_INVARIANTS,
    STUCK_FLOWS,
    WALLETS_ON_CHAIN,
    WEBHOOK_DELIVERIES,
    Finding,
)


def money(cents: Any) -> str:
    """Cents as a money string, signed when negative (a broken invariant may go below zero)."""
    value = int(cents or 0)
    return format_cents(value) if value >= 0 else "-" + format_cents(-value)


# ledger_invariants --------------------------------------------------------------------------


def ledger_findings(check: str, row: Mapping[str, Any]) -> Finding:
    """One violation row of activities/ledger_check.py (invariants 1-7) as a finding."""

    def found(resource_type: str, resource_id: str, expected: Any, actual: Any) -> Finding:
        return Finding(
            check=LEDGER_INVARIANTS,
            resource_type=resource_type,
            resource_id=resource_id,
            expected=expected,
            actual=actual,
        )

    if check == "1_conservation":
        accounted = row["a"] + row["r_ord"] + row["esc"] + row["r_wd"] + row["out_"]
        return found(
            "ledger",
            "conservation",
            {"deposits_in": money(row["in_"]), "reserved": money(row["r_ord"] + row["r_wd"])},
            {"available_reserved_escrow_out": money(accounted), "reserved": money(row["r"])},
        )
    if check == "2_double_entry":
        return found("escrow", str(row["escrow_id"]), {"held_at_least": "0.00"}, {"held": money(row["held"])})
    if check == "3_balances_are_the_ledger":
        ledger = {"available": money(row["a"]), "reserved": money(row["r"])}
        balance = {"available": money(row["available"]), "reserved": money(row["reserved"])}
        if ledger == balance and row["available_after"] is not None:  # the sums agree: the latest entry does not
            ledger = {"available": money(row["available_after"]), "reserved": money(row["reserved_after"])}
        return found("user", str(row["user_id"]), ledger, balance)
    if check == "4_reserved_is_explained":
        return found(
            "user", str(row["user_id"]), {"reserved": money(row["expected"])}, {"reserved": money(row["reserved"])}
        )
    if check == "5_resources_agree":
        what = str(row["what"])
        if what.startswith("topup "):
            return found(
                "topup",
                what.removeprefix("topup "),
                {"deposit_entries": int(row["resources"])},
                {"deposit_entries": int(row["ledger"])},
            )
        if what.startswith("withdrawal "):
            return found(
                "withdrawal", what.removeprefix("withdrawal "), _entries(row["resources"]), _entries(row["ledger"])
            )
        return found("ledger", what, {"ledger": money(row["ledger"])}, {"resources": money(row["resources"])})
    if check == "6_escrows":
        return found(
            "escrow",
            str(row["id"]),
            {
                "amount": money(row["order_amount"]),
                "released_amount": money(row["order_released"]),
                "refunded_amount": money(row["order_refunded"]),
            },
            {
                "amount": money(row["amount"]),
                "released_amount": money(row["released_amount"]),
                "refunded_amount": money(row["refunded_amount"]),
            },
        )
    if check == "7_orders":
        return found(
            "order",
            str(row["id"]),
            "settled amounts and reservation entries as domain.md §3.5 invariant 7 says",
            {"status": row["status"], "close_reason": row["close_reason"]},
        )
    return found("ledger", check, "no violation", {k: str(v) for k, v in row.items()})


def _entries(code: Any) -> dict[str, int]:
    """ledger_check.py encodes a withdrawal's entries as hold*100 + payout*10 + release."""
    value = int(code)
    return {
        "WITHDRAWAL_HOLD": value // 100,
        "WITHDRAWAL_PAYOUT": value // 10 % 10,
        "WITHDRAWAL_HOLD_RELEASE": value % 10,
    }


# escrows_on_chain ---------------------------------------------------------------------------

# our escrow status -> the phases a Trustless Work read-back may show for it
SETTLED = ("RELEASED", "REFUNDED")
IN_FLIGHT = ("RELEASING", "REFUNDING")  # a settlement being submitted: the chain may be ahead


def _phase(status: str) -> str:
    if status in SETTLED:
        return "settled"
    if status == "DISPUTED":
        return "disputed"
    return "open"


@dataclass(frozen=True)
class EscrowRecord:
    escrow_id: str
    status: str
    amount_in_escrow: int  # cents


def escrow_finding(record: EscrowRecord, chain_status: str | None, chain_balance_stroops: int | None) -> Finding | None:
    """A funded escrow against its read-back: the contract must hold exactly `amount_in_escrow`,
    and be settled, disputed or open as our record is (a multi-release escrow partly paid
    reads `FUNDING` on chain: still open). None when they agree or a settlement is in flight."""
    if record.status in IN_FLIGHT:
        return None
    expected = {"amount_in_escrow": money(record.amount_in_escrow), "status": record.status}
    if chain_status is None or chain_balance_stroops is None:
        return Finding(
            check=ESCROWS_ON_CHAIN,
            resource_type="escrow",
            resource_id=record.escrow_id,
            expected=expected,
            actual={"contract": "not found"},
        )
    balance_ok = chain_balance_stroops == record.amount_in_escrow * STROOPS_PER_CENT
    if balance_ok and _phase(record.status) == _phase(chain_status):
        return None
    return Finding(
        check=ESCROWS_ON_CHAIN,
        resource_type="escrow",
        resource_id=record.escrow_id,
        expected=expected,
        actual={"balance": stroops_money(chain_balance_stroops), "status": chain_status},
    )


def stroops_money(stroops: int) -> str:
    """A chain balance as a money string; sub-cent stroops shown as the 7-decimal amount."""
    if stroops % STROOPS_PER_CENT == 0:
        return money(stroops // STROOPS_PER_CENT)
    sign = "-" if stroops < 0 else ""
    whole = abs(stroops)
    return f"{sign}{whole // 10_000_000}.{whole % 10_000_000:07d}"


# wallets_on_chain ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WalletRecord:
    wallet_id: str
    user_id: str
    public_key: str
    available: int
    reserved: int


def wallet_finding(record: WalletRecord, usdc_stroops: int | None) -> Finding | None:
    """Invariant 8: the wallet's USDC floored to cents (sub-cent dust is never credited) equals
    its user's `available + reserved`. A wallet without its trustline holds nothing."""
    on_chain = (usdc_stroops or 0) // STROOPS_PER_CENT
    total = record.available + record.reserved
    if on_chain == total:
        return None
    return Finding(
        check=WALLETS_ON_CHAIN,
        resource_type="wallet",
        resource_id=record.wallet_id,
        expected={
            "user_id": record.user_id,
            "available": money(record.available),
            "reserved": money(record.reserved),
            "total": money(total),
        },
        actual={"usdc": stroops_money(usdc_stroops or 0), "public_key": record.public_key},
    )


# stuck_flows ---------------------------------------------------------------------------------

TOPUP_GRACE = timedelta(minutes=10)  # past its expiry
WITHDRAWAL_POLLS = 3  # pending past this many poll intervals
ORDER_STEP_LIMIT = timedelta(hours=1)  # escrow creation/funding, a settlement step

ORDER_STEPS = ("ESCROW_CREATING", "ESCROW_FUNDING", "RELEASE_REQUESTED", "REFUND_REQUESTED")
TOPUP_OPEN = ("TOPUP_CREATED", "TOPUP_AWAITING_USER_CONFIRMATION", "TOPUP_PROCESSING")
WITHDRAWAL_PENDING = ("WITHDRAWAL_COMMITTED", "WITHDRAWAL_PENDING", "WITHDRAWAL_PENDING_USER_ACTION")


@dataclass(frozen=True)
class StuckLimits:
    topup_grace: timedelta
    withdrawal_pending: timedelta
    order_step: timedelta

    @classmethod
    def of(cls, withdrawal_poll_interval_seconds: float) -> StuckLimits:
        return cls(
            topup_grace=TOPUP_GRACE,
            withdrawal_pending=timedelta(seconds=WITHDRAWAL_POLLS * withdrawal_poll_interval_seconds),
            order_step=ORDER_STEP_LIMIT,
        )


@dataclass(frozen=True)
class StuckCandidate:
    """A resource past its limit; `workflow_id` is the flow that should be moving it."""

    resource_type: str
    resource_id: str
    status: str
    since: str  # ISO time the limit counts from
    limit: str  # what it is past, in words
    workflow_id: str


@dataclass(frozen=True)
class FlowState:
    """What Temporal says of the candidate's workflow."""

    status: str  # RUNNING, COMPLETED, ..., NOT_FOUND
    retrying: str | None = None  # "escrow_fund attempt 4: <last failure>" when an activity retries


def stuck_finding(candidate: StuckCandidate, flow: FlowState) -> Finding | None:
    """Past its limit *and* its workflow is not running or is retrying: a finding. A running
    workflow that is not retrying is waiting for someone (a marketplace's next call, a user's
    confirmation), which is not stuck."""
    if flow.status == "RUNNING" and flow.retrying is None:
        return None
    return Finding(
        check=STUCK_FLOWS,
        resource_type=candidate.resource_type,
        resource_id=candidate.resource_id,
        expected={"status": f"past {candidate.status} ({candidate.limit})", "workflow": "RUNNING, progressing"},
        actual={
            "status": candidate.status,
            "since": candidate.since,
            "workflow_id": candidate.workflow_id,
            "workflow": flow.status,
            "retrying": flow.retrying,
        },
    )


# webhook_deliveries --------------------------------------------------------------------------


def delivery_finding(delivery_id: str, endpoint_id: str, event_type: str, attempts: int, error: str | None) -> Finding:
    return Finding(
        check=WEBHOOK_DELIVERIES,
        resource_type="webhook_delivery",
        resource_id=delivery_id,
        expected={"status": "SUCCEEDED"},
        actual={
            "status": "FAILED",
            "endpoint_id": endpoint_id,
            "event_type": event_type,
            "attempts": attempts,
            "last_error": error,
        },
    )


# audit ----------------------------------------------------------------------------------------


def audit_target(finding: Finding) -> tuple[str, str]:
    """The audited resource of a finding (domain.md §6.3 lists the audit resource types): a
    failed delivery is audited on its endpoint, a ledger-wide total on `balance` / `ledger`."""
    if finding.resource_type == "webhook_delivery" and isinstance(finding.actual, dict):
        return "webhook_endpoint", str(finding.actual.get("endpoint_id"))
    if finding.resource_type == "ledger":
        return "balance", "ledger"
    return finding.resource_type, finding.resource_id
