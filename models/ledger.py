"""Balance effects (domain.md §3.4): what one ledger entry moves, keyed by its business effect.

Pure data: the activity in `activities/ledger.py` applies an effect exactly once. Each
constructor names the idempotency key and the exclusive key of its row in the §3.4 table,
so no caller can invent a key.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from models.tables.accounts import LEDGER_SIGNS


class EntryType(StrEnum):
    DEPOSIT = "DEPOSIT"
    ORDER_RESERVE = "ORDER_RESERVE"
    ORDER_RESERVE_RELEASE = "ORDER_RESERVE_RELEASE"
    ESCROW_FUND = "ESCROW_FUND"
    ESCROW_RELEASE = "ESCROW_RELEASE"
    ESCROW_REFUND = "ESCROW_REFUND"
    WITHDRAWAL_HOLD = "WITHDRAWAL_HOLD"
    WITHDRAWAL_HOLD_RELEASE = "WITHDRAWAL_HOLD_RELEASE"
    WITHDRAWAL_PAYOUT = "WITHDRAWAL_PAYOUT"


# What each entry type does to a balance, and the event it emits (domain.md §3.4).
EVENT_OF = {
    EntryType.DEPOSIT: "balance.credited",
    EntryType.ESCROW_RELEASE: "balance.credited",
    EntryType.ESCROW_REFUND: "balance.credited",
    EntryType.ORDER_RESERVE: "balance.reserved",
    EntryType.WITHDRAWAL_HOLD: "balance.reserved",
    EntryType.ORDER_RESERVE_RELEASE: "balance.released",
    EntryType.WITHDRAWAL_HOLD_RELEASE: "balance.released",
    EntryType.ESCROW_FUND: "balance.debited",
    EntryType.WITHDRAWAL_PAYOUT: "balance.debited",
}
AUDIT_ACTION_OF = {
    "balance.credited": "BALANCE_CREDITED",
    "balance.reserved": "BALANCE_RESERVED",
    "balance.released": "BALANCE_RELEASED",
    "balance.debited": "BALANCE_DEBITED",
}
# Effects that take money out of `available`: their shortfall is the client's INSUFFICIENT_FUNDS.
SPENDING = frozenset({EntryType.ORDER_RESERVE, EntryType.WITHDRAWAL_HOLD})


class LedgerEffect(BaseModel):
    idempotency_key: str
    exclusive_key: str | None = None
    entry_type: EntryType
    user_id: str
    amount: int = Field(gt=0)
    counter_account: str
    source_type: str
    source_id: str
    order_id: str | None = None
    escrow_id: str | None = None
    workflow_id: str
    request_id: str | None = None
    correlation_id: str
    reason: str | None = None  # balance.released payload (order_canceled, withdrawal_failed, ...)

    def deltas(self) -> tuple[int, int]:
        """(Δavailable, Δreserved) from the sign pattern of the entry type."""
        available, reserved = LEDGER_SIGNS[self.entry_type.value]
        return _signed(available, self.amount), _signed(reserved, self.amount)

    # constructors, one per row of the §3.4 table -------------------------------------------

    @classmethod
    def crypto_deposit(
        cls, *, topup_id: str, operation_id: str, user_id: str, amount: int, workflow_id: str
    ) -> LedgerEffect:
        return cls(
            idempotency_key=f"deposit:{operation_id}",
            exclusive_key=f"topup:{topup_id}",
            entry_type=EntryType.DEPOSIT,
            user_id=user_id,
            amount=amount,
            counter_account="external:deposit",
            source_type="topup",
            source_id=topup_id,
            workflow_id=workflow_id,
            correlation_id=topup_id,
        )

    @classmethod
    def airtm_deposit(cls, *, topup_id: str, user_id: str, amount: int, workflow_id: str) -> LedgerEffect:
        return cls(
            idempotency_key=f"topup:{topup_id}:credit",
            exclusive_key=f"topup:{topup_id}",
            entry_type=EntryType.DEPOSIT,
            user_id=user_id,
            amount=amount,
            counter_account="external:deposit",
            source_type="topup",
            source_id=topup_id,
            workflow_id=workflow_id,
            correlation_id=topup_id,
        )

    @classmethod
    def order_reserve(
        cls, *, order_id: str, buyer_id: str, amount: int, workflow_id: str, request_id: str | None = None
    ) -> LedgerEffect:
        return cls(
            idempotency_key=f"order:{order_id}:reserve",
            entry_type=EntryType.ORDER_RESERVE,
            user_id=buyer_id,
            amount=amount,
            counter_account="self",
            source_type="order",
            source_id=order_id,
            order_id=order_id,
            workflow_id=workflow_id,
            request_id=request_id,
            correlation_id=order_id,
        )

    @classmethod
    def order_reserve_release(
        cls, *, order_id: str, buyer_id: str, amount: int, workflow_id: str, request_id: str | None = None
    ) -> LedgerEffect:
        return cls(
            idempotency_key=f"order:{order_id}:cancel_reservation",
            exclusive_key=f"order:{order_id}:reservation",
            entry_type=EntryType.ORDER_RESERVE_RELEASE,
            user_id=buyer_id,
            amount=amount,
            counter_account="self",
            source_type="order",
            source_id=order_id,
            order_id=order_id,
            workflow_id=workflow_id,
            request_id=request_id,
            correlation_id=order_id,
            reason="order_canceled",
        )

    # money into and out of an escrow (counter account `escrow:<esc_id>`) ----------------------

    @classmethod
    def escrow_fund(cls, at: EscrowAccount, *, buyer_id: str, amount: int) -> LedgerEffect:
        """The buyer's reservation moved into the escrow once the funding is confirmed."""
        return _escrow_effect(
            EntryType.ESCROW_FUND,
            f"order:{at.order_id}:escrow_fund",
            at,
            user_id=buyer_id,
            amount=amount,
            source=("order", at.order_id),
            exclusive_key=f"order:{at.order_id}:reservation",
        )

    @classmethod
    def order_release(cls, at: EscrowAccount, *, seller_id: str, amount: int) -> LedgerEffect:
        """A single-release order paid to the seller (a milestone order: one per milestone)."""
        return _escrow_effect(
            EntryType.ESCROW_RELEASE, f"order:{at.order_id}:release", at, user_id=seller_id, amount=amount
        )

    @classmethod
    def order_refund(cls, at: EscrowAccount, *, buyer_id: str, amount: int) -> LedgerEffect:
        """What a single-release escrow still held, returned to the buyer."""
        return _escrow_effect(
            EntryType.ESCROW_REFUND, f"order:{at.order_id}:refund", at, user_id=buyer_id, amount=amount
        )

    @classmethod
    def milestone_release(cls, at: EscrowAccount, *, milestone_id: str, seller_id: str, amount: int) -> LedgerEffect:
        return _escrow_effect(
            EntryType.ESCROW_RELEASE,
            f"milestone:{milestone_id}:release",
            at,
            user_id=seller_id,
            amount=amount,
            source=("milestone", milestone_id),
        )

    @classmethod
    def milestone_refund(cls, at: EscrowAccount, *, milestone_id: str, buyer_id: str, amount: int) -> LedgerEffect:
        """One milestone returned to the buyer by an order refund (the refund of a milestone
        order is one such effect per unpaid milestone, as its release is; docs/decisions.md)."""
        return _escrow_effect(
            EntryType.ESCROW_REFUND,
            f"milestone:{milestone_id}:refund",
            at,
            user_id=buyer_id,
            amount=amount,
            source=("milestone", milestone_id),
        )

    @classmethod
    def dispute_release(cls, at: EscrowAccount, *, dispute_id: str, seller_id: str, amount: int) -> LedgerEffect:
        """The seller's part of a dispute decision."""
        return _escrow_effect(
            EntryType.ESCROW_RELEASE,
            f"dispute:{dispute_id}:release",
            at,
            user_id=seller_id,
            amount=amount,
            source=("dispute", dispute_id),
        )

    @classmethod
    def dispute_refund(cls, at: EscrowAccount, *, dispute_id: str, buyer_id: str, amount: int) -> LedgerEffect:
        """The buyer's part of a dispute decision."""
        return _escrow_effect(
            EntryType.ESCROW_REFUND,
            f"dispute:{dispute_id}:refund",
            at,
            user_id=buyer_id,
            amount=amount,
            source=("dispute", dispute_id),
        )

    # withdrawals (the hold, then either its release or the payout; domain.md §3.4) ------------

    @classmethod
    def withdrawal_hold(
        cls, *, withdrawal_id: str, user_id: str, amount: int, request_id: str | None = None
    ) -> LedgerEffect:
        """`available` -> `reserved` when the withdrawal is created (INSUFFICIENT_FUNDS if short)."""
        return _withdrawal_effect(EntryType.WITHDRAWAL_HOLD, "hold", withdrawal_id, user_id, amount, request_id)

    @classmethod
    def withdrawal_hold_release(
        cls, *, withdrawal_id: str, user_id: str, amount: int, reason: str, request_id: str | None = None
    ) -> LedgerEffect:
        """The hold returned (failed, canceled, expired): excludes the payout."""
        # reason: withdrawal_failed, withdrawal_canceled, withdrawal_expired (balance.released payload)
        return _withdrawal_effect(
            EntryType.WITHDRAWAL_HOLD_RELEASE, "release_hold", withdrawal_id, user_id, amount, request_id, reason
        )

    @classmethod
    def withdrawal_payout(
        cls, *, withdrawal_id: str, user_id: str, amount: int, request_id: str | None = None
    ) -> LedgerEffect:
        """The hold finalized once the money has left: excludes the release."""
        return _withdrawal_effect(EntryType.WITHDRAWAL_PAYOUT, "payout", withdrawal_id, user_id, amount, request_id)


