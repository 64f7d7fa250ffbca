"""PostgreSQL-backed ChainStore: the `chain_transactions` rows of the ChainSubmitter and the
per-account advisory locks that keep two builders off one sequence number."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from models.audit import audit_entry
from models.redaction import redact
from models.tables import AuditLog, ChainTransaction
from models.timefmt import utcnow
from providers.stellar.submitter import ChainRecord


def _record(row: Any) -> ChainRecord:
    """A ChainRecord from a `chain_transactions` row (ORM object or Core row)."""
    return ChainRecord(
        operation_key=row.operation_key,
        attempt=row.attempt,
        purpose=row.purpose,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        via=row.via,
        source_account=row.source_account,
        sequence=row.sequence,
        signer=row.signer,
        tx_hash=row.tx_hash,
        envelope_xdr=row.envelope_xdr,
        max_time=row.max_time,
        status=row.status,
        result_codes=row.result_codes,
        ledger=row.ledger,
        contract_id=row.contract_id,
        response=row.response,
    )


class PostgresChainStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # one-statement reads, writes and lock calls need no BEGIN/COMMIT round trips around them
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        # waiters queue here first, so a busy account holds one pooled connection, not one per waiter
        self.local_locks: dict[str, asyncio.Lock] = {}

    async def latest(self, operation_key: str) -> ChainRecord | None:
        async with self.autocommit.connect() as conn:
            row = (
                await conn.execute(
                    select(ChainTransaction)
                    .where(col(ChainTransaction.operation_key) == operation_key)
                    .order_by(col(ChainTransaction.attempt).desc())
                    .limit(1)
                )
            ).first()
        return _record(row) if row is not None else None

    async def dead_attempts(self, operation_key: str) -> int:
        async with self.autocommit.connect() as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(ChainTransaction)
                .where(col(ChainTransaction.operation_key) == operation_key, col(ChainTransaction.status) == "DEAD")
            )
        return int(count or 0)

    async def insert(self, record: ChainRecord) -> None:
        """The signed attempt, and an audit entry per wallet whose secret signed it: one
        statement (the audit rows in a data-modifying CTE), so both commit or neither."""
        used = [
            audit_entry(
                action="WALLET_SECRET_USED",
                resource_type="wallet",
                resource_id=wallet_id,
                actor=("system", record.operation_key),
                correlation_id=record.resource_id,
                after={"purpose": record.purpose, "tx_hash": record.tx_hash, "operation_key": record.operation_key},
            ).model_dump()
            for wallet_id in [record.signer, *record.cosigners]
        ]
        now = utcnow()
        attempt = insert(ChainTransaction).values(
            operation_key=record.operation_key,
            attempt=record.attempt,
            purpose=record.purpose,
            resource_type=record.resource_type,
            resource_id=record.resource_id,
            via=record.via,
            source_account=record.source_account,
            sequence=record.sequence,
            signer=record.signer,
            tx_hash=record.tx_hash,
            envelope_xdr=record.envelope_xdr,
            max_time=record.max_time,
            status=record.status,
            created_at=now,
            updated_at=now,
        )
        async with self.autocommit.connect() as conn:
            await conn.execute(attempt.add_cte(insert(AuditLog).values(used).cte("secret_use")))

    async def update(self, record: ChainRecord) -> None:
        values: dict[str, Any] = {
            "status": record.status,
            "result_codes": record.result_codes,
            "ledger": record.ledger,
            "contract_id": record.contract_id,
            "response": redact(record.response),
            "updated_at": utcnow(),
        }
        if record.status != "SIGNED":
            values["submitted_at"] = func.coalesce(col(ChainTransaction.submitted_at), utcnow())
        if record.status == "CONFIRMED":
            values["confirmed_at"] = utcnow()
        async with self.autocommit.connect() as conn:
            await conn.execute(
                update(ChainTransaction)
                .where(
                    col(ChainTransaction.operation_key) == record.operation_key,
                    col(ChainTransaction.attempt) == record.attempt,
                )
                .values(**values)
            )

    @asynccontextmanager
    async def account_lock(self, accounts: list[str]) -> AsyncIterator[None]:
        """Session advisory locks on each source account, taken in address order (across
        processes), behind one in-process lock per account (within this worker)."""
        keys = sorted(set(accounts))
        async with contextlib.AsyncExitStack() as local:
            for account in keys:
                await local.enter_async_context(self.local_locks.setdefault(account, asyncio.Lock()))
            async with self._advisory(keys):
                yield

    @asynccontextmanager
    async def _advisory(self, keys: list[str]) -> AsyncIterator[None]:
        async with self.autocommit.connect() as conn:
            for account in keys:
                await conn.execute(text("SELECT pg_advisory_lock(hashtextextended(:a, 0))"), {"a": account})
            try:
                yield
            finally:
                for account in reversed(keys):
                    await conn.execute(text("SELECT pg_advisory_unlock(hashtextextended(:a, 0))"), {"a": account})
