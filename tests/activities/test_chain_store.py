"""The chain store's statements (run on the asyncpg driver, not through SQLAlchemy): what they
write is what the former ORM statements wrote, column by column; an error reaches the worker
as SQLAlchemy raises it, and a refused insert writes no audit entry either."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from activities.chain_store import PostgresChainStore
from models.audit import audit_entry
from models.ids import IdPrefix, new_id
from models.tables import AuditLog
from providers.stellar.submitter import ChainRecord
from tests.support import Stack

# what each row gets for itself (its ID, its wallet, the moment it was written)
OWN_VALUES = {"id", "resource_id", "occurred_at", "created_at", "updated_at"}


@pytest.fixture
async def engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(stack.database_url, pool_size=2)
    yield created
    await created.dispose()


def signed_attempt(cosigners: list[str] | None = None) -> ChainRecord:
    escrow_id = new_id(IdPrefix.ESCROW)
    return ChainRecord(
        operation_key=f"escrow:{escrow_id}:fund:r1",
        attempt=1,
        purpose="ESCROW_FUND",
        resource_type="escrow",
        resource_id=escrow_id,
        via="trustless_work",
        source_account="G" + secrets.token_hex(28).upper()[:55],
        sequence=2**40 + secrets.randbelow(1000),  # past 32 bits, as Stellar's sequence numbers are
        signer=new_id(IdPrefix.WALLET),
        tx_hash=secrets.token_hex(32),
        envelope_xdr="AAAA" + secrets.token_urlsafe(900),
        max_time=datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
        cosigners=cosigners or [],
    )


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(text(sql), params)).mappings()]


async def former_audit_row(engine: AsyncEngine, record: ChainRecord) -> dict[str, Any]:
    """The audit row the former ORM statement wrote for the signer, read in a transaction that
    is then rolled back (audit entries are append-only)."""
    entry = audit_entry(
        action="WALLET_SECRET_USED",
        resource_type="wallet",
        resource_id=record.signer,
        actor=("system", record.operation_key),
        correlation_id=record.resource_id,
        after={"purpose": record.purpose, "tx_hash": record.tx_hash, "operation_key": record.operation_key},
    )
    async with engine.connect() as conn:
        transaction = await conn.begin()
        await conn.execute(insert(AuditLog).values([entry.model_dump()]))
        row = (await conn.execute(text("SELECT * FROM audit_logs WHERE id = :id"), {"id": entry.id})).mappings().one()
        await transaction.rollback()
    return dict(row)


async def test_an_attempt_and_its_secret_use_entries_are_written_as_before(engine: AsyncEngine) -> None:
    store = PostgresChainStore(engine)
    cosigner = new_id(IdPrefix.WALLET)
    record = signed_attempt(cosigners=[cosigner])
    await store.insert(record)

    [chain] = await rows(engine, "SELECT * FROM chain_transactions WHERE operation_key = :k", k=record.operation_key)
    for field in ("attempt", "purpose", "resource_type", "resource_id", "via", "source_account", "sequence", "signer",
                  "tx_hash", "envelope_xdr", "max_time"):  # fmt: skip
        assert chain[field] == getattr(record, field), field
    assert chain["status"] == "SIGNED" and chain["submitted_at"] is None and chain["confirmed_at"] is None
    assert chain["result_codes"] is None and chain["response"] is None and chain["ledger"] is None
    assert chain["created_at"] == chain["updated_at"]

    written = await rows(
        engine,
        "SELECT * FROM audit_logs WHERE action = 'WALLET_SECRET_USED' AND actor_id = :k ORDER BY resource_id",
        k=record.operation_key,
    )
    assert sorted(r["resource_id"] for r in written) == sorted([record.signer, cosigner])
    former = await former_audit_row(engine, record)
    expected = {k: v for k, v in former.items() if k not in OWN_VALUES}
    for row in written:
        assert {k: v for k, v in row.items() if k not in OWN_VALUES} == expected
        assert row["id"].startswith("aud_") and row["occurred_at"] == row["created_at"] == row["updated_at"]
    assert written[0]["id"] != written[1]["id"]


async def test_latest_update_and_dead_attempts(engine: AsyncEngine) -> None:
    store = PostgresChainStore(engine)
    record = signed_attempt()
    assert await store.latest(record.operation_key) is None
    await store.insert(record)
    assert await store.latest(record.operation_key) == record

    record.status = "SUBMITTED"
    await store.update(record)
    [submitted] = await rows(engine, "SELECT * FROM chain_transactions WHERE tx_hash = :h", h=record.tx_hash)
    assert submitted["submitted_at"] is not None and submitted["confirmed_at"] is None

    record.status = "CONFIRMED"
    record.ledger = 2**33
    record.contract_id = "C" + "A" * 55
    record.result_codes = {"transaction": "tx_success"}
    record.response = {"hash": record.tx_hash, "secret": "S" + "B" * 55}
    await store.update(record)
    [confirmed] = await rows(engine, "SELECT * FROM chain_transactions WHERE tx_hash = :h", h=record.tx_hash)
    assert confirmed["submitted_at"] == submitted["submitted_at"]  # the first submission's time stays
    assert confirmed["confirmed_at"] is not None and confirmed["updated_at"] > submitted["updated_at"]
    assert confirmed["ledger"] == 2**33 and confirmed["contract_id"] == record.contract_id
    assert confirmed["result_codes"] == {"transaction": "tx_success"}
    assert confirmed["response"]["hash"] == record.tx_hash and "S" + "B" * 55 not in str(confirmed["response"])

    latest = await store.latest(record.operation_key)
    assert latest is not None and latest.status == "CONFIRMED" and latest.result_codes == record.result_codes
    assert latest.response is not None and latest.response["hash"] == record.tx_hash

    assert await store.dead_attempts(record.operation_key) == 0
    record.status = "DEAD"
    await store.update(record)
    second = signed_attempt()
    second.operation_key, second.attempt = record.operation_key, 2
    await store.insert(second)
    assert await store.dead_attempts(record.operation_key) == 1
    assert (await store.latest(record.operation_key)) == second


async def test_a_refused_insert_is_sqlalchemys_error_and_writes_no_audit_entry(engine: AsyncEngine) -> None:
    store = PostgresChainStore(engine)
    record = signed_attempt()
    await store.insert(record)
    again = ChainRecord(**{**record.__dict__, "signer": new_id(IdPrefix.WALLET)})  # same attempt
    with pytest.raises(IntegrityError):
        await store.insert(again)
    audited = await rows(engine, "SELECT resource_id FROM audit_logs WHERE resource_id = :w", w=again.signer)
    assert audited == []
    async with store.account_lock([record.source_account]):  # the pool is usable after the error
        assert await store.latest(record.operation_key) == record
