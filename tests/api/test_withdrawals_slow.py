"""A slow `POST /withdrawals` (api.md §9.1): when the Update does not finish within
API_UPDATE_WAIT_SECONDS the answer is `202` with `Location` and the withdrawal as recorded
(or as it is going to be, before even the hold is recorded); the payment finishes by itself,
and the stored 202 replays as the withdrawal now (200 once it is no longer paying out)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.api.orders_support import funded_user
from tests.api.test_users import balance_of
from tests.api.withdrawals_support import all_balanced, entries, external_account, get, usdc_at
from tests.support import Stack, assert_eventually


@pytest.fixture(scope="module")
def hasty_url(stack: Stack) -> Iterator[str]:
    """A crypto-mode API that waits 1 ms for an Update: every accepted create answers 202."""
    url = stack.spawn_api("api-hasty-withdrawals", {"API_UPDATE_WAIT_SECONDS": "0.001"})
    process = stack.processes[-1]
    yield url
    process.stop()
    stack.processes.remove(process)


@pytest.fixture
async def hasty(hasty_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hasty_url, timeout=30) as http:
        yield http


async def test_a_slow_withdrawal_answers_202_and_pays_out_by_itself(
    client: httpx.AsyncClient, hasty: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await funded_user(client, stack, full_key, "30.00")
    destination = await external_account(stack)
    headers = {**full_key, "Idempotency-Key": secrets.token_hex(16)}
    body = {
        "user_id": user["id"],
        "amount": "12.00",
        "destination_type": "crypto",
        "destination_ref": destination,
        "metadata": {"batch": "slow"},
    }
    first = await hasty.post("/withdrawals", json=body, headers=headers)
    assert first.status_code == 202, first.text
    wd: dict[str, Any] = first.json()
    assert wd["id"].startswith("wd_") and first.headers["location"] == f"/api/v1/withdrawals/{wd['id']}"
    assert first.headers["x-idempotency-key"] == headers["Idempotency-Key"]
    assert (wd["user_id"], wd["amount"], wd["destination_ref"], wd["metadata"]) == (
        user["id"],
        "12.00",
        destination,
        {"batch": "slow"},
    )
    assert wd["status"] in ("WITHDRAWAL_CREATED", "WITHDRAWAL_COMMITTED", "WITHDRAWAL_PENDING"), wd

    async def completed() -> dict[str, Any] | None:
        found = await client.get(f"/withdrawals/{wd['id']}", headers=full_key)
        return found.json() if found.status_code == 200 and found.json()["status"] == "WITHDRAWAL_COMPLETED" else None

    done = await assert_eventually(completed, timeout=30, message="the withdrawal did not finish by itself")
    assert done is not None and done["stellar_transaction_hash"]
    replay = await hasty.post("/withdrawals", json=body, headers=headers)
    assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true", replay.text
    assert replay.headers["location"] == first.headers["location"]
    assert replay.json() == await get(client, full_key, wd["id"])
    assert await usdc_at(stack, destination) == Decimal("12")
    balance = await balance_of(client, full_key, user["id"])
    assert (balance["available"], balance["reserved"]) == ("18.00", "0.00")
    assert await entries(stack, wd["id"]) == {"WITHDRAWAL_HOLD": 1, "WITHDRAWAL_PAYOUT": 1}
    await all_balanced(stack)
