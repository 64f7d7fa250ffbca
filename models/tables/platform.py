"""Instance-level records: the marketplace row, API keys, idempotency records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, UniqueConstraint, text
from sqlmodel import SQLModel

from models.ids import IdPrefix
from models.tables._columns import (
    bool_col,
    bytes_col,
    created_at_col,
    enum_check,
    id_check,
    id_column,
    int_col,
    jsonb_col,
    text_array_col,
    text_col,
    time_col,
)

SCOPES = ("read", "write", "support")


class Marketplace(SQLModel, table=True):
    __tablename__ = "marketplace"
    __table_args__ = (
        id_check(IdPrefix.MARKETPLACE),
        UniqueConstraint("singleton", name="marketplace_singleton_key"),
        CheckConstraint("singleton", name="marketplace_singleton_true"),
        CheckConstraint("name IS NULL OR char_length(name) <= 100", name="name_length"),
        CheckConstraint(
            "(NOT maintenance_enabled AND maintenance_message IS NULL"
            " AND maintenance_retry_after_seconds IS NULL AND maintenance_enabled_at IS NULL"
            " AND maintenance_enabled_by IS NULL)"
            " OR (maintenance_enabled AND maintenance_message IS NOT NULL"
            " AND maintenance_retry_after_seconds IS NOT NULL AND maintenance_enabled_at IS NOT NULL)",
            name="maintenance_details",
        ),
        CheckConstraint(
            "maintenance_retry_after_seconds IS NULL OR maintenance_retry_after_seconds BETWEEN 1 AND 86400",
            name="maintenance_retry_after_range",
        ),
        CheckConstraint(
            "maintenance_message IS NULL OR char_length(maintenance_message) BETWEEN 1 AND 500",
            name="maintenance_message_length",
        ),
    )

    id: str = id_column(IdPrefix.MARKETPLACE)
    singleton: bool = bool_col(True)
    name: str | None = text_col(nullable=True)
    maintenance_enabled: bool = bool_col(False)
    maintenance_message: str | None = text_col(nullable=True)
    maintenance_retry_after_seconds: int | None = int_col(nullable=True)
    maintenance_enabled_at: datetime | None = time_col()
    maintenance_enabled_by: str | None = text_col(nullable=True)
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (
        id_check(IdPrefix.API_KEY),
        enum_check("status", ("ACTIVE", "REVOKED")),
        enum_check("key_prefix", ("ohk_live_", "ohk_test_")),
        CheckConstraint("char_length(name) BETWEEN 1 AND 100", name="name_length"),
        CheckConstraint(
            "cardinality(scopes) > 0 AND scopes <@ ARRAY['read','write','support']::text[]",
            name="scopes_valid",
        ),
        CheckConstraint("char_length(lookup_prefix) = 8", name="lookup_prefix_length"),
        CheckConstraint("(status = 'REVOKED') = (revoked_at IS NOT NULL)", name="revoked_at_iff_revoked"),
        Index("ix_api_keys_lookup_prefix", "lookup_prefix"),
        Index("ix_api_keys_listing", text("created_at DESC"), text("id DESC")),
    )

    id: str = id_column(IdPrefix.API_KEY)
    name: str = text_col()
    scopes: list[str] = text_array_col()
    status: str = text_col(default="ACTIVE")
    key_prefix: str = text_col()
    lookup_prefix: str = text_col()
    salt: bytes = bytes_col()
    secret_hash: bytes = bytes_col()
    key_hint: str = text_col()
    last_used_at: datetime | None = time_col()
    revoked_at: datetime | None = time_col()
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        enum_check("status", ("IN_PROGRESS", "COMPLETED")),
        CheckConstraint("char_length(key) BETWEEN 1 AND 255", name="key_length"),
        CheckConstraint("(status = 'COMPLETED') = (response_status IS NOT NULL)", name="response_iff_completed"),
        Index("ix_idempotency_keys_expires_at", "expires_at", postgresql_where=text("expires_at IS NOT NULL")),
    )

    namespace: str = text_col(primary_key=True)
    key: str = text_col(primary_key=True)
    fingerprint: str = text_col()
    method: str = text_col()
    path: str = text_col()
    status: str = text_col()
    resource_type: str | None = text_col(nullable=True)
    resource_id: str | None = text_col(nullable=True)
    response_status: int | None = int_col(nullable=True)
    response_body: dict | None = jsonb_col(nullable=True)  # type: ignore[type-arg]
    response_location: str | None = text_col(nullable=True)
    locked_until: datetime | None = time_col()
    completed_at: datetime | None = time_col()
    expires_at: datetime | None = time_col()
    created_at: datetime = created_at_col()
    updated_at: datetime = created_at_col()
