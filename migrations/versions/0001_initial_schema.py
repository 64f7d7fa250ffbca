"""initial schema: every table of domain.md §2, append-only guards

Revision ID: 0001
Revises: 
Create Date: 2026-11-29 15:41:17.494283
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Ledger and audit rows are never edited or deleted (corrections are new entries); events
# change only by the one-time assignment of `seq` and `relayed_at` (and retention deletes).
APPEND_ONLY_GUARDS = [
    """
    CREATE FUNCTION offerhub_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
    END $$
    """,
    """
    CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION offerhub_reject_change()
    """,
    """
    CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION offerhub_reject_change()
    """,
    """
    CREATE FUNCTION offerhub_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF (to_jsonb(NEW) - 'seq' - 'relayed_at') IS DISTINCT FROM (to_jsonb(OLD) - 'seq' - 'relayed_at')
           OR (OLD.seq IS NOT NULL AND NEW.seq IS DISTINCT FROM OLD.seq)
           OR (OLD.relayed_at IS NOT NULL AND NEW.relayed_at IS DISTINCT FROM OLD.relayed_at) THEN
            RAISE EXCEPTION 'events are immutable except the one-time seq and relayed_at';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER events_immutable BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION offerhub_events_guard()
    """,
]
DROP_GUARDS = [
    "DROP TRIGGER IF EXISTS events_immutable ON events",
    "DROP FUNCTION IF EXISTS offerhub_events_guard()",
    "DROP TRIGGER IF EXISTS audit_logs_append_only ON audit_logs",
    "DROP TRIGGER IF EXISTS ledger_entries_append_only ON ledger_entries",
    "DROP FUNCTION IF EXISTS offerhub_reject_change()",
]


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('scopes', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
    sa.Column('status', sa.Text(), server_default=sa.text("'ACTIVE'"), nullable=False),
    sa.Column('key_prefix', sa.Text(), nullable=False),
    sa.Column('lookup_prefix', sa.Text(), nullable=False),
    sa.Column('salt', sa.LargeBinary(), nullable=False),
    sa.Column('secret_hash', sa.LargeBinary(), nullable=False),
    sa.Column('key_hint', sa.Text(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(status = 'REVOKED') = (revoked_at IS NOT NULL)", name=op.f('ck_api_keys_revoked_at_iff_revoked')),
    sa.CheckConstraint("cardinality(scopes) > 0 AND scopes <@ ARRAY['read','write','support']::text[]", name=op.f('ck_api_keys_scopes_valid')),
    sa.CheckConstraint("id LIKE 'key\\_%'", name=op.f('ck_api_keys_id_prefix')),
    sa.CheckConstraint("key_prefix IN ('ohk_live_', 'ohk_test_')", name=op.f('ck_api_keys_key_prefix_enum')),
    sa.CheckConstraint("status IN ('ACTIVE', 'REVOKED')", name=op.f('ck_api_keys_status_enum')),
    sa.CheckConstraint('char_length(lookup_prefix) = 8', name=op.f('ck_api_keys_lookup_prefix_length')),
    sa.CheckConstraint('char_length(name) BETWEEN 1 AND 100', name=op.f('ck_api_keys_name_length')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys'))
    )
    op.create_index('ix_api_keys_listing', 'api_keys', [sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_api_keys_lookup_prefix', 'api_keys', ['lookup_prefix'], unique=False)
    op.create_table('audit_logs',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('resource_type', sa.Text(), nullable=False),
    sa.Column('resource_id', sa.Text(), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=True),
    sa.Column('actor_type', sa.Text(), nullable=False),
    sa.Column('actor_id', sa.Text(), nullable=True),
    sa.Column('result', sa.Text(), server_default=sa.text("'SUCCESS'"), nullable=False),
    sa.Column('payload_before', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('payload_after', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('request_id', sa.Text(), nullable=True),
    sa.Column('idempotency_key', sa.Text(), nullable=True),
    sa.Column('correlation_id', sa.Text(), nullable=True),
    sa.Column('ip', sa.Text(), nullable=True),
    sa.Column('user_agent', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("actor_type IN ('api_key', 'token', 'master_key', 'system', 'webhook', 'operator')", name=op.f('ck_audit_logs_actor_type_enum')),
    sa.CheckConstraint("id LIKE 'aud\\_%'", name=op.f('ck_audit_logs_id_prefix')),
    sa.CheckConstraint("resource_type IN ('order', 'topup', 'withdrawal', 'dispute', 'escrow', 'milestone', 'user', 'balance', 'wallet', 'api_key', 'webhook_endpoint', 'maintenance')", name=op.f('ck_audit_logs_resource_type_enum')),
    sa.CheckConstraint("result IN ('SUCCESS', 'FAILURE')", name=op.f('ck_audit_logs_result_enum')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_logs'))
    )
    op.create_index('ix_audit_logs_action', 'audit_logs', ['action'], unique=False)
    op.create_index('ix_audit_logs_listing', 'audit_logs', [sa.literal_column('occurred_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_audit_logs_request', 'audit_logs', ['request_id'], unique=False)
    op.create_index('ix_audit_logs_resource', 'audit_logs', ['resource_type', 'resource_id', sa.literal_column('occurred_at DESC')], unique=False)
    op.create_index('ix_audit_logs_user', 'audit_logs', ['user_id', sa.literal_column('occurred_at DESC')], unique=False)
    op.create_table('chain_transactions',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('operation_key', sa.Text(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('resource_type', sa.Text(), nullable=False),
    sa.Column('resource_id', sa.Text(), nullable=False),
    sa.Column('via', sa.Text(), nullable=False),
    sa.Column('source_account', sa.Text(), nullable=False),
    sa.Column('sequence', sa.BigInteger(), nullable=False),
    sa.Column('signer', sa.Text(), nullable=False),
    sa.Column('tx_hash', sa.Text(), nullable=False),
    sa.Column('envelope_xdr', sa.Text(), nullable=False),
    sa.Column('max_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.Text(), server_default=sa.text("'SIGNED'"), nullable=False),
    sa.Column('result_codes', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('ledger', sa.BigInteger(), nullable=True),
    sa.Column('contract_id', sa.Text(), nullable=True),
    sa.Column('response', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("purpose IN ('WALLET_ACTIVATION', 'FEE_TOPUP', 'PAYMENT', 'ESCROW_DEPLOY', 'ESCROW_FUND', 'MILESTONE_STATUS', 'MILESTONE_APPROVE', 'ESCROW_RELEASE', 'ESCROW_DISPUTE', 'ESCROW_RESOLVE')", name=op.f('ck_chain_transactions_purpose_enum')),
    sa.CheckConstraint("status IN ('SIGNED', 'SUBMITTED', 'CONFIRMED', 'FAILED', 'DEAD')", name=op.f('ck_chain_transactions_status_enum')),
    sa.CheckConstraint("via IN ('horizon', 'trustless_work')", name=op.f('ck_chain_transactions_via_enum')),
    sa.CheckConstraint('attempt >= 1', name=op.f('ck_chain_transactions_attempt_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chain_transactions')),
    sa.UniqueConstraint('operation_key', 'attempt', name='uq_chain_transactions_attempt'),
    sa.UniqueConstraint('tx_hash', name=op.f('uq_chain_transactions_tx_hash'))
    )
    op.create_index('ix_chain_transactions_resource', 'chain_transactions', ['resource_type', 'resource_id'], unique=False)
    op.create_index('ux_chain_transactions_confirmed', 'chain_transactions', ['operation_key'], unique=True, postgresql_where=sa.text("status = 'CONFIRMED'"))
    op.create_index('ux_chain_transactions_live', 'chain_transactions', ['operation_key'], unique=True, postgresql_where=sa.text("status IN ('SIGNED', 'SUBMITTED')"))
    op.create_table('events',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('resource_type', sa.Text(), nullable=False),
    sa.Column('resource_id', sa.Text(), nullable=False),
    sa.Column('user_ids', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
    sa.Column('actor_type', sa.Text(), nullable=False),
    sa.Column('actor_id', sa.Text(), nullable=True),
    sa.Column('request_id', sa.Text(), nullable=True),
    sa.Column('correlation_id', sa.Text(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('relayed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("actor_type IN ('api_key', 'token', 'master_key', 'system', 'webhook', 'operator')", name=op.f('ck_events_actor_type_enum')),
    sa.CheckConstraint("id LIKE 'evt\\_%'", name=op.f('ck_events_id_prefix')),
    sa.CheckConstraint("resource_type IN ('order', 'topup', 'withdrawal', 'dispute', 'escrow', 'milestone', 'user', 'balance', 'wallet')", name=op.f('ck_events_resource_type_enum')),
    sa.CheckConstraint('cardinality(user_ids) > 0', name=op.f('ck_events_user_ids_non_empty')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('seq', name=op.f('uq_events_seq'))
    )
    op.create_index('ix_events_occurred_at', 'events', ['occurred_at'], unique=False)
    op.create_index('ix_events_resource', 'events', ['resource_type', 'resource_id', 'seq'], unique=False)
    op.create_index('ix_events_type_seq', 'events', ['type', 'seq'], unique=False)
    op.create_index('ix_events_unrelayed', 'events', ['seq'], unique=False, postgresql_where=sa.text('relayed_at IS NULL'))
    op.create_index('ix_events_unsequenced', 'events', ['id'], unique=False, postgresql_where=sa.text('seq IS NULL'))
    op.create_index('ix_events_user_ids', 'events', ['user_ids'], unique=False, postgresql_using='gin')
    op.create_table('idempotency_keys',
    sa.Column('namespace', sa.Text(), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.Text(), nullable=False),
    sa.Column('method', sa.Text(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('resource_type', sa.Text(), nullable=True),
    sa.Column('resource_id', sa.Text(), nullable=True),
    sa.Column('response_status', sa.Integer(), nullable=True),
    sa.Column('response_body', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('response_location', sa.Text(), nullable=True),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(status = 'COMPLETED') = (response_status IS NOT NULL)", name=op.f('ck_idempotency_keys_response_iff_completed')),
    sa.CheckConstraint("status IN ('IN_PROGRESS', 'COMPLETED')", name=op.f('ck_idempotency_keys_status_enum')),
    sa.CheckConstraint('char_length(key) BETWEEN 1 AND 255', name=op.f('ck_idempotency_keys_key_length')),
    sa.PrimaryKeyConstraint('namespace', 'key', name=op.f('pk_idempotency_keys'))
    )
    op.create_index('ix_idempotency_keys_expires_at', 'idempotency_keys', ['expires_at'], unique=False, postgresql_where=sa.text('expires_at IS NOT NULL'))
    op.create_table('marketplace',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('singleton', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('maintenance_enabled', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('maintenance_message', sa.Text(), nullable=True),
    sa.Column('maintenance_retry_after_seconds', sa.Integer(), nullable=True),
    sa.Column('maintenance_enabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('maintenance_enabled_by', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("id LIKE 'mkt\\_%'", name=op.f('ck_marketplace_id_prefix')),
    sa.CheckConstraint('(NOT maintenance_enabled AND maintenance_message IS NULL AND maintenance_retry_after_seconds IS NULL AND maintenance_enabled_at IS NULL AND maintenance_enabled_by IS NULL) OR (maintenance_enabled AND maintenance_message IS NOT NULL AND maintenance_retry_after_seconds IS NOT NULL AND maintenance_enabled_at IS NOT NULL)', name=op.f('ck_marketplace_maintenance_details')),
    sa.CheckConstraint('maintenance_message IS NULL OR char_length(maintenance_message) BETWEEN 1 AND 500', name=op.f('ck_marketplace_maintenance_message_length')),
    sa.CheckConstraint('maintenance_retry_after_seconds IS NULL OR maintenance_retry_after_seconds BETWEEN 1 AND 86400', name=op.f('ck_marketplace_maintenance_retry_after_range')),
    sa.CheckConstraint('name IS NULL OR char_length(name) <= 100', name=op.f('ck_marketplace_name_length')),
    sa.CheckConstraint('singleton', name=op.f('ck_marketplace_marketplace_singleton_true')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_marketplace')),
    sa.UniqueConstraint('singleton', name='marketplace_singleton_key')
    )
    op.create_table('reconciliation_runs',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('status', sa.Text(), server_default=sa.text("'RUNNING'"), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('checks', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('findings', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('RUNNING', 'OK', 'FINDINGS', 'ERROR')", name=op.f('ck_reconciliation_runs_status_enum')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_runs'))
    )
    op.create_index('ix_reconciliation_runs_listing', 'reconciliation_runs', [sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_table('users',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('external_user_id', sa.Text(), nullable=False),
    sa.Column('email', sa.Text(), nullable=True),
    sa.Column('type', sa.Text(), server_default=sa.text("'BOTH'"), nullable=False),
    sa.Column('status', sa.Text(), server_default=sa.text("'ACTIVE'"), nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('airtm_user_id', sa.Text(), nullable=True),
    sa.Column('airtm_email', sa.Text(), nullable=True),
    sa.Column('airtm_linked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("id LIKE 'usr\\_%'", name=op.f('ck_users_id_prefix')),
    sa.CheckConstraint("status IN ('ACTIVE', 'SUSPENDED', 'PENDING_VERIFICATION')", name=op.f('ck_users_status_enum')),
    sa.CheckConstraint("type IN ('BUYER', 'SELLER', 'BOTH')", name=op.f('ck_users_type_enum')),
    sa.CheckConstraint('(airtm_user_id IS NULL) = (airtm_linked_at IS NULL)', name=op.f('ck_users_airtm_linked_at_iff_linked')),
    sa.CheckConstraint('char_length(external_user_id) BETWEEN 1 AND 128', name=op.f('ck_users_external_user_id_length')),
    sa.CheckConstraint('email IS NULL OR char_length(email) <= 254', name=op.f('ck_users_email_length')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('airtm_user_id', name=op.f('uq_users_airtm_user_id')),
    sa.UniqueConstraint('external_user_id', name=op.f('uq_users_external_user_id'))
    )
    op.create_index('ix_users_email_lower', 'users', [sa.literal_column('lower(email)')], unique=False)
    op.create_index('ix_users_listing', 'users', [sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_users_status', 'users', ['status'], unique=False)
    op.create_index('ix_users_type', 'users', ['type'], unique=False)
    op.create_table('webhook_endpoints',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('event_types', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), server_default=sa.text("'ACTIVE'"), nullable=False),
    sa.Column('secret_encrypted', sa.Text(), nullable=False),
    sa.Column('secret_hint', sa.Text(), nullable=False),
    sa.Column('previous_secret_encrypted', sa.Text(), nullable=True),
    sa.Column('previous_secret_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(status = 'DELETED') = (deleted_at IS NOT NULL)", name=op.f('ck_webhook_endpoints_deleted_at_iff_deleted')),
    sa.CheckConstraint("id LIKE 'whe\\_%'", name=op.f('ck_webhook_endpoints_id_prefix')),
    sa.CheckConstraint("status IN ('ACTIVE', 'DELETED')", name=op.f('ck_webhook_endpoints_status_enum')),
    sa.CheckConstraint('cardinality(event_types) BETWEEN 1 AND 50', name=op.f('ck_webhook_endpoints_event_types_count')),
    sa.CheckConstraint('char_length(url) <= 2048', name=op.f('ck_webhook_endpoints_url_length')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints'))
    )
    op.create_index('ix_webhook_endpoints_active_listing', 'webhook_endpoints', [sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False, postgresql_where=sa.text("status = 'ACTIVE'"))
    op.create_index('ix_webhook_endpoints_listing', 'webhook_endpoints', [sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_table('webhook_events',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('provider', sa.Text(), nullable=False),
    sa.Column('provider_event_id', sa.Text(), nullable=False),
    sa.Column('event_type', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('target_workflow_id', sa.Text(), nullable=True),
    sa.Column('resource_type', sa.Text(), nullable=True),
    sa.Column('resource_id', sa.Text(), nullable=True),
    sa.Column('body_sha256', sa.Text(), nullable=False),
    sa.Column('summary', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("provider IN ('airtm', 'trustless_work')", name=op.f('ck_webhook_events_provider_enum')),
    sa.CheckConstraint("status IN ('PROCESSED', 'IGNORED')", name=op.f('ck_webhook_events_status_enum')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events')),
    sa.UniqueConstraint('provider', 'provider_event_id', name='uq_webhook_events_provider_event')
    )
    op.create_index('ix_webhook_events_received_at', 'webhook_events', ['received_at'], unique=False)
    op.create_table('balances',
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('currency', sa.Text(), nullable=False),
    sa.Column('available', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('reserved', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("currency = 'USD'", name=op.f('ck_balances_currency_usd')),
    sa.CheckConstraint('available >= 0', name=op.f('ck_balances_available_non_negative')),
    sa.CheckConstraint('reserved >= 0', name=op.f('ck_balances_reserved_non_negative')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_balances_user_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('user_id', 'currency', name=op.f('pk_balances'))
    )
    op.create_table('orders',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('client_order_ref', sa.Text(), nullable=True),
    sa.Column('buyer_id', sa.Text(), nullable=False),
    sa.Column('seller_id', sa.Text(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.Text(), server_default=sa.text("'USD'"), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('released_amount', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('refunded_amount', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('close_reason', sa.Text(), nullable=True),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('last_error', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(status = 'CLOSED') = (close_reason IS NOT NULL)", name=op.f('ck_orders_close_reason_iff_closed')),
    sa.CheckConstraint("(status = 'CLOSED') = (closed_at IS NOT NULL)", name=op.f('ck_orders_closed_at_iff_closed')),
    sa.CheckConstraint("close_reason IN ('CANCELED', 'RELEASED', 'REFUNDED', 'SPLIT')", name=op.f('ck_orders_close_reason_enum')),
    sa.CheckConstraint("currency = 'USD'", name=op.f('ck_orders_currency_usd')),
    sa.CheckConstraint("id LIKE 'ord\\_%'", name=op.f('ck_orders_id_prefix')),
    sa.CheckConstraint("status IN ('ORDER_CREATED', 'FUNDS_RESERVED', 'ESCROW_CREATING', 'ESCROW_FUNDING', 'ESCROW_FUNDED', 'IN_PROGRESS', 'RELEASE_REQUESTED', 'RELEASED', 'REFUND_REQUESTED', 'REFUNDED', 'DISPUTED', 'CLOSED')", name=op.f('ck_orders_status_enum')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_orders_amount_positive')),
    sa.CheckConstraint('buyer_id <> seller_id', name=op.f('ck_orders_buyer_not_seller')),
    sa.CheckConstraint('char_length(title) BETWEEN 1 AND 200', name=op.f('ck_orders_title_length')),
    sa.CheckConstraint('released_amount + refunded_amount <= amount', name=op.f('ck_orders_settled_within_amount')),
    sa.CheckConstraint('released_amount >= 0 AND refunded_amount >= 0', name=op.f('ck_orders_totals_non_negative')),
    sa.ForeignKeyConstraint(['buyer_id'], ['users.id'], name=op.f('fk_orders_buyer_id_users'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['seller_id'], ['users.id'], name=op.f('fk_orders_seller_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('client_order_ref', name=op.f('uq_orders_client_order_ref'))
    )
    op.create_index('ix_orders_buyer', 'orders', ['buyer_id'], unique=False)
    op.create_index('ix_orders_listing', 'orders', [sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_orders_seller', 'orders', ['seller_id'], unique=False)
    op.create_index('ix_orders_status', 'orders', ['status'], unique=False)
    op.create_table('topups',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('provider', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.Text(), server_default=sa.text("'USD'"), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('confirmation_uri', sa.Text(), nullable=True),
    sa.Column('return_url', sa.Text(), nullable=True),
    sa.Column('cancel_url', sa.Text(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('airtm_payin_id', sa.Text(), nullable=True),
    sa.Column('stellar_transaction_hash', sa.Text(), nullable=True),
    sa.Column('stellar_operation_id', sa.Text(), nullable=True),
    sa.Column('source_address', sa.Text(), nullable=True),
    sa.Column('failure_code', sa.Text(), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("currency = 'USD'", name=op.f('ck_topups_currency_usd')),
    sa.CheckConstraint("id LIKE 'topup\\_%'", name=op.f('ck_topups_id_prefix')),
    sa.CheckConstraint("provider <> 'crypto' OR stellar_operation_id IS NOT NULL", name=op.f('ck_topups_crypto_has_operation')),
    sa.CheckConstraint("provider IN ('airtm', 'crypto')", name=op.f('ck_topups_provider_enum')),
    sa.CheckConstraint("status IN ('TOPUP_CREATED', 'TOPUP_AWAITING_USER_CONFIRMATION', 'TOPUP_PROCESSING', 'TOPUP_SUCCEEDED', 'TOPUP_FAILED', 'TOPUP_CANCELED')", name=op.f('ck_topups_status_enum')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_topups_amount_positive')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_topups_user_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_topups')),
    sa.UniqueConstraint('airtm_payin_id', name=op.f('uq_topups_airtm_payin_id')),
    sa.UniqueConstraint('stellar_operation_id', name=op.f('uq_topups_stellar_operation_id'))
    )
    op.create_index('ix_topups_expiry', 'topups', ['status', 'expires_at'], unique=False, postgresql_where=sa.text("status IN ('TOPUP_CREATED', 'TOPUP_AWAITING_USER_CONFIRMATION', 'TOPUP_PROCESSING')"))
    op.create_index('ix_topups_listing', 'topups', [sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_topups_status', 'topups', ['status'], unique=False)
    op.create_index('ix_topups_user_created', 'topups', ['user_id', sa.literal_column('created_at DESC')], unique=False)
    op.create_table('wallets',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=True),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('type', sa.Text(), server_default=sa.text("'INVISIBLE'"), nullable=False),
    sa.Column('provider', sa.Text(), server_default=sa.text("'STELLAR'"), nullable=False),
    sa.Column('network', sa.Text(), nullable=False),
    sa.Column('public_key', sa.Text(), nullable=False),
    sa.Column('secret_encrypted', sa.Text(), nullable=False),
    sa.Column('setup_stage', sa.Text(), server_default=sa.text("'KEYPAIR_CREATED'"), nullable=False),
    sa.Column('status', sa.Text(), server_default=sa.text("'PENDING'"), nullable=False),
    sa.Column('is_primary', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('account_funded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('trustline_ready_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deposit_cursor', sa.Text(), nullable=True),
    sa.Column('last_sync_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(purpose = 'USER') = (user_id IS NOT NULL)", name=op.f('ck_wallets_user_iff_user_purpose')),
    sa.CheckConstraint("(status = 'READY') = (setup_stage = 'TRUSTLINE_READY')", name=op.f('ck_wallets_ready_iff_trustline')),
    sa.CheckConstraint("char_length(public_key) = 56 AND public_key LIKE 'G%'", name=op.f('ck_wallets_public_key_format')),
    sa.CheckConstraint("id LIKE 'wal\\_%'", name=op.f('ck_wallets_id_prefix')),
    sa.CheckConstraint("network IN ('testnet', 'mainnet')", name=op.f('ck_wallets_network_enum')),
    sa.CheckConstraint("provider IN ('STELLAR')", name=op.f('ck_wallets_provider_enum')),
    sa.CheckConstraint("purpose IN ('USER', 'TREASURY', 'RESOLVER', 'BUYER_AGENT', 'SELLER_AGENT')", name=op.f('ck_wallets_purpose_enum')),
    sa.CheckConstraint("setup_stage IN ('KEYPAIR_CREATED', 'ACCOUNT_FUNDED', 'TRUSTLINE_READY')", name=op.f('ck_wallets_setup_stage_enum')),
    sa.CheckConstraint("status IN ('PENDING', 'READY')", name=op.f('ck_wallets_status_enum')),
    sa.CheckConstraint("type IN ('INVISIBLE')", name=op.f('ck_wallets_type_enum')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_wallets_user_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wallets')),
    sa.UniqueConstraint('public_key', name=op.f('uq_wallets_public_key'))
    )
    op.create_index('ix_wallets_status', 'wallets', ['status'], unique=False)
    op.create_index('ux_wallets_platform_purpose', 'wallets', ['purpose'], unique=True, postgresql_where=sa.text('user_id IS NULL AND is_active'))
    op.create_index('ux_wallets_user_primary', 'wallets', ['user_id'], unique=True, postgresql_where=sa.text('is_primary AND is_active'))
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('endpoint_id', sa.Text(), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.Column('event_type', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), server_default=sa.text("'PENDING'"), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_response_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('succeeded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("id LIKE 'whd\\_%'", name=op.f('ck_webhook_deliveries_id_prefix')),
    sa.CheckConstraint("status IN ('PENDING', 'SUCCEEDED', 'FAILED')", name=op.f('ck_webhook_deliveries_status_enum')),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries'))
    )
    op.create_index('ix_webhook_deliveries_endpoint', 'webhook_deliveries', ['endpoint_id', sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_webhook_deliveries_event', 'webhook_deliveries', ['event_id'], unique=False)
    op.create_table('withdrawals',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.Text(), server_default=sa.text("'USD'"), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=True),
    sa.Column('destination_type', sa.Text(), nullable=False),
    sa.Column('destination_ref', sa.Text(), nullable=False),
    sa.Column('memo', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('committed', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('airtm_payout_id', sa.Text(), nullable=True),
    sa.Column('stellar_transaction_hash', sa.Text(), nullable=True),
    sa.Column('failure_code', sa.Text(), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('committed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("currency = 'USD'", name=op.f('ck_withdrawals_currency_usd')),
    sa.CheckConstraint("destination_type IN ('crypto', 'bank', 'airtm_balance')", name=op.f('ck_withdrawals_destination_type_enum')),
    sa.CheckConstraint("id LIKE 'wd\\_%'", name=op.f('ck_withdrawals_id_prefix')),
    sa.CheckConstraint("status IN ('WITHDRAWAL_CREATED', 'WITHDRAWAL_COMMITTED', 'WITHDRAWAL_PENDING', 'WITHDRAWAL_PENDING_USER_ACTION', 'WITHDRAWAL_COMPLETED', 'WITHDRAWAL_FAILED', 'WITHDRAWAL_CANCELED')", name=op.f('ck_withdrawals_status_enum')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_withdrawals_amount_positive')),
    sa.CheckConstraint('char_length(destination_ref) BETWEEN 1 AND 128', name=op.f('ck_withdrawals_destination_ref_length')),
    sa.CheckConstraint('fee IS NULL OR fee >= 0', name=op.f('ck_withdrawals_fee_non_negative')),
    sa.CheckConstraint('memo IS NULL OR octet_length(memo) <= 28', name=op.f('ck_withdrawals_memo_length')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_withdrawals_user_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_withdrawals')),
    sa.UniqueConstraint('airtm_payout_id', name=op.f('uq_withdrawals_airtm_payout_id')),
    sa.UniqueConstraint('stellar_transaction_hash', name=op.f('uq_withdrawals_stellar_transaction_hash'))
    )
    op.create_index('ix_withdrawals_expiry', 'withdrawals', ['status', 'expires_at'], unique=False, postgresql_where=sa.text("status = 'WITHDRAWAL_CREATED'"))
    op.create_index('ix_withdrawals_listing', 'withdrawals', [sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_withdrawals_status', 'withdrawals', ['status'], unique=False)
    op.create_index('ix_withdrawals_user_created', 'withdrawals', ['user_id', sa.literal_column('created_at DESC')], unique=False)
    op.create_table('disputes',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('order_id', sa.Text(), nullable=False),
    sa.Column('buyer_id', sa.Text(), nullable=False),
    sa.Column('seller_id', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), server_default=sa.text("'OPEN'"), nullable=False),
    sa.Column('opened_by', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('evidence', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
    sa.Column('disputed_amount', sa.BigInteger(), nullable=False),
    sa.Column('assigned_to', sa.Text(), nullable=True),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('assignment_note', sa.Text(), nullable=True),
    sa.Column('resolution_decision', sa.Text(), nullable=True),
    sa.Column('release_amount', sa.BigInteger(), nullable=True),
    sa.Column('refund_amount', sa.BigInteger(), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=True),
    sa.Column('resolved_by', sa.Text(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(status = 'RESOLVED') = (resolved_at IS NOT NULL)", name=op.f('ck_disputes_resolved_at_iff_resolved')),
    sa.CheckConstraint("id LIKE 'dsp\\_%'", name=op.f('ck_disputes_id_prefix')),
    sa.CheckConstraint("opened_by IN ('BUYER', 'SELLER')", name=op.f('ck_disputes_opened_by_enum')),
    sa.CheckConstraint("reason IN ('NOT_DELIVERED', 'QUALITY_ISSUE', 'OTHER')", name=op.f('ck_disputes_reason_enum')),
    sa.CheckConstraint("resolution_decision IN ('FULL_RELEASE', 'FULL_REFUND', 'SPLIT')", name=op.f('ck_disputes_resolution_decision_enum')),
    sa.CheckConstraint("status IN ('OPEN', 'UNDER_REVIEW', 'RESOLVED')", name=op.f('ck_disputes_status_enum')),
    sa.CheckConstraint('(release_amount IS NULL AND refund_amount IS NULL) OR (release_amount >= 0 AND refund_amount >= 0 AND release_amount + refund_amount = disputed_amount)', name=op.f('ck_disputes_decision_sums_to_disputed')),
    sa.CheckConstraint('cardinality(evidence) <= 20', name=op.f('ck_disputes_evidence_count')),
    sa.CheckConstraint('disputed_amount > 0', name=op.f('ck_disputes_disputed_amount_positive')),
    sa.ForeignKeyConstraint(['buyer_id'], ['users.id'], name=op.f('fk_disputes_buyer_id_users'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_disputes_order_id_orders'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['seller_id'], ['users.id'], name=op.f('fk_disputes_seller_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disputes')),
    sa.UniqueConstraint('order_id', name=op.f('uq_disputes_order_id'))
    )
    op.create_index('ix_disputes_assigned_to', 'disputes', ['assigned_to'], unique=False)
    op.create_index('ix_disputes_listing', 'disputes', [sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_disputes_status', 'disputes', ['status'], unique=False)
    op.create_table('escrows',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('order_id', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('released_amount', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('refunded_amount', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('trustless_contract_id', sa.Text(), nullable=True),
    sa.Column('network', sa.Text(), nullable=False),
    sa.Column('deploy_tx_hash', sa.Text(), nullable=True),
    sa.Column('fund_tx_hash', sa.Text(), nullable=True),
    sa.Column('settlement_tx_hash', sa.Text(), nullable=True),
    sa.Column('funded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refunded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('discarded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("id LIKE 'esc\\_%'", name=op.f('ck_escrows_id_prefix')),
    sa.CheckConstraint("network IN ('testnet', 'mainnet')", name=op.f('ck_escrows_network_enum')),
    sa.CheckConstraint("status IN ('CREATING', 'CREATED', 'FUNDING', 'FUNDED', 'RELEASING', 'RELEASED', 'REFUNDING', 'REFUNDED', 'DISPUTED')", name=op.f('ck_escrows_status_enum')),
    sa.CheckConstraint("type IN ('SINGLE_RELEASE', 'MULTI_RELEASE')", name=op.f('ck_escrows_type_enum')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_escrows_amount_positive')),
    sa.CheckConstraint('released_amount + refunded_amount <= amount', name=op.f('ck_escrows_paid_within_amount')),
    sa.CheckConstraint('released_amount >= 0 AND refunded_amount >= 0', name=op.f('ck_escrows_totals_non_negative')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_escrows_order_id_orders'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_escrows')),
    sa.UniqueConstraint('trustless_contract_id', name=op.f('uq_escrows_trustless_contract_id'))
    )
    op.create_index('ux_escrows_live_order', 'escrows', ['order_id'], unique=True, postgresql_where=sa.text('discarded_at IS NULL'))
    op.create_table('milestones',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('order_id', sa.Text(), nullable=False),
    sa.Column('milestone_ref', sa.Text(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.Text(), server_default=sa.text("'OPEN'"), nullable=False),
    sa.Column('completion_note', sa.Text(), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('release_tx_hash', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("id LIKE 'ms\\_%'", name=op.f('ck_milestones_id_prefix')),
    sa.CheckConstraint("milestone_ref ~ '^[A-Za-z0-9_-]{1,64}$' AND milestone_ref NOT LIKE 'ms\\_%'", name=op.f('ck_milestones_milestone_ref_format')),
    sa.CheckConstraint("status IN ('OPEN', 'COMPLETED', 'APPROVED', 'RELEASED', 'CANCELED')", name=op.f('ck_milestones_status_enum')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_milestones_amount_positive')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_milestones_order_id_orders'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_milestones')),
    sa.UniqueConstraint('order_id', 'milestone_ref', name='uq_milestones_order_ref'),
    sa.UniqueConstraint('order_id', 'position', name='uq_milestones_order_position')
    )
    op.create_table('dispute_comments',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('dispute_id', sa.Text(), nullable=False),
    sa.Column('author_type', sa.Text(), nullable=False),
    sa.Column('author_id', sa.Text(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('evidence', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
    sa.Column('visibility', sa.Text(), server_default=sa.text("'PUBLIC'"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("author_type IN ('BUYER', 'SELLER', 'SUPPORT')", name=op.f('ck_dispute_comments_author_type_enum')),
    sa.CheckConstraint("id LIKE 'cmt\\_%'", name=op.f('ck_dispute_comments_id_prefix')),
    sa.CheckConstraint("visibility IN ('PUBLIC', 'INTERNAL')", name=op.f('ck_dispute_comments_visibility_enum')),
    sa.CheckConstraint('cardinality(evidence) <= 20', name=op.f('ck_dispute_comments_evidence_count')),
    sa.CheckConstraint('char_length(message) BETWEEN 1 AND 5000', name=op.f('ck_dispute_comments_message_length')),
    sa.ForeignKeyConstraint(['dispute_id'], ['disputes.id'], name=op.f('fk_dispute_comments_dispute_id_disputes'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispute_comments'))
    )
    op.create_index('ix_dispute_comments_listing', 'dispute_comments', ['dispute_id', sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_table('ledger_entries',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('idempotency_key', sa.Text(), nullable=False),
    sa.Column('exclusive_key', sa.Text(), nullable=True),
    sa.Column('entry_type', sa.Text(), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('currency', sa.Text(), server_default=sa.text("'USD'"), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('delta_available', sa.BigInteger(), nullable=False),
    sa.Column('delta_reserved', sa.BigInteger(), nullable=False),
    sa.Column('available_after', sa.BigInteger(), nullable=False),
    sa.Column('reserved_after', sa.BigInteger(), nullable=False),
    sa.Column('counter_account', sa.Text(), nullable=False),
    sa.Column('source_type', sa.Text(), nullable=False),
    sa.Column('source_id', sa.Text(), nullable=False),
    sa.Column('order_id', sa.Text(), nullable=True),
    sa.Column('escrow_id', sa.Text(), nullable=True),
    sa.Column('workflow_id', sa.Text(), nullable=False),
    sa.Column('request_id', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(entry_type = 'DEPOSIT' AND delta_available = amount AND delta_reserved = 0) OR (entry_type = 'ORDER_RESERVE' AND delta_available = -amount AND delta_reserved = amount) OR (entry_type = 'ORDER_RESERVE_RELEASE' AND delta_available = amount AND delta_reserved = -amount) OR (entry_type = 'ESCROW_FUND' AND delta_available = 0 AND delta_reserved = -amount) OR (entry_type = 'ESCROW_RELEASE' AND delta_available = amount AND delta_reserved = 0) OR (entry_type = 'ESCROW_REFUND' AND delta_available = amount AND delta_reserved = 0) OR (entry_type = 'WITHDRAWAL_HOLD' AND delta_available = -amount AND delta_reserved = amount) OR (entry_type = 'WITHDRAWAL_HOLD_RELEASE' AND delta_available = amount AND delta_reserved = -amount) OR (entry_type = 'WITHDRAWAL_PAYOUT' AND delta_available = 0 AND delta_reserved = -amount)", name=op.f('ck_ledger_entries_entry_type_signs')),
    sa.CheckConstraint("counter_account IN ('external:deposit', 'external:payout', 'self') OR counter_account LIKE 'escrow:esc\\_%'", name=op.f('ck_ledger_entries_counter_account_format')),
    sa.CheckConstraint("currency = 'USD'", name=op.f('ck_ledger_entries_currency_usd')),
    sa.CheckConstraint("entry_type IN ('DEPOSIT', 'ORDER_RESERVE', 'ORDER_RESERVE_RELEASE', 'ESCROW_FUND', 'ESCROW_RELEASE', 'ESCROW_REFUND', 'WITHDRAWAL_HOLD', 'WITHDRAWAL_HOLD_RELEASE', 'WITHDRAWAL_PAYOUT')", name=op.f('ck_ledger_entries_entry_type_enum')),
    sa.CheckConstraint("source_type IN ('topup', 'order', 'milestone', 'dispute', 'withdrawal')", name=op.f('ck_ledger_entries_source_type_enum')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_ledger_entries_amount_positive')),
    sa.CheckConstraint('available_after >= 0 AND reserved_after >= 0', name=op.f('ck_ledger_entries_after_non_negative')),
    sa.ForeignKeyConstraint(['escrow_id'], ['escrows.id'], name=op.f('fk_ledger_entries_escrow_id_escrows'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_ledger_entries_order_id_orders'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_ledger_entries_user_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries')),
    sa.UniqueConstraint('exclusive_key', name=op.f('uq_ledger_entries_exclusive_key')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ledger_entries_idempotency_key'))
    )
    op.create_index('ix_ledger_entries_entry_type', 'ledger_entries', ['entry_type'], unique=False)
    op.create_index('ix_ledger_entries_escrow', 'ledger_entries', ['escrow_id'], unique=False)
    op.create_index('ix_ledger_entries_source', 'ledger_entries', ['source_type', 'source_id'], unique=False)
    op.create_index('ix_ledger_entries_user', 'ledger_entries', ['user_id', 'id'], unique=False)

    for statement in APPEND_ONLY_GUARDS:
        op.execute(statement)

def downgrade() -> None:
    for statement in DROP_GUARDS:
        op.execute(statement)
    op.drop_index('ix_ledger_entries_user', table_name='ledger_entries')
    op.drop_index('ix_ledger_entries_source', table_name='ledger_entries')
    op.drop_index('ix_ledger_entries_escrow', table_name='ledger_entries')
    op.drop_index('ix_ledger_entries_entry_type', table_name='ledger_entries')
    op.drop_table('ledger_entries')
    op.drop_index('ix_dispute_comments_listing', table_name='dispute_comments')
    op.drop_table('dispute_comments')
    op.drop_table('milestones')
    op.drop_index('ux_escrows_live_order', table_name='escrows', postgresql_where=sa.text('discarded_at IS NULL'))
    op.drop_table('escrows')
    op.drop_index('ix_disputes_status', table_name='disputes')
    op.drop_index('ix_disputes_listing', table_name='disputes')
    op.drop_index('ix_disputes_assigned_to', table_name='disputes')
    op.drop_table('disputes')
    op.drop_index('ix_withdrawals_user_created', table_name='withdrawals')
    op.drop_index('ix_withdrawals_status', table_name='withdrawals')
    op.drop_index('ix_withdrawals_listing', table_name='withdrawals')
    op.drop_index('ix_withdrawals_expiry', table_name='withdrawals', postgresql_where=sa.text("status = 'WITHDRAWAL_CREATED'"))
    op.drop_table('withdrawals')
    op.drop_index('ix_webhook_deliveries_event', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_endpoint', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_index('ux_wallets_user_primary', table_name='wallets', postgresql_where=sa.text('is_primary AND is_active'))
    op.drop_index('ux_wallets_platform_purpose', table_name='wallets', postgresql_where=sa.text('user_id IS NULL AND is_active'))
    op.drop_index('ix_wallets_status', table_name='wallets')
    op.drop_table('wallets')
    op.drop_index('ix_topups_user_created', table_name='topups')
    op.drop_index('ix_topups_status', table_name='topups')
    op.drop_index('ix_topups_listing', table_name='topups')
    op.drop_index('ix_topups_expiry', table_name='topups', postgresql_where=sa.text("status IN ('TOPUP_CREATED', 'TOPUP_AWAITING_USER_CONFIRMATION', 'TOPUP_PROCESSING')"))
    op.drop_table('topups')
    op.drop_index('ix_orders_status', table_name='orders')
    op.drop_index('ix_orders_seller', table_name='orders')
    op.drop_index('ix_orders_listing', table_name='orders')
    op.drop_index('ix_orders_buyer', table_name='orders')
    op.drop_table('orders')
    op.drop_table('balances')
    op.drop_index('ix_webhook_events_received_at', table_name='webhook_events')
    op.drop_table('webhook_events')
    op.drop_index('ix_webhook_endpoints_listing', table_name='webhook_endpoints')
    op.drop_index('ix_webhook_endpoints_active_listing', table_name='webhook_endpoints', postgresql_where=sa.text("status = 'ACTIVE'"))
    op.drop_table('webhook_endpoints')
    op.drop_index('ix_users_type', table_name='users')
    op.drop_index('ix_users_status', table_name='users')
    op.drop_index('ix_users_listing', table_name='users')
    op.drop_index('ix_users_email_lower', table_name='users')
    op.drop_table('users')
    op.drop_index('ix_reconciliation_runs_listing', table_name='reconciliation_runs')
    op.drop_table('reconciliation_runs')
    op.drop_table('marketplace')
    op.drop_index('ix_idempotency_keys_expires_at', table_name='idempotency_keys', postgresql_where=sa.text('expires_at IS NOT NULL'))
    op.drop_table('idempotency_keys')
    op.drop_index('ix_events_user_ids', table_name='events', postgresql_using='gin')
    op.drop_index('ix_events_unsequenced', table_name='events', postgresql_where=sa.text('seq IS NULL'))
    op.drop_index('ix_events_unrelayed', table_name='events', postgresql_where=sa.text('relayed_at IS NULL'))
    op.drop_index('ix_events_type_seq', table_name='events')
    op.drop_index('ix_events_resource', table_name='events')
    op.drop_index('ix_events_occurred_at', table_name='events')
    op.drop_table('events')
    op.drop_index('ux_chain_transactions_live', table_name='chain_transactions', postgresql_where=sa.text("status IN ('SIGNED', 'SUBMITTED')"))
    op.drop_index('ux_chain_transactions_confirmed', table_name='chain_transactions', postgresql_where=sa.text("status = 'CONFIRMED'"))
    op.drop_index('ix_chain_transactions_resource', table_name='chain_transactions')
    op.drop_table('chain_transactions')
    op.drop_index('ix_audit_logs_user', table_name='audit_logs')
    op.drop_index('ix_audit_logs_resource', table_name='audit_logs')
    op.drop_index('ix_audit_logs_request', table_name='audit_logs')
    op.drop_index('ix_audit_logs_listing', table_name='audit_logs')
    op.drop_index('ix_audit_logs_action', table_name='audit_logs')
    op.drop_table('audit_logs')
    op.drop_index('ix_api_keys_lookup_prefix', table_name='api_keys')
    op.drop_index('ix_api_keys_listing', table_name='api_keys')
    op.drop_table('api_keys')
