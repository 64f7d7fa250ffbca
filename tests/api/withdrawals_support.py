"""Helpers for withdrawal tests: destination accounts on the sandbox, withdrawals over HTTP,
their ledger entries, the end-of-test checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset, Keypair, TransactionBuilder

from tests.api.test_idempotency import pg_dsn
from tests.api.test_order_durability import kill_worker
from tests.support import Stack, assert_books_balanced


def control(stack: Stack) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.sandbox_port}/_sandbox", timeout=30)


async def external_account(stack: Stack, *, trustline: bool = True) -> str:
    """A Stellar account outside the product (funded with XLM; with a USDC trustline unless told)."""
    keypair = Keypair.random()
    async with control(stack) as sandbox:
        created = await sandbox.post("/faucet/xlm", json={"address": keypair.public_key, "amount": "100"})
        assert created.status_code == 200, created.text
    if trustline:
        horizon = stack.env["STELLAR_HORIZON_URL"]
        async with httpx.AsyncClient(base_url=horizon, timeout=30) as http:
            account = (await http.get(f"/accounts/{keypair.public_key}")).json()
            tx = (
                TransactionBuilder(
                    SdkAccount(keypair.public_key, int(account["sequence"])),
                    stack.env["STELLAR_NETWORK_PASSPHRASE"],
                    base_fee=100,
                )
                .append_change_trust_op(Asset(stack.env.get("STELLAR_USDC_ASSET_CODE", "USDC"), usdc_issuer(stack)))
                .set_timeout(60)
                .build()
            )
            tx.sign(keypair)
            sent = await http.post("/transactions", data={"tx": tx.to_xdr()})
            assert sent.status_code == 200, sent.text
    return keypair.public_key


def usdc_issuer(stack: Stack) -> str:
    return stack.env["STELLAR_USDC_ISSUER"]


async def usdc_at(stack: Stack, address: str) -> Decimal:
    """The USDC an account holds on the sandbox ledger."""
    async with control(stack) as sandbox:
        account = (await sandbox.get(f"/accounts/{address}")).json()
    for line in account.get("balances", []):
        if line.get("asset_code") == "USDC" and line.get("asset_issuer") == usdc_issuer(stack):
            return Decimal(line["balance"])
    return Decimal(0)


async def withdraw(
    client: httpx.AsyncClient, headers: dict[str, str], expect: int = 201, **fields: Any
) -> dict[str, Any]:
    response = await client.post("/withdrawals", json=fields, headers=headers)
    assert response.status_code == expect, f"{response.status_code} {response.text}"
    data: dict[str, Any] = response.json()
    return data


async def act(
    client: httpx.AsyncClient, headers: dict[str, str], withdrawal_id: str, action: str, expect: int = 200, **body: Any
) -> dict[str, Any]:
    response = await client.post(f"/withdrawals/{withdrawal_id}/{action}", json=body or None, headers=headers)
    assert response.status_code == expect, f"{action}: {response.status_code} {response.text}"
    data: dict[str, Any] = response.json()
    return data


async def get(client: httpx.AsyncClient, headers: dict[str, str], withdrawal_id: str) -> dict[str, Any]:
    data: dict[str, Any] = (await client.get(f"/withdrawals/{withdrawal_id}", headers=headers)).json()
    return data


async def entries(stack: Stack, withdrawal_id: str) -> dict[str, int]:
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        rows = await conn.fetch(
            "SELECT entry_type, count(*) AS n FROM ledger_entries "
            "WHERE source_type = 'withdrawal' AND source_id = $1 GROUP BY entry_type",
            withdrawal_id,
        )
    finally:
        await conn.close()
    return {r["entry_type"]: r["n"] for r in rows}


async def event_types(stack: Stack, withdrawal_id: str) -> list[str]:
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        rows = await conn.fetch(
            "SELECT type FROM events WHERE correlation_id = $1 ORDER BY occurred_at, id", withdrawal_id
        )
    finally:
        await conn.close()
    return [r["type"] for r in rows]


async def all_balanced(stack: Stack) -> None:
    """The ledger invariants (domain.md §3.5) and the sandbox's own (asset conserved, ...)."""
    await assert_books_balanced(stack)
    async with control(stack) as sandbox:
        invariants = (await sandbox.get("/invariants")).json()
    assert invariants["ok"], invariants


def kill_crypto_worker(stack: Stack) -> None:
    """SIGKILL the session's crypto worker (not the airtm one) and start another in its place."""
    kill_worker(stack)
    stack.spawn(f"worker-{len(stack.processes)}", ["worker"])
