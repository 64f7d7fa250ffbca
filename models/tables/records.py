"""What the system remembers about itself: signed chain transactions, the event outbox,
the audit log, inbound/outbound webhook records and reconciliation runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Column, Index, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.ids import IdPrefix
from models.tables._columns import (
    bigint_col,
    created_at_col,
    enum_check,
    fk,
    id_check,
    id_column,
    identity_pk,
    int_col,
    jsonb_col,
    listing_index,
    text_array_col,
    text_col,
    time_col,
)

RESOURCE_TYPES = ("order", "topup", "withdrawal", "dispute", "escrow", "milestone", "user", "balance", "wallet")
ACTOR_TYPES = ("api_key", "token", "master_key", "system", "webhook", "operator")


class ChainTransaction(SQLModel, table=True):
    __tablename__ = "chain_transactions"
    __table_args__ = (
        enum_check(
            "purpose",
            (
                "WALLET_ACTIVATION",
                "FEE_TOPUP",
                "PAYMENT",
                "ESCROW_DEPLOY",
                "ESCROW_FUND",
                "MILESTONE_STATUS",
                "MILESTONE_APPROVE",
                "ESCROW_RELEASE",
                "ESCROW_DISPUTE",
                "ESCROW_RESOLVE",
            ),
        ),
        enum_check("via", ("horizon", "trustless_work")),
        enum_check("status", ("SIGNED", "SUBMITTED", "CONFIRMED", "FAILED", "DEAD")),
        CheckConstraint("attempt >= 1", name="attempt_positive"),
        UniqueConstraint("operation_key", "attempt", name="uq_chain_transactions_attempt"),
        Index(
            "ux_chain_transactions_live",
            "operation_key",
            unique=True,
            postgresql_where=text("status IN ('SIGNED', 'SUBMITTED')"),
        ),
        Index(
            "ux_chain_transactions_confirmed",
            "operation_key",
            unique=True,
            postgresql_where=text("status = 'CONFIRMED'"),
        ),
        Index("ix_chain_transactions_resource", "resource_type", "resource_id"),
    )

    id: int | None = identity_pk()
    operation_key: str = text_col()
    attempt: int = int_col()
    purpose: str = text_col()
    resource_type: str = text_col()
    resource_id: str = text_col()
    via: str = text_col()
    source_account: str = text_col()
    sequence: int = bigint_col()
    signer: str = text_col()
    tx_hash: str = text_col(unique=True)
    envelope_xdr: str = text_col()
    max_time: datetime | None = time_col()
    status: str = text_col(default="SIGNED")
    result_codes: dict[str, Any] | None = jsonb_col(nullable=True)
    ledger: int | None = bigint_col(nullable=True)
    contract_id: str | None = text_col(nullable=True)
    response: dict[str, Any] | None = jsonb_col(nullable=True)
    submitted_at: datetime | None = time_col()
    confirmed_at: datetime | None = time_col()
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()


class Event(SQLModel, table=True):
    __tablename__ = "events"
    __table_args__ = (
        id_check(IdPrefix.EVENT),
        enum_check("resource_type", RESOURCE_TYPES),
        enum_check("actor_type", ACTOR_TYPES),
        CheckConstraint("cardinality(user_ids) > 0", name="user_ids_non_empty"),
        Index("ix_events_resource", "resource_type", "resource_id", "seq"),
        Index("ix_events_user_ids", "user_ids", postgresql_using="gin"),
        Index("ix_events_type_seq", "type", "seq"),
        Index("ix_events_occurred_at", "occurred_at"),
        Index("ix_events_unsequenced", "id", postgresql_where=text("seq IS NULL")),
        Index("ix_events_unrelayed", "seq", postgresql_where=text("relayed_at IS NULL")),
    )

    id: str = id_column(IdPrefix.EVENT)
    seq: int | None = bigint_col(nullable=True, unique=True)
    type: str = text_col()
    occurred_at: datetime = created_at_col()
    resource_type: str = text_col()
    resource_id: str = text_col()
    user_ids: list[str] = text_array_col()
    actor_type: str = text_col()
    actor_id: str | None = text_col(nullable=True)
    request_id: str | None = text_col(nullable=True)
    correlation_id: str = text_col()
    payload: dict[str, Any] = jsonb_col()
    relayed_at: datetime | None = time_col()


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_logs"
    __table_args__ = (
        id_check(IdPrefix.AUDIT),
        enum_check(
            "resource_type",
            (
                *RESOURCE_TYPES,
                "api_key",
                "webhook_endpoint",
                "maintenance",
            ),
        ),
        enum_check("actor_type", ACTOR_TYPES),
        enum_check("result", ("SUCCESS", "FAILURE")),
        Index("ix_audit_logs_resource", "resource_type", "resource_id", text("occurred_at DESC")),
        Index("ix_audit_logs_user", "user_id", text("occurred_at DESC")),
        Index("ix_audit_logs_action", "action"),
        Index("ix_audit_logs_request", "request_id"),
        listing_index("audit_logs", moment="occurred_at"),
        *(listing_index("audit_logs", by, moment="occurred_at") for by in ("action", "actor_type")),
    )

    id: str = id_column(IdPrefix.AUDIT)
    occurred_at: datetime = created_at_col()
    action: str = text_col()
    resource_type: str = text_col()
    resource_id: str = text_col()
    user_id: str | None = text_col(nullable=True)
    actor_type: str = text_col()
    actor_id: str | None = text_col(nullable=True)
    result: str = text_col(default="SUCCESS")
    payload_before: dict[str, Any] | None = jsonb_col(nullable=True)
    payload_after: dict[str, Any] | None = jsonb_col(nullable=True)
    error: dict[str, Any] | None = jsonb_col(nullable=True)
    request_id: str | None = text_col(nullable=True)
    idempotency_key: str | None = text_col(nullable=True)
    correlation_id: str | None = text_col(nullable=True)
    ip: str | None = text_col(nullable=True)
    user_agent: str | None = text_col(nullable=True)
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()


class InboundWebhookEvent(SQLModel, table=True):
    __tablename__ = "webhook_events"
    __table_args__ = (
        enum_check("provider", ("airtm", "trustless_work")),
        enum_check("status", ("PROCESSED", "IGNORED")),
        UniqueConstraint("provider", "provider_event_id", name="uq_webhook_events_provider_event"),
        Index("ix_webhook_events_received_at", "received_at"),
    )

    id: int | None = identity_pk()
    provider: str = text_col()
    provider_event_id: str = text_col()
    event_type: str = text_col()
    status: str = text_col()
    target_workflow_id: str | None = text_col(nullable=True)
    resource_type: str | None = text_col(nullable=True)
    resource_id: str | None = text_col(nullable=True)
    body_sha256: str = text_col()
    summary: dict[str, Any] = jsonb_col()
    received_at: datetime = created_at_col()
    processed_at: datetime = created_at_col()


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        id_check(IdPrefix.WEBHOOK_ENDPOINT),
        enum_check("status", ("ACTIVE", "DELETED")),
        CheckConstraint("char_length(url) <= 2048", name="url_length"),
        CheckConstraint("cardinality(event_types) BETWEEN 1 AND 50", name="event_types_count"),
        CheckConstraint("(status = 'DELETED') = (deleted_at IS NOT NULL)", name="deleted_at_iff_deleted"),
        Index(
            "ix_webhook_endpoints_active_listing",
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=text("status = 'ACTIVE'"),
        ),
        listing_index("webhook_endpoints"),
    )

    id: str = id_column(IdPrefix.WEBHOOK_ENDPOINT)
    url: str = text_col()
    event_types: list[str] = text_array_col()
    description: str | None = text_col(nullable=True)
    status: str = text_col(default="ACTIVE")
    secret_encrypted: str = text_col()
    secret_hint: str = text_col()
    previous_secret_encrypted: str | None = text_col(nullable=True)
    previous_secret_expires_at: datetime | None = time_col()
    deleted_at: datetime | None = time_col()
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("id LIKE 'whd\\_%'", name="id_prefix"),
        enum_check("status", ("PENDING", "SUCCEEDED", "FAILED")),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", text("created_at DESC"), text("id DESC")),
        Index("ix_webhook_deliveries_event", "event_id"),
    )

    id: str = id_column(IdPrefix.WEBHOOK_DELIVERY)
    endpoint_id: str = fk("webhook_endpoints.id")
    # events are purged after their retention; deliveries outlive them, so no FK here
    event_id: str = text_col()
    event_type: str = text_col()
    status: str = text_col(default="PENDING")
    attempts: int = int_col(default=0)
    last_attempt_at: datetime | None = time_col()
    last_response_status: int | None = int_col(nullable=True)
    last_error: str | None = text_col(nullable=True)
    next_attempt_at: datetime | None = time_col()
    succeeded_at: datetime | None = time_col()
    # every attempt, oldest first: {attempt, at, response_status, duration_ms, error} (the last 50)
    attempt_log: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    )
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()


class ReconciliationRun(SQLModel, table=True):
    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        enum_check("status", ("RUNNING", "OK", "FINDINGS", "ERROR")),
        Index("ix_reconciliation_runs_listing", text("created_at DESC"), text("id DESC")),
    )

    id: int | None = identity_pk()
    status: str = text_col(default="RUNNING")
    started_at: datetime = created_at_col()
    finished_at: datetime | None = time_col()
    checks: dict[str, Any] = jsonb_col()
    findings: list[Any] = jsonb_col()
    error: str | None = text_col(nullable=True)
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()
