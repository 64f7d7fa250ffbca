"""The pure rules of reconciliation (models/reconciliation.py): what differs, and what does not."""

from __future__ import annotations

from models.reconciliation import (
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
from models.reconciliation_io import MAX_FINDINGS_PER_CHECK, CheckResult, Finding

WALLET = WalletRecord(wallet_id="wal_a", user_id="usr_a", public_key="G" + "A" * 55, available=1500, reserved=500)


def test_a_balance_row_differing_from_its_entries_names_the_user_and_both_amounts() -> None:
    row = {
        "user_id": "usr_a",
        "available": 2500,
        "reserved": 0,
        "a": 1500,
        "r": 0,
        "available_after": 1500,
        "reserved_after": 0,
    }
    finding = ledger_findings("3_balances_are_the_ledger", row)
    assert finding.model_dump() == {
        "check": "ledger_invariants",
        "resource_type": "user",
        "resource_id": "usr_a",
        "expected": {"available": "15.00", "reserved": "0.00"},
        "actual": {"available": "25.00", "reserved": "0.00"},
    }


def test_ledger_wide_and_resource_violations_keep_their_resource() -> None:
    conservation = ledger_findings(
        "1_conservation", {"in_": 100, "out_": 0, "esc": 0, "a": 110, "r_ord": 0, "r_wd": 0, "r": 0}
    )
    assert (conservation.resource_type, conservation.resource_id) == ("ledger", "conservation")
    assert conservation.actual["available_reserved_escrow_out"] == "1.10"
    overdrawn = ledger_findings("2_double_entry", {"escrow_id": "esc_a", "held": -250})
    assert overdrawn.actual == {"held": "-2.50"}
    withdrawal = ledger_findings("5_resources_agree", {"what": "withdrawal wd_a", "ledger": 111, "resources": 110})
    assert withdrawal.resource_id == "wd_a"
    assert withdrawal.actual == {"WITHDRAWAL_HOLD": 1, "WITHDRAWAL_PAYOUT": 1, "WITHDRAWAL_HOLD_RELEASE": 1}


def test_an_escrow_agrees_when_the_contract_holds_what_is_in_escrow_in_the_same_phase() -> None:
    funded = EscrowRecord(escrow_id="esc_a", status="FUNDED", amount_in_escrow=12000)
    assert escrow_finding(funded, "FUNDED", 12000 * 100_000) is None
    assert escrow_finding(funded, "FUNDING", 12000 * 100_000) is None  # a partly paid multi-release reads FUNDING
    released = EscrowRecord(escrow_id="esc_a", status="RELEASED", amount_in_escrow=0)
    assert escrow_finding(released, "RELEASED", 0) is None


def test_an_escrow_differing_in_balance_or_phase_or_missing_is_a_finding() -> None:
    funded = EscrowRecord(escrow_id="esc_a", status="FUNDED", amount_in_escrow=12000)
    short = escrow_finding(funded, "FUNDED", 11000 * 100_000)
    assert short is not None and short.actual == {"balance": "110.00", "status": "FUNDED"}
    assert short.expected == {"amount_in_escrow": "120.00", "status": "FUNDED"}
    settled = escrow_finding(funded, "RELEASED", 12000 * 100_000)
    assert settled is not None and settled.actual["status"] == "RELEASED"
    missing = escrow_finding(funded, None, None)
    assert missing is not None and missing.actual == {"contract": "not found"}


def test_an_escrow_being_settled_is_in_flight_not_a_finding() -> None:
    releasing = EscrowRecord(escrow_id="esc_a", status="RELEASING", amount_in_escrow=12000)
    assert escrow_finding(releasing, "RELEASED", 0) is None


def test_a_wallet_agrees_with_its_user_up_to_sub_cent_dust() -> None:
    assert wallet_finding(WALLET, 2000 * 100_000) is None
    assert wallet_finding(WALLET, 2000 * 100_000 + 99_999) is None  # dust is never credited


def test_a_wallet_holding_another_amount_is_a_finding_naming_its_user() -> None:
    finding = wallet_finding(WALLET, 1900 * 100_000 + 5)
    assert finding is not None
    assert finding.expected == {"user_id": "usr_a", "available": "15.00", "reserved": "5.00", "total": "20.00"}
    assert finding.actual["usdc"] == "19.0000005"
    no_trustline = wallet_finding(WALLET, None)
    assert no_trustline is not None and no_trustline.actual["usdc"] == "0.00"


CANDIDATE = StuckCandidate(
    resource_type="order",
    resource_id="ord_a",
    status="ESCROW_FUNDING",
    since="2026-01-12T10:00:00.000Z",
    limit="1:00:00 in this status",
    workflow_id="ord_a",
)


def test_a_flow_past_its_limit_is_stuck_only_when_its_workflow_is_gone_or_retrying() -> None:
    assert stuck_finding(CANDIDATE, FlowState(status="RUNNING")) is None  # waiting for its next call
    retrying = stuck_finding(CANDIDATE, FlowState(status="RUNNING", retrying="escrow_fund attempt 4: 503"))
    assert retrying is not None and retrying.actual["retrying"] == "escrow_fund attempt 4: 503"
    for status in ("NOT_FOUND", "TERMINATED", "COMPLETED"):
        gone = stuck_finding(CANDIDATE, FlowState(status=status))
        assert gone is not None and gone.actual["workflow"] == status


def test_stuck_limits_follow_the_settings() -> None:
    limits = StuckLimits.of(withdrawal_poll_interval_seconds=300)
    assert limits.withdrawal_pending.total_seconds() == 900
    assert limits.topup_grace.total_seconds() == 600
    assert limits.order_step.total_seconds() == 3600


def test_findings_are_audited_on_a_resource_type_the_audit_log_knows() -> None:
    delivery = delivery_finding("whd_evt_whe", "whe_a", "order.created", 12, "timeout")
    assert audit_target(delivery) == ("webhook_endpoint", "whe_a")
    conservation = ledger_findings(
        "1_conservation", {"in_": 1, "out_": 0, "esc": 0, "a": 0, "r_ord": 0, "r_wd": 0, "r": 0}
    )
    assert audit_target(conservation) == ("balance", "ledger")
    assert audit_target(wallet_finding(WALLET, 0) or delivery) == ("wallet", "wal_a")


def test_a_check_carries_a_bounded_number_of_findings_and_counts_them_all() -> None:
    many = [
        Finding(check="stuck_flows", resource_type="order", resource_id=f"ord_{i}", expected=None, actual=None)
        for i in range(MAX_FINDINGS_PER_CHECK + 5)
    ]
    result = CheckResult.of(1000, many)
    assert len(result.findings) == MAX_FINDINGS_PER_CHECK
    assert result.counts() == {"checked": 1000, "findings": MAX_FINDINGS_PER_CHECK + 5}