class EscrowAccount(BaseModel):
    """The escrow an effect moves money into or out of, the order it belongs to (also the
    workflow and correlation ID of its entries) and the request that caused it."""

    order_id: str
    escrow_id: str
    request_id: str | None = None


def _signed(pattern: str, amount: int) -> int:
    return {"amount": amount, "-amount": -amount, "0": 0}[pattern]


def _escrow_effect(
    entry: EntryType,
    key: str,
    at: EscrowAccount,
    *,
    user_id: str,
    amount: int,
    source: tuple[str, str] | None = None,
    exclusive_key: str | None = None,
) -> LedgerEffect:
    source_type, source_id = source or ("order", at.order_id)
    return LedgerEffect(
        idempotency_key=key,
        exclusive_key=exclusive_key,
        entry_type=entry,
        user_id=user_id,
        amount=amount,
        counter_account=f"escrow:{at.escrow_id}",
        source_type=source_type,
        source_id=source_id,
        order_id=at.order_id,
        escrow_id=at.escrow_id,
        workflow_id=at.order_id,
        request_id=at.request_id,
        correlation_id=at.order_id,
    )


def _withdrawal_effect(
    entry: EntryType,
    step: str,
    withdrawal_id: str,
    user_id: str,
    amount: int,
    request_id: str | None,
    reason: str | None = None,
) -> LedgerEffect:
    return LedgerEffect(
        idempotency_key=f"withdrawal:{withdrawal_id}:{step}",
        # the release and the payout share the hold's key as their exclusive key: at most one exists
        exclusive_key=None if entry is EntryType.WITHDRAWAL_HOLD else f"withdrawal:{withdrawal_id}:hold",
        entry_type=entry,
        user_id=user_id,
        amount=amount,
        counter_account="external:payout" if entry is EntryType.WITHDRAWAL_PAYOUT else "self",
        source_type="withdrawal",
        source_id=withdrawal_id,
        workflow_id=withdrawal_id,
        request_id=request_id,
        correlation_id=withdrawal_id,
        reason=reason,
    )
