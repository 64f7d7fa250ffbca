"""PostgreSQL-backed ChainStore: the `chain_transactions` rows of the ChainSubmitter and the
per-account advisory locks that keep two builders off one sequence number."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from models.audit import audit_entry
from models.redaction import redact
from models.sqlstate import DRIVER_ERRORS, as_sqlalchemy_error
from models.timefmt import utcnow
from providers.stellar.submitter import ChainRecord

T = TypeVar("T")


# every statement here is one statement in autocommit, run on the asyncpg connection under a
# pooled SQLAlchemy one (as the ledger's effect is): SQLAlchemy could not cache the insert's
# multi-row audit CTE and compiled it on every call (~1.9 ms of CPU per chain step), and its
# execution machinery cost about as much again over a step's four statements
_COLUMNS = (
    "operation_key, attempt, purpose, resource_type, resource_id, via, source_account, sequence, signer,"
    " tx_hash, envelope_xdr, max_time, status, result_codes, ledger, contract_id, response"
)
_LATEST_SQL = f"SELECT {_COLUMNS} FROM chain_transactions WHERE operation_key = $1 ORDER BY attempt DESC LIMIT 1"
_DEAD_SQL = "SELECT count(*) FROM chain_transactions WHERE operation_key = $1 AND status = 'DEAD'"
# the signed attempt, and one audit entry per wallet whose secret signed it (arrays, one element
# per entry, so the statement has one shape whatever the count): both commit or neither
_INSERT_SQL = """
    WITH secret_use AS (
        INSERT INTO audit_logs (
            id, occurred_at, action, resource_type, resource_id, user_id, actor_type, actor_id, result,
            payload_before, payload_after, error, request_id, idempotency_key, correlation_id, ip,
            user_agent, created_at, updated_at
        )
        SELECT a.id, a.occurred_at, a.action, a.resource_type, a.resource_id, a.user_id, a.actor_type,
            a.actor_id, a.result, CAST(a.payload_before AS jsonb), CAST(a.payload_after AS jsonb),
            CAST(a.error AS jsonb), a.request_id, a.idempotency_key, a.correlation_id, a.ip, a.user_agent,
            a.created_at, a.updated_at
        FROM unnest(
            CAST($16 AS text[]), CAST($17 AS timestamptz[]), CAST($18 AS text[]), CAST($19 AS text[]),
            CAST($20 AS text[]), CAST($21 AS text[]), CAST($22 AS text[]), CAST($23 AS text[]),
            CAST($24 AS text[]), CAST($25 AS text[]), CAST($26 AS text[]), CAST($27 AS text[]),
            CAST($28 AS text[]), CAST($29 AS text[]), CAST($30 AS text[]), CAST($31 AS text[]),
            CAST($32 AS text[]), CAST($33 AS timestamptz[]), CAST($34 AS timestamptz[])
        ) AS a(
            id, occurred_at, action, resource_type, resource_id, user_id, actor_type, actor_id, result,
            payload_before, payload_after, error, request_id, idempotency_key, correlation_id, ip,
            user_agent, created_at, updated_at
        )
    )
    INSERT INTO chain_transactions (
        operation_key, attempt, purpose, resource_type, resource_id, via, source_account, sequence, signer,
        tx_hash, envelope_xdr, max_time, status, created_at, updated_at
    ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
"""
# the record's fields the insert's $1..$13 take, in order ($14, $15: created_at, updated_at)
_INSERTED_FIELDS = (
    "operation_key", "attempt", "purpose", "resource_type", "resource_id", "via", "source_account", "sequence",
    "signer", "tx_hash", "envelope_xdr", "max_time", "status",
)  # fmt: skip
_AUDIT_COLUMNS = (
    "id", "occurred_at", "action", "resource_type", "resource_id", "user_id", "actor_type", "actor_id", "result",
    "payload_before", "payload_after", "error", "request_id", "idempotency_key", "correlation_id", "ip",
    "user_agent", "created_at", "updated_at",
)  # fmt: skip
# JSON columns go as text PostgreSQL casts; None as JSON null, as the ORM wrote it
_JSON_COLUMNS = {"payload_before", "payload_after", "error"}
# `submitted_at` keeps the first submission's time; `confirmed_at` is set by a confirmation
_UPDATE_SQL = """
    UPDATE chain_transactions
    SET status = $3, result_codes = CAST($4 AS jsonb), ledger = $5, contract_id = $6,
        response = CAST($7 AS jsonb), updated_at = $8,
        submitted_at = CASE WHEN $3 <> 'SIGNED' THEN coalesce(submitted_at, $8) ELSE submitted_at END,
        confirmed_at = CASE WHEN $3 = 'CONFIRMED' THEN $8 ELSE confirmed_at END
    WHERE operation_key = $1 AND attempt = $2
"""
_LOCK_SQL = "SELECT pg_advisory_lock(hashtextextended($1, 0))"
_UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtextextended($1, 0))"


async def _run(statement: Awaitable[T]) -> T:
    """A statement on the driver; its error raised as SQLAlchemy raises it on its own paths, so
    the worker's rules for database errors (outage or refusal) read it alike."""
    try:
        return await statement
    except DRIVER_ERRORS as exc:
        raise as_sqlalchemy_error("chain_transactions", exc) from exc


def _record(row: asyncpg.Record) -> ChainRecord:
    """A ChainRecord from a `chain_transactions` row (its columns are the record's fields; the
    pooled connections decode JSON columns, as SQLAlchemy's dialect sets them up)."""
    return ChainRecord(**dict(row))


def _secret_use(record: ChainRecord) -> list[Any]:
    """The audit entries of the wallets whose secrets signed `record`, as one array per column."""
    entries = [
        audit_entry(
            action="WALLET_SECRET_USED",
            resource_type="wallet",
            resource_id=wallet_id,
            actor=("system", record.operation_key),
            correlation_id=record.resource_id,
            after={"purpose": record.purpose, "tx_hash": record.tx_hash, "operation_key": record.operation_key},
        )
        for wallet_id in [record.signer, *record.cosigners]
    ]
    return [
        [json.dumps(getattr(e, column)) if column in _JSON_COLUMNS else getattr(e, column) for e in entries]
        for column in _AUDIT_COLUMNS
    ]


class PostgresChainStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # one-statement reads, writes and lock calls need no BEGIN/COMMIT round trips around them
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        # waiters queue here first, so a busy account holds one pooled connection, not one per waiter
        self.local_locks: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection's asyncpg connection (run its statements through `_run`)."""
        async with self.autocommit.connect() as conn:
            yield (await conn.get_raw_connection()).driver_connection

    async def latest(self, operation_key: str) -> ChainRecord | None:
        async with self._driver() as driver:
            row = await _run(driver.fetchrow(_LATEST_SQL, operation_key))
        return _record(row) if row is not None else None

    async def dead_attempts(self, operation_key: str) -> int:
        async with self._driver() as driver:
            count = await _run(driver.fetchval(_DEAD_SQL, operation_key))
        return int(count or 0)

    async def insert(self, record: ChainRecord) -> None:
        now = utcnow()
        attempt = (getattr(record, field) for field in _INSERTED_FIELDS)
        await self._execute(_INSERT_SQL, *attempt, now, now, *_secret_use(record))

    async def update(self, record: ChainRecord) -> None:
        await self._execute(
            _UPDATE_SQL,
            record.operation_key,
            record.attempt,
            record.status,
            json.dumps(record.result_codes),
            record.ledger,
            record.contract_id,
            json.dumps(redact(record.response)),
            utcnow(),
        )

    async def _execute(self, statement: str, *arguments: Any) -> None:
        async with self._driver() as driver:
            await _run(driver.execute(statement, *arguments))

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
        async with self._driver() as driver:
            for account in keys:
                await _run(driver.execute(_LOCK_SQL, account))
            try:
                yield
            finally:
                for account in reversed(keys):
                    await _run(driver.execute(_UNLOCK_SQL, account))
