"""Crypto withdrawals (api.md §9): a USDC payment from the user's invisible wallet, held at
creation, debited once on confirmation, returned on cancel or expiry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from stellar_sdk import Keypair

from tests.api.orders_support import funded_user
from tests.api.test_envelope import assert_error
from tests.api.test_users import balance_of
from tests.api.withdrawals_support import (
    act,
    all_balanced,
    control,
    entries,
    event_types,
    external_account,
    get,
    kill_crypto_worker,
    usdc_at,
    withdraw,
)
from tests.support import Stack, assert_eventually


async def test_a_withdrawal_lands_at_the_destination_and_debits_the_balance_once(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await funded_user(client, stack, full_key, "50.00")
    destination = await external_account(stack)
    wd = await withdraw(
        client,
        full_key,
        user_id=user["id"],
        amount="20.00",
        destination_type="crypto",
        destination_ref=destination,
        memo="acct-7731",
        description="Payout January",
        metadata={"batch": "7"},
    )
    assert wd["id"].startswith("wd_") and wd["status"] == "WITHDRAWAL_COMPLETED", wd
    assert wd["committed"] is True and wd["expires_at"] is None and wd["fee"] is None
    assert wd["stellar_transaction_hash"] and wd["completed_at"] and wd["committed_at"]
    assert wd["memo"] == "acct-7731" and wd["metadata"] == {"batch": "7"}
    assert await usdc_at(stack, destination) == Decimal("20")
    balance = await balance_of(client, full_key, user["id"])
    assert (balance["available"], balance["reserved"]) == ("30.00", "0.00")
    assert await entries(stack, wd["id"]) == {"WITHDRAWAL_HOLD": 1, "WITHDRAWAL_PAYOUT": 1}
    assert await event_types(stack, wd["id"]) == [
        "withdrawal.created",
        "balance.reserved",
        "withdrawal.committed",
        "withdrawal.pending",
        "withdrawal.completed",
        "balance.debited",
    ]
    # a completed withdrawal takes no further action; refresh answers it as stored
    error = assert_error(
        await client.post(f"/withdrawals/{wd['id']}/commit", headers=full_key), 409, "WITHDRAWAL_NOT_COMMITTABLE"
    )
    assert error["details"] == {"withdrawal_id": wd["id"], "current_status": "WITHDRAWAL_COMPLETED"}
    error = assert_error(await client.post(f"/withdrawals/{wd['id']}/cancel", headers=full_key), 409, "INVALID_STATE")
    assert error["details"]["allowed_states"] == ["WITHDRAWAL_CREATED"]
    assert (await act(client, full_key, wd["id"], "refresh"))["status"] == "WITHDRAWAL_COMPLETED"
    listed = (await client.get("/withdrawals", params={"user_id": user["id"]}, headers=full_key)).json()
    assert [w["id"] for w in listed["data"]] == [wd["id"]] and listed["pagination"]["has_more"] is False
    by_status = await client.get(
        "/withdrawals", params={"user_id": user["id"], "status": "WITHDRAWAL_CANCELED"}, headers=full_key
    )
    assert by_status.json()["data"] == []
    assert await get(client, full_key, wd["id"]) == {**wd, "updated_at": wd["updated_at"]}
    await all_balanced(stack)


async def test_an_uncommitted_withdrawal_holds_then_commits_later(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await funded_user(client, stack, full_key, "40.00")
    destination = await external_account(stack)
    fields = {"user_id": user["id"], "amount": "15.00", "destination_type": "crypto", "destination_ref": destination}
    wd = await withdraw(client, full_key, commit=False, **fields)
    assert wd["status"] == "WITHDRAWAL_CREATED" and wd["committed"] is False and wd["expires_at"] is not None
    balance = await balance_of(client, full_key, user["id"])
    assert (balance["available"], balance["reserved"]) == ("25.00", "15.00")
    await all_balanced(stack)
    done = await act(client, full_key, wd["id"], "commit")
    assert done["status"] == "WITHDRAWAL_COMPLETED" and done["expires_at"] is None
    assert await usdc_at(stack, destination) == Decimal("15")
    balance = await balance_of(client, full_key, user["id"])
    assert (balance["available"], balance["reserved"]) == ("25.00", "0.00")
    await all_balanced(stack)


async def test_cancel_before_commit_returns_the_hold(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await funded_user(client, stack, full_key, "30.00")
    destination = await external_account(stack)
    wd = await withdraw(
        client,
        full_key,
        user_id=user["id"],
        amount="30.00",
        destination_type="crypto",
        destination_ref=destination,
        commit=False,
    )
    canceled = await act(client, full_key, wd["id"], "cancel", reason="changed my mind")
    assert canceled["status"] == "WITHDRAWAL_CANCELED" and canceled["failure_code"] == "CANCELED"
    assert canceled["failure_reason"] == "changed my mind" and canceled["completed_at"] is not None
    balance = await balance_of(client, full_key, user["id"])
    assert (balance["available"], balance["reserved"]) == ("30.00", "0.00")
    assert await entries(stack, wd["id"]) == {"WITHDRAWAL_HOLD": 1, "WITHDRAWAL_HOLD_RELEASE": 1}
    assert "withdrawal.canceled" in await event_types(stack, wd["id"])
    error = assert_error(
        await client.post(f"/withdrawals/{wd['id']}/commit", headers=full_key), 409, "WITHDRAWAL_NOT_COMMITTABLE"
    )
    assert error["details"]["current_status"] == "WITHDRAWAL_CANCELED"
    assert_error(await client.post(f"/withdrawals/{wd['id']}/cancel", headers=full_key), 409, "INVALID_STATE")
    assert await usdc_at(stack, destination) == 0
    await all_balanced(stack)


async def test_refusals_create_nothing(client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]) -> None:
    user = await funded_user(client, stack, full_key, "20.00")
    other = await funded_user(client, stack, full_key, "20.00")
    destination = await external_account(stack)
    base = {"user_id": user["id"], "amount": "10.00", "destination_type": "crypto", "destination_ref": destination}

    async def refused(status: int, code: str, **changes: object) -> dict[str, Any]:
        response = await client.post("/withdrawals", json={**base, **changes}, headers=full_key)
        return assert_error(response, status, code)

    error = await refused(422, "INSUFFICIENT_FUNDS", amount="25.00")
    assert error["details"] == {"available": "20.00", "requested": "25.00", "currency": "USD"}
    assert (await refused(422, "WITHDRAWAL_DESTINATION_INVALID", destination_ref="GABC"))["details"] == {
        "reason": "invalid_stellar_address"
    }
    own = await refused(422, "WITHDRAWAL_DESTINATION_INVALID", destination_ref=user["wallet"]["public_key"])
    assert own["details"] == {"reason": "own_wallet"}
    missing = await refused(422, "WITHDRAWAL_DESTINATION_INVALID", destination_ref=Keypair.random().public_key)
    assert missing["details"] == {"reason": "account_not_found"}
    # the per-user limit (5/min) is spent on `user`: the remaining refusals are `other`'s
    base["user_id"] = other["id"]
    no_trust = await refused(
        422, "WITHDRAWAL_DESTINATION_INVALID", destination_ref=await external_account(stack, trustline=False)
    )
    assert no_trust["details"] == {"reason": "no_usdc_trustline"}
    assert (await refused(422, "WITHDRAWAL_DESTINATION_INVALID", memo="x" * 29))["details"] == {
        "reason": "memo_not_allowed"
    }
    mode = await refused(
        409, "PROVIDER_NOT_ENABLED", destination_type="bank", destination_ref="ES9121000418450200051332"
    )
    assert mode["details"] == {"payment_provider": "crypto", "required_provider": "airtm"}
    assert (await refused(400, "INVALID_AMOUNT", amount="5.00"))["details"] == {"min": "10.00", "max": "5000.00"}
    assert (await refused(404, "USER_NOT_FOUND", user_id="usr_unknown"))["details"]["field"] == "user_id"
    await refused(400, "VALIDATION_ERROR", destinationRef="x")
    await refused(400, "INVALID_AMOUNT_FORMAT", amount=10)
    listed = (await client.get("/withdrawals", params={"user_id": user["id"]}, headers=full_key)).json()
    assert listed["data"] == []
    for who in (user, other):
        assert (await balance_of(client, full_key, who["id"]))["available"] == "20.00"
    assert_error(await client.get("/withdrawals/wd_unknown", headers=full_key), 404, "WITHDRAWAL_NOT_FOUND")
    assert_error(await client.get("/withdrawals/ord_wrongprefix", headers=full_key), 404, "WITHDRAWAL_NOT_FOUND")
    assert_error(await client.post("/withdrawals/wd_unknown/commit", headers=full_key), 404, "WITHDRAWAL_NOT_FOUND")
    assert_error(await client.get("/withdrawals", params={"status": "DONE"}, headers=full_key), 400, "VALIDATION_ERROR")
    await all_balanced(stack)


async def test_post_withdrawals_is_limited_to_five_per_minute_per_user(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await funded_user(client, stack, full_key, "0")
    body = {"user_id": user["id"], "amount": "10.00", "destination_type": "crypto", "destination_ref": "GABC"}
    for _ in range(5):
        assert (await client.post("/withdrawals", json=body, headers=full_key)).status_code == 422
    error = assert_error(await client.post("/withdrawals", json=body, headers=full_key), 429, "RATE_LIMITED")
    assert error["details"]["scope"] == "user_withdrawals" and error["details"]["limit"] == 5


async def test_a_replayed_create_returns_the_same_withdrawal(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await funded_user(client, stack, full_key, "20.00")
    destination = await external_account(stack)
    body = {"user_id": user["id"], "amount": "10.00", "destination_type": "crypto", "destination_ref": destination}
    headers = {**full_key, "Idempotency-Key": f"wd-{user['id']}"}
    first = await client.post("/withdrawals", json=body, headers=headers)
    again = await client.post("/withdrawals", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert (await balance_of(client, full_key, user["id"]))["available"] == "10.00"
    assert await usdc_at(stack, destination) == Decimal("10")
    await all_balanced(stack)


@pytest.fixture
async def short_ttl(stack: Stack) -> AsyncIterator[str]:
    """An API and a worker on their own task queue whose uncommitted withdrawals expire in 2 s."""
    overrides = {"WITHDRAWAL_COMMIT_TTL_SECONDS": "2", "TEMPORAL_TASK_QUEUE": "offerhub-test-wd-ttl"}
    worker = stack.spawn("worker-wd-ttl", ["worker"], env={**stack.env, **overrides})
    api = stack.spawn_api("api-wd-ttl", overrides)
    try:
        yield api
    finally:
        worker.stop()


async def test_an_uncommitted_withdrawal_expires_and_returns_the_hold(
    short_ttl: str, stack: Stack, full_key: dict[str, str], client: httpx.AsyncClient
) -> None:
    user = await funded_user(client, stack, full_key, "25.00")
    destination = await external_account(stack)
    async with httpx.AsyncClient(base_url=short_ttl, timeout=30) as ttl_client:
        wd = await withdraw(
            ttl_client,
            full_key,
            user_id=user["id"],
            amount="25.00",
            destination_type="crypto",
            destination_ref=destination,
            commit=False,
        )
    assert wd["status"] == "WITHDRAWAL_CREATED"
    assert (await balance_of(client, full_key, user["id"]))["reserved"] == "25.00"

    async def expired() -> bool:
        return bool((await get(client, full_key, wd["id"]))["status"] == "WITHDRAWAL_CANCELED")

    await assert_eventually(expired, timeout=15, message="the withdrawal did not expire")
    final = await get(client, full_key, wd["id"])
    assert final["failure_code"] == "EXPIRED" and final["expires_at"] is None
    balance = await balance_of(client, full_key, user["id"])
    assert (balance["available"], balance["reserved"]) == ("25.00", "0.00")
    assert await entries(stack, wd["id"]) == {"WITHDRAWAL_HOLD": 1, "WITHDRAWAL_HOLD_RELEASE": 1}
    assert_error(
        await client.post(f"/withdrawals/{wd['id']}/commit", headers=full_key), 409, "WITHDRAWAL_NOT_COMMITTABLE"
    )
    await all_balanced(stack)


def slow_horizon(ms: int) -> dict[str, object]:
    return {
        "rules": [
            {
                "id": "slow-submit",
                "target": "horizon",
                "method": "POST",
                "path": "/transactions",
                "action": "latency_only",
                "latency_ms": ms,
            }
        ]
    }


async def test_a_worker_killed_during_the_payment_pays_exactly_once(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await funded_user(client, stack, full_key, "60.00")
    destination = await external_account(stack)
    async with control(stack) as sandbox:
        await sandbox.put("/faults", json=slow_horizon(1500))
        try:
            paying = asyncio.create_task(
                client.post(
                    "/withdrawals",
                    json={
                        "user_id": user["id"],
                        "amount": "60.00",
                        "destination_type": "crypto",
                        "destination_ref": destination,
                    },
                    headers=full_key,
                )
            )
            await asyncio.sleep(0.8)  # the signed payment is on its way to Horizon
            kill_crypto_worker(stack)
            response = await paying
            assert response.status_code in (201, 202), response.text
            wd_id = response.json()["id"]

            async def completed() -> bool:
                return bool((await get(client, full_key, wd_id))["status"] == "WITHDRAWAL_COMPLETED")

            await assert_eventually(completed, timeout=60, message="the payment did not complete after the restart")
        finally:
            await sandbox.delete("/faults")
    assert await usdc_at(stack, destination) == Decimal("60")
    assert await entries(stack, wd_id) == {"WITHDRAWAL_HOLD": 1, "WITHDRAWAL_PAYOUT": 1}
    balance = await balance_of(client, full_key, user["id"])
    assert (balance["available"], balance["reserved"]) == ("0.00", "0.00")
    await all_balanced(stack)
