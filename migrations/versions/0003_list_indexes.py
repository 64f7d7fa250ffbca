"""List indexes: each filter of `GET /orders` and `GET /audit/logs` reads its page in the
order the list is sorted (filter column, then newest first), so a page costs the same at
100k orders or 1M audit entries as at ten (bench/lists.py, tests/api/test_query_plans.py)

Built CONCURRENTLY: writes to these tables go on while a large deployment migrates.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEWEST = ("created_at DESC", "id DESC")
AUDIT_NEWEST = ("occurred_at DESC", "id DESC")
INDEXES = (
    ("ix_orders_status_listing", "orders", ("status", *NEWEST)),
    ("ix_orders_buyer_listing", "orders", ("buyer_id", *NEWEST)),
    ("ix_orders_seller_listing", "orders", ("seller_id", *NEWEST)),
    ("ix_audit_logs_action_listing", "audit_logs", ("action", *AUDIT_NEWEST)),
    ("ix_audit_logs_actor_type_listing", "audit_logs", ("actor_type", *AUDIT_NEWEST)),
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, columns in INDEXES:
            op.create_index(
                name,
                table,
                [sa.literal_column(c) for c in columns],
                postgresql_concurrently=True,
                if_not_exists=True,
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, _ in INDEXES:
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
