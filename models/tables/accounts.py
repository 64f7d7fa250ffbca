"""Who holds money: users, their invisible wallets, balances and the append-only ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Text, text
from sqlmodel import Field, SQLModel

from models.ids import IdPrefix
from models.tables._columns import (
    bigint_col,
    bool_col,
    created_at_col,
    enum_check,
    fk,
    id_check,
    id_column,
    identity_pk,
    jsonb_col,
    listing_index,
    text_col,
    time_col,
)

LEDGER_ENTRY_TYPES = (
    "DEPOSIT",
    "ORDER_RESERVE",
    "ORDER_RESERVE_RELEASE",
    "ESCROW_FUND",
    "ESCROW_RELEASE",
    "ESCROW_REFUND",
    "WITHDRAWAL_HOLD",
    "WITHDRAWAL_HOLD_RELEASE",
    "WITHDRAWAL_PAYOUT",
)

# Sign pattern of every entry type (domain.md §3.4): (delta_available, delta_reserved).
LEDGER_SIGNS: dict[str, tuple[str, str]] = {
    "DEPOSIT": ("amount", "0"),
    "ORDER_RESERVE": ("-amount", "amount"),
    "ORDER_RESERVE_RELEASE": ("amount", "-amount"),
    "ESCROW_FUND": ("0", "-amount"),
    "ESCROW_RELEASE": ("amount", "0"),
    "ESCROW_REFUND": ("amount", "0"),
    "WITHDRAWAL_HOLD": ("-amount", "amount"),
    "WITHDRAWAL_HOLD_RELEASE": ("amount", "-amount"),
    "WITHDRAWAL_PAYOUT": ("0", "-amount"),
}

_SIGN_CHECK = " OR ".join(
    f"(entry_type = '{kind}' AND delta_available = {da} AND delta_reserved = {dr})"
    for kind, (da, dr) in LEDGER_SIGNS.items()
)


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        id_check(IdPrefix.USER),
        enum_check("type", ("BUYER", "SELLER", "BOTH")),
        enum_check("status", ("ACTIVE", "SUSPENDED", "PENDING_VERIFICATION")),
        CheckConstraint("char_length(external_user_id) BETWEEN 1 AND 128", name="external_user_id_length"),
        CheckConstraint("email IS NULL OR char_length(email) <= 254", name="email_length"),
        CheckConstraint("(airtm_user_id IS NULL) = (airtm_linked_at IS NULL)", name="airtm_linked_at_iff_linked"),
        Index("ix_users_status", "status"),
        Index("ix_users_type", "type"),
        Index("ix_users_email_lower", text("lower(email)")),
        listing_index("users"),
    )

    id: str = id_column(IdPrefix.USER)
    external_user_id: str = text_col(unique=True)
    email: str | None = text_col(nullable=True)
    type: str = text_col(default="BOTH")
    status: str = text_col(default="ACTIVE")
    metadata_: dict[str, Any] = jsonb_col(name="metadata")
    airtm_user_id: str | None = text_col(nullable=True, unique=True)
    airtm_email: str | None = text_col(nullable=True)
    airtm_linked_at: datetime | None = time_col()
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()


class Wallet(SQLModel, table=True):
    __tablename__ = "wallets"
    __table_args__ = (
        id_check(IdPrefix.WALLET),
        enum_check("purpose", ("USER", "TREASURY", "RESOLVER", "BUYER_AGENT", "SELLER_AGENT")),
        enum_check("type", ("INVISIBLE",)),
        enum_check("provider", ("STELLAR",)),
        enum_check("network", ("testnet", "mainnet")),
        enum_check("setup_stage", ("KEYPAIR_CREATED", "ACCOUNT_FUNDED", "TRUSTLINE_READY")),
        enum_check("status", ("PENDING", "READY")),
        CheckConstraint("(purpose = 'USER') = (user_id IS NOT NULL)", name="user_iff_user_purpose"),
        CheckConstraint("(status = 'READY') = (setup_stage = 'TRUSTLINE_READY')", name="ready_iff_trustline"),
        CheckConstraint("char_length(public_key) = 56 AND public_key LIKE 'G%'", name="public_key_format"),
        Index("ux_wallets_user_primary", "user_id", unique=True, postgresql_where=text("is_primary AND is_active")),
        Index(
            "ux_wallets_platform_purpose",
            "purpose",
            unique=True,
            postgresql_where=text("user_id IS NULL AND is_active"),
        ),
        Index("ix_wallets_status", "status"),
    )

    id: str = id_column(IdPrefix.WALLET)
    user_id: str | None = fk("users.id", nullable=True)
    purpose: str = text_col()
    type: str = text_col(default="INVISIBLE")
    provider: str = text_col(default="STELLAR")
    network: str = text_col()
    public_key: str = text_col(unique=True)
    secret_encrypted: str = text_col()
    setup_stage: str = text_col(default="KEYPAIR_CREATED")
    status: str = text_col(default="PENDING")
    is_primary: bool = bool_col(True)
    is_active: bool = bool_col(True)
    account_funded_at: datetime | None = time_col()
    trustline_ready_at: datetime | None = time_col()
    deposit_cursor: str | None = text_col(nullable=True)
    last_sync_at: datetime | None = time_col()
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()


class Balance(SQLModel, table=True):
    __tablename__ = "balances"
    __table_args__ = (
        CheckConstraint("available >= 0", name="available_non_negative"),
        CheckConstraint("reserved >= 0", name="reserved_non_negative"),
        CheckConstraint("currency = 'USD'", name="currency_usd"),
    )

    user_id: str = Field(sa_column=Column(Text, ForeignKey("users.id", ondelete="RESTRICT"), primary_key=True))
    currency: str = Field(default="USD", sa_column=Column(Text, primary_key=True))
    available: int = bigint_col(default=0, server_default="0")
    reserved: int = bigint_col(default=0, server_default="0")
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()


class LedgerEntry(SQLModel, table=True):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        enum_check("entry_type", LEDGER_ENTRY_TYPES),
        enum_check("source_type", ("topup", "order", "milestone", "dispute", "withdrawal")),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("currency = 'USD'", name="currency_usd"),
        CheckConstraint("available_after >= 0 AND reserved_after >= 0", name="after_non_negative"),
        CheckConstraint(_SIGN_CHECK, name="entry_type_signs"),
        CheckConstraint(
            "counter_account IN ('external:deposit', 'external:payout', 'self')"
            " OR counter_account LIKE 'escrow:esc\\_%'",
            name="counter_account_format",
        ),
        Index("ix_ledger_entries_user", "user_id", "id"),
        Index("ix_ledger_entries_source", "source_type", "source_id"),
        Index("ix_ledger_entries_escrow", "escrow_id"),
        Index("ix_ledger_entries_entry_type", "entry_type"),
    )

    id: int | None = identity_pk()
    idempotency_key: str = text_col(unique=True)
    exclusive_key: str | None = text_col(nullable=True, unique=True)
    entry_type: str = text_col()
    user_id: str = fk("users.id")
    currency: str = text_col(default="USD")
    amount: int = bigint_col()
    delta_available: int = bigint_col()
    delta_reserved: int = bigint_col()
    available_after: int = bigint_col()
    reserved_after: int = bigint_col()
    counter_account: str = text_col()
    source_type: str = text_col()
    source_id: str = text_col()
    order_id: str | None = fk("orders.id", nullable=True)
    escrow_id: str | None = fk("escrows.id", nullable=True)
    workflow_id: str = text_col()
    request_id: str | None = text_col(nullable=True)
    created_at: datetime = created_at_col()
