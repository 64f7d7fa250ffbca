"""A worker SIGKILLed in the middle of deposit sweeps: after a restart, every deposit is
credited exactly once."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from tests.api.test_idempotency import pg_dsn
from tests.api.test_order_durability import kill_worker
from tests.api.test_users import balance_of, faucet
from tests.support import Stack, assert_books_balanced, assert_eventually, crypto_user


async def test_deposits_survive_a_killed_worker(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await crypto_user(client, full_key)
    address = user["wallet"]["public_key"]
    await faucet(stack, address, "10.00")
    await faucet(stack, address, "20.00")
    await asyncio.sleep(0.3)  # the monitor is sweeping or crediting now
    kill_worker(stack)
    await faucet(stack, address, "30.00")  # lands while no worker runs
    stack.spawn(f"worker-{len(stack.processes)}", ["worker"])

    async def all_credited() -> bool:
        return bool((await balance_of(client, full_key, user["id"]))["available"] == "60.00")

    await assert_eventually(all_credited, timeout=30, message="deposits not credited after the restart")
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        topups = await conn.fetch("SELECT amount, status FROM topups WHERE user_id = $1 ORDER BY amount", user["id"])
        entries = await conn.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE user_id = $1 AND entry_type = 'DEPOSIT'", user["id"]
        )
    finally:
        await conn.close()
    assert [(t["amount"], t["status"]) for t in topups] == [
        (1000, "TOPUP_SUCCEEDED"),
        (2000, "TOPUP_SUCCEEDED"),
        (3000, "TOPUP_SUCCEEDED"),
    ]
    assert entries == 3
    await asyncio.sleep(1.5)  # further sweeps find nothing new
    assert (await balance_of(client, full_key, user["id"]))["available"] == "60.00"
    await assert_books_balanced(stack)
