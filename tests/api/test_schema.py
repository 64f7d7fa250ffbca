"""The schema's guards: migrations are idempotent, ledger and audit rows are append-only."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

import migrations
from tests.api.test_idempotency import pg_dsn
from tests.support import Stack


async def test_migrations_apply_twice(stack: Stack) -> None:
    await asyncio.to_thread(migrations.upgrade, stack.database_url)


async def test_audit_entries_cannot_change(stack: Stack, client: httpx.AsyncClient, master: dict[str, str]) -> None:
    await client.post("/admin/maintenance/disable", headers=master)  # writes an audit entry
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE audit_logs SET action = 'X'")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM audit_logs")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO users (id, external_user_id) VALUES ('ord_wrongprefix00000000001', 'x')")
    finally:
        await conn.close()
