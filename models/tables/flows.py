"""Money flows: top-ups, orders with their milestones, escrows and disputes, withdrawals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, UniqueConstraint, text
from sqlmodel import SQLModel

from models.ids import IdPrefix
from models.states import (
    DisputeStatus,
    EscrowStatus,
    MilestoneStatus,
    OrderStatus,
    TopupStatus,
    WithdrawalStatus,
)
from models.tables._columns import (
    bigint_col,
    bool_col,
    created_at_col,
    enum_check,
    fk,
    id_check,
    id_column,
    int_col,
    jsonb_col,
    listing_index,
    text_array_col,
    text_col,
    time_col,
)

USD_ONLY = "currency = 'USD'"


class Topup(SQLModel, table=True):
    __tablename__ = "topups"
    __table_args__ = (
        id_check(IdPrefix.TOPUP),
        enum_check("provider", ("airtm", "crypto")),
        enum_check("status", tuple(TopupStatus)),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(USD_ONLY, name="currency_usd"),
        CheckConstraint("provider <> 'crypto' OR stellar_operation_id IS NOT NULL", name="crypto_has_operation"),
        Index("ix_topups_user_created", "user_id", text("created_at DESC")),
        Index("ix_topups_status", "status"),
        Index(
            "ix_topups_expiry",
            "status",
            "expires_at",
            postgresql_where=text(
                "status IN ('TOPUP_CREATED', 'TOPUP_AWAITING_USER_CONFIRMATION', 'TOPUP_PROCESSING')"
            ),
        ),
        listing_index("topups"),
    )

    id: str = id_column(IdPrefix.TOPUP)
    user_id: str = fk("users.id")
    provider: str = text_col()
    status: str = text_col()
    amount: int = bigint_col()
    currency: str = text_col(default="USD")
    description: str | None = text_col(nullable=True)
    metadata_: dict[str, Any] = jsonb_col(name="metadata")
    confirmation_uri: str | None = text_col(nullable=True)
    return_url: str | None = text_col(nullable=True)
    cancel_url: str | None = text_col(nullable=True)
    expires_at: datetime | None = time_col()
    airtm_payin_id: str | None = text_col(nullable=True, unique=True)
    stellar_transaction_hash: str | None = text_col(nullable=True)
    stellar_operation_id: str | None = text_col(nullable=True, unique=True)
    source_address: str | None = text_col(nullable=True)
    failure_code: str | None = text_col(nullable=True)
    failure_reason: str | None = text_col(nullable=True)
    completed_at: datetime | None = time_col()
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        id_check(IdPrefix.ORDER),
        enum_check("status", tuple(OrderStatus)),
        enum_check("close_reason", ("CANCELED", "RELEASED", "REFUNDED", "SPLIT")),
        CheckConstraint("buyer_id <> seller_id", name="buyer_not_seller"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(USD_ONLY, name="currency_usd"),
        CheckConstraint("released_amount >= 0 AND refunded_amount >= 0", name="totals_non_negative"),
        CheckConstraint("released_amount + refunded_amount <= amount", name="settled_within_amount"),
        CheckConstraint("(status = 'CLOSED') = (close_reason IS NOT NULL)", name="close_reason_iff_closed"),
        CheckConstraint("(status = 'CLOSED') = (closed_at IS NOT NULL)", name="closed_at_iff_closed"),
        CheckConstraint("char_length(title) BETWEEN 1 AND 200", name="title_length"),
        Index("ix_orders_buyer", "buyer_id"),
        Index("ix_orders_seller", "seller_id"),
        Index("ix_orders_status", "status"),
        listing_index("orders"),
        *(listing_index("orders", by) for by in ("status", "buyer_id", "seller_id")),
    )

    id: str = id_column(IdPrefix.ORDER)
    client_order_ref: str | None = text_col(nullable=True, unique=True)
    buyer_id: str = fk("users.id")
    seller_id: str = fk("users.id")
    title: str = text_col()
    description: str | None = text_col(nullable=True)
    amount: int = bigint_col()
    currency: str = text_col(default="USD")
    status: str = text_col()
    released_amount: int = bigint_col(default=0, server_default="0")
    refunded_amount: int = bigint_col(default=0, server_default="0")
    close_reason: str | None = text_col(nullable=True)
    cancel_reason: str | None = text_col(nullable=True)
    metadata_: dict[str, Any] = jsonb_col(name="metadata")
    last_error: dict[str, Any] | None = jsonb_col(nullable=True)
    closed_at: datetime | None = time_col()
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()


class Milestone(SQLModel, table=True):
    __tablename__ = "milestones"
    __table_args__ = (
        id_check(IdPrefix.MILESTONE),
        enum_check("status", tuple(MilestoneStatus)),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "milestone_ref ~ '^[A-Za-z0-9_-]{1,64}$' AND milestone_ref NOT LIKE 'ms\\_%'", name="milestone_ref_format"
        ),
        UniqueConstraint("order_id", "milestone_ref", name="uq_milestones_order_ref"),
        UniqueConstraint("order_id", "position", name="uq_milestones_order_position"),
    )

    id: str = id_column(IdPrefix.MILESTONE)
    order_id: str = fk("orders.id")
    milestone_ref: str = text_col()
    position: int = int_col()
    title: str = text_col()
    amount: int = bigint_col()
    status: str = text_col(default="OPEN")
    completion_note: str | None = text_col(nullable=True)
    completed_at: datetime | None = time_col()
    approved_at: datetime | None = time_col()
    released_at: datetime | None = time_col()
    release_tx_hash: str | None = text_col(nullable=True)
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()


class Escrow(SQLModel, table=True):
    __tablename__ = "escrows"
    __table_args__ = (
        id_check(IdPrefix.ESCROW),
        enum_check("status", tuple(EscrowStatus)),
        enum_check("type", ("SINGLE_RELEASE", "MULTI_RELEASE")),
        enum_check("network", ("testnet", "mainnet")),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("released_amount >= 0 AND refunded_amount >= 0", name="totals_non_negative"),
        CheckConstraint("released_amount + refunded_amount <= amount", name="paid_within_amount"),
        Index("ux_escrows_live_order", "order_id", unique=True, postgresql_where=text("discarded_at IS NULL")),
    )

    id: str = id_column(IdPrefix.ESCROW)
    order_id: str = fk("orders.id")
    status: str = text_col()
    type: str = text_col()
    amount: int = bigint_col()
    released_amount: int = bigint_col(default=0, server_default="0")
    refunded_amount: int = bigint_col(default=0, server_default="0")
    trustless_contract_id: str | None = text_col(nullable=True, unique=True)
    network: str = text_col()
    deploy_tx_hash: str | None = text_col(nullable=True)
    fund_tx_hash: str | None = text_col(nullable=True)
    settlement_tx_hash: str | None = text_col(nullable=True)
    funded_at: datetime | None = time_col()
    released_at: datetime | None = time_col()
    refunded_at: datetime | None = time_col()
    discarded_at: datetime | None = time_col()
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()


class Dispute(SQLModel, table=True):
    __tablename__ = "disputes"
    __table_args__ = (
        id_check(IdPrefix.DISPUTE),
        enum_check("status", tuple(DisputeStatus)),
        enum_check("opened_by", ("BUYER", "SELLER")),
        enum_check("reason", ("NOT_DELIVERED", "QUALITY_ISSUE", "OTHER")),
        enum_check("resolution_decision", ("FULL_RELEASE", "FULL_REFUND", "SPLIT")),
        CheckConstraint("disputed_amount > 0", name="disputed_amount_positive"),
        CheckConstraint("cardinality(evidence) <= 20", name="evidence_count"),
        CheckConstraint(
            "(release_amount IS NULL AND refund_amount IS NULL) OR (release_amount >= 0 AND refund_amount >= 0"
            " AND release_amount + refund_amount = disputed_amount)",
            name="decision_sums_to_disputed",
        ),
        CheckConstraint("(status = 'RESOLVED') = (resolved_at IS NOT NULL)", name="resolved_at_iff_resolved"),
        Index("ix_disputes_status", "status"),
        Index("ix_disputes_assigned_to", "assigned_to"),
        listing_index("disputes"),
    )

    id: str = id_column(IdPrefix.DISPUTE)
    order_id: str = fk("orders.id", unique=True)
    buyer_id: str = fk("users.id")
    seller_id: str = fk("users.id")
    status: str = text_col(default="OPEN")
    opened_by: str = text_col()
    reason: str = text_col()
    description: str | None = text_col(nullable=True)
    evidence: list[str] = text_array_col()
    disputed_amount: int = bigint_col()
    assigned_to: str | None = text_col(nullable=True)
    assigned_at: datetime | None = time_col()
    assignment_note: str | None = text_col(nullable=True)
    resolution_decision: str | None = text_col(nullable=True)
    release_amount: int | None = bigint_col(nullable=True)
    refund_amount: int | None = bigint_col(nullable=True)
    decision_note: str | None = text_col(nullable=True)
    resolved_by: str | None = text_col(nullable=True)
    resolved_at: datetime | None = time_col()
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()


class DisputeComment(SQLModel, table=True):
    __tablename__ = "dispute_comments"
    __table_args__ = (
        id_check(IdPrefix.COMMENT),
        enum_check("author_type", ("BUYER", "SELLER", "SUPPORT")),
        enum_check("visibility", ("PUBLIC", "INTERNAL")),
        CheckConstraint("char_length(message) BETWEEN 1 AND 5000", name="message_length"),
        CheckConstraint("cardinality(evidence) <= 20", name="evidence_count"),
        Index("ix_dispute_comments_listing", "dispute_id", text("created_at DESC"), text("id DESC")),
    )

    id: str = id_column(IdPrefix.COMMENT)
    dispute_id: str = fk("disputes.id")
    author_type: str = text_col()
    author_id: str | None = text_col(nullable=True)
    message: str = text_col()
    evidence: list[str] = text_array_col()
    visibility: str = text_col(default="PUBLIC")
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()


class Withdrawal(SQLModel, table=True):
    __tablename__ = "withdrawals"
    __table_args__ = (
        id_check(IdPrefix.WITHDRAWAL),
        enum_check("status", tuple(WithdrawalStatus)),
        enum_check("destination_type", ("crypto", "bank", "airtm_balance")),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("fee IS NULL OR fee >= 0", name="fee_non_negative"),
        CheckConstraint(USD_ONLY, name="currency_usd"),
        CheckConstraint("char_length(destination_ref) BETWEEN 1 AND 128", name="destination_ref_length"),
        CheckConstraint("memo IS NULL OR octet_length(memo) <= 28", name="memo_length"),
        Index("ix_withdrawals_user_created", "user_id", text("created_at DESC")),
        Index("ix_withdrawals_status", "status"),
        Index("ix_withdrawals_expiry", "status", "expires_at", postgresql_where=text("status = 'WITHDRAWAL_CREATED'")),
        listing_index("withdrawals"),
    )

    id: str = id_column(IdPrefix.WITHDRAWAL)
    user_id: str = fk("users.id")
    amount: int = bigint_col()
    currency: str = text_col(default="USD")
    fee: int | None = bigint_col(nullable=True)
    destination_type: str = text_col()
    destination_ref: str = text_col()
    memo: str | None = text_col(nullable=True)
    status: str = text_col()
    committed: bool = bool_col(False)
    description: str | None = text_col(nullable=True)
    metadata_: dict[str, Any] = jsonb_col(name="metadata")
    airtm_payout_id: str | None = text_col(nullable=True, unique=True)
    stellar_transaction_hash: str | None = text_col(nullable=True, unique=True)
    failure_code: str | None = text_col(nullable=True)
    failure_reason: str | None = text_col(nullable=True)
    expires_at: datetime | None = time_col()
    committed_at: datetime | None = time_col()
    completed_at: datetime | None = time_col()
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()
