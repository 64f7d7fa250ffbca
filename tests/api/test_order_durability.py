"""Orders survive a killed worker and slow providers: exactly one debit and one credit."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.api.orders_support import contract_balance, funded_user, order_in
from tests.api.test_idempotency import pg_dsn
from tests.api.test_users import balance_of
from tests.support import Process, Stack, assert_books_balanced, assert_eventually


@pytest.fixture
async def control(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.sandbox_port}/_sandbox", timeout=30) as http:
        yield http
        await http.delete("/faults")


def slow_tw(ms: int) -> dict[str, Any]:
    return {
        "rules": [
            {
                "id": "slow-send",
                "target": "tw",
                "method": "POST",
                "path": "/helper/send-transaction",
                "action": "latency_only",
                "latency_ms": ms,
            }
        ]
    }


async def order_status(client: httpx.AsyncClient, headers: dict[str, str], order_id: str) -> dict[str, Any]:
    data: dict[str, Any] = (await client.get(f"/orders/{order_id}", headers=headers)).json()
    return data


async def entries(stack: Stack, order_id: str) -> dict[str, int]:
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        rows = await conn.fetch(
            "SELECT entry_type, count(*) AS n FROM ledger_entries WHERE order_id = $1 GROUP BY entry_type", order_id
        )
    finally:
        await conn.close()
    return {r["entry_type"]: r["n"] for r in rows}


def main_worker(stack: Stack) -> Process:
    """The session's crypto worker on the main task queue (not the airtm one or another test's)."""
    return next(
        p
        for p in reversed(stack.processes)
        if (p.name == "worker" or p.name.removeprefix("worker-").isdigit()) and p.process.poll() is None
    )


def kill_worker(stack: Stack) -> None:
    worker = main_worker(stack)
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(10)


async def kill_and_restart_worker(stack: Stack) -> None:
    kill_worker(stack)
    stack.spawn(f"worker-{len(stack.processes)}", ["worker"])


async def test_worker_killed_during_funding_and_release(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], control: httpx.AsyncClient
) -> None:
    buyer = await funded_user(client, stack, full_key, "75.00")
    seller = await funded_user(client, stack, full_key, "0")
    order = await order_in(client, full_key, buyer["id"], seller["id"], "75.00", ["reserve", "escrow"])
    await control.put("/faults", json=slow_tw(1500))
    funding = asyncio.create_task(client.post(f"/orders/{order['id']}/escrow/fund", headers=full_key))
    await asyncio.sleep(0.6)  # the funding transaction is in flight at the sandbox
    await kill_and_restart_worker(stack)
    response = await funding
    assert response.status_code in (200, 202), response.text

    async def funded() -> bool:
        return bool((await order_status(client, full_key, order["id"]))["status"] == "IN_PROGRESS")

    await assert_eventually(funded, timeout=30, message="order not funded after the worker restart")
    releasing = asyncio.create_task(client.post(f"/orders/{order['id']}/resolution/release", headers=full_key))
    await asyncio.sleep(0.6)
    await kill_and_restart_worker(stack)
    response = await releasing
    assert response.status_code in (200, 202), response.text

    async def closed() -> bool:
        return bool((await order_status(client, full_key, order["id"]))["status"] == "CLOSED")

    await assert_eventually(closed, timeout=30, message="order not closed after the worker restart")
    assert await entries(stack, order["id"]) == {"ORDER_RESERVE": 1, "ESCROW_FUND": 1, "ESCROW_RELEASE": 1}
    assert (await balance_of(client, full_key, seller["id"]))["available"] == "75.00"
    assert (await balance_of(client, full_key, buyer["id"]))["total"] == "0.00"
    final = await order_status(client, full_key, order["id"])
    assert await contract_balance(stack, final["escrow"]["trustless_contract_id"]) == 0
    await assert_books_balanced(stack)


async def test_a_slow_release_answers_202_and_completes_on_its_own(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], control: httpx.AsyncClient
) -> None:
    impatient = stack.spawn_api("api-impatient", {"API_UPDATE_WAIT_SECONDS": "2"})
    buyer = await funded_user(client, stack, full_key, "30.00")
    seller = await funded_user(client, stack, full_key, "0")
    order = await order_in(client, full_key, buyer["id"], seller["id"], "30.00", ["reserve", "escrow", "escrow/fund"])
    await control.put("/faults", json=slow_tw(5000))  # the scaled-down version of a 40 s provider
    async with httpx.AsyncClient(base_url=impatient, timeout=30) as slow_client:
        response = await slow_client.post(f"/orders/{order['id']}/resolution/release", headers=full_key)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "RELEASE_REQUESTED"
    assert response.headers["location"] == f"/api/v1/orders/{order['id']}"

    async def closed() -> bool:
        return bool((await order_status(client, full_key, order["id"]))["status"] == "CLOSED")

    await assert_eventually(closed, timeout=60, message="the release did not finish by itself")
    assert (await balance_of(client, full_key, seller["id"]))["available"] == "30.00"
    await assert_books_balanced(stack)
