"""Disputes decided by support staff, through the API and through a Temporal Signal."""

from __future__ import annotations

import asyncio
import json
import subprocess
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from cli.stack import binary
from tests.api.orders_support import act, contract_balance, funded_order
from tests.api.test_envelope import assert_error
from tests.api.test_idempotency import pg_dsn
from tests.api.test_users import balance_of
from tests.support import Stack, assert_books_balanced, assert_eventually, bearer, create_key


async def disputed_order(
    client: httpx.AsyncClient, stack: Stack, headers: dict[str, str], amount: str = "120.00", **fields: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    buyer, seller, order = await funded_order(
        client, stack, headers, amount, ["reserve", "escrow", "escrow/fund"], **fields
    )
    opened = await client.post(
        f"/orders/{order['id']}/resolution/dispute",
        headers=headers,
        json={
            "opened_by": "BUYER",
            "reason": "QUALITY_ISSUE",
            "description": "does not match the brief",
            "evidence": ["https://files.marketplace.example/e/881.png"],
        },
    )
    assert opened.status_code == 201, opened.text
    dispute = opened.json()
    assert opened.headers["location"] == f"/api/v1/disputes/{dispute['id']}"
    return buyer, seller, order, dispute


async def test_split_through_the_api(client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]) -> None:
    buyer, seller, order, dispute = await disputed_order(client, stack, full_key)
    assert dispute["status"] == "OPEN" and dispute["disputed_amount"] == "120.00"
    frozen = (await client.get(f"/orders/{order['id']}", headers=full_key)).json()
    assert frozen["status"] == "DISPUTED" and frozen["escrow"]["status"] == "DISPUTED"
    assert frozen["dispute"]["id"] == dispute["id"]
    assert_error(
        await client.post(f"/orders/{order['id']}/resolution/release", headers=full_key), 409, "DISPUTE_ALREADY_OPEN"
    )
    writer = bearer((await create_key(client, stack.master_key, ["read", "write"]))["key"])
    assert_error(
        await client.post(f"/disputes/{dispute['id']}/resolve", json={"decision": "FULL_REFUND"}, headers=writer),
        403,
        "INSUFFICIENT_SCOPE",
    )
    assert_error(
        await client.post(f"/disputes/{dispute['id']}/resolve", json={"decision": "FULL_REFUND"}, headers=full_key),
        409,
        "INVALID_STATE",
    )
    comment = await client.post(
        f"/disputes/{dispute['id']}/comments",
        headers=full_key,
        json={"author_type": "BUYER", "author_id": buyer["id"], "message": "see the file"},
    )
    assert comment.status_code == 201 and comment.json()["id"].startswith("cmt_")
    assigned = await client.post(
        f"/disputes/{dispute['id']}/assign", json={"assigned_to": "agent-07", "note": "priority"}, headers=full_key
    )
    assert assigned.status_code == 200 and assigned.json()["status"] == "UNDER_REVIEW"
    bad = await client.post(
        f"/disputes/{dispute['id']}/resolve",
        headers=full_key,
        json={"decision": "SPLIT", "release_amount": "80.00", "refund_amount": "30.00"},
    )
    error = assert_error(bad, 400, "INVALID_AMOUNT")
    assert error["details"] == {
        "release_amount": "80.00",
        "refund_amount": "30.00",
        "sum": "110.00",
        "disputed_amount": "120.00",
    }
    assert_error(
        await client.post(
            f"/disputes/{dispute['id']}/resolve",
            headers=full_key,
            json={"decision": "SPLIT", "release_amount": "80.00"},
        ),
        400,
        "VALIDATION_ERROR",
    )
    resolved = await client.post(
        f"/disputes/{dispute['id']}/resolve",
        headers=full_key,
        json={"decision": "SPLIT", "release_amount": "80.00", "refund_amount": "40.00", "note": "partial delivery"},
    )
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert body["status"] == "RESOLVED" and body["resolution_decision"] == "SPLIT" and body["resolved_by"] == "agent-07"
    closed = (await client.get(f"/orders/{order['id']}", headers=full_key)).json()
    assert closed["status"] == "CLOSED" and closed["close_reason"] == "SPLIT"
    assert closed["released_amount"] == "80.00" and closed["refunded_amount"] == "40.00"
    assert (await balance_of(client, full_key, seller["id"]))["available"] == "80.00"
    assert (await balance_of(client, full_key, buyer["id"]))["available"] == "40.00"
    assert await contract_balance(stack, closed["escrow"]["trustless_contract_id"]) == 0
    again = await client.post(f"/disputes/{dispute['id']}/resolve", json={"decision": "FULL_REFUND"}, headers=full_key)
    assert_error(again, 409, "INVALID_STATE")
    listed = (await client.get(f"/disputes?order_id={order['id']}", headers=full_key)).json()
    assert [d["id"] for d in listed["data"]] == [dispute["id"]]
    await assert_books_balanced(stack)


async def test_full_refund_after_a_paid_milestone(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    buyer, seller, order = await funded_order(
        client,
        stack,
        full_key,
        "100.00",
        ["reserve", "escrow", "escrow/fund"],
        milestones=[
            {"milestone_ref": "a", "title": "A", "amount": "30.00"},
            {"milestone_ref": "b", "title": "B", "amount": "70.00"},
        ],
    )
    await act(client, full_key, order["id"], "milestones/a/complete")
    await act(client, full_key, order["id"], "milestones/a/approve")
    opened = await client.post(
        f"/orders/{order['id']}/resolution/dispute", headers=full_key, json={"opened_by": "SELLER", "reason": "OTHER"}
    )
    dispute = opened.json()
    assert dispute["disputed_amount"] == "70.00"
    assert_error(
        await client.post(f"/orders/{order['id']}/milestones/b/complete", headers=full_key), 409, "INVALID_STATE"
    )
    await client.post(f"/disputes/{dispute['id']}/assign", json={"assigned_to": "agent-1"}, headers=full_key)
    resolved = await client.post(
        f"/disputes/{dispute['id']}/resolve", json={"decision": "FULL_REFUND"}, headers=full_key
    )
    assert resolved.status_code == 200, resolved.text
    closed = (await client.get(f"/orders/{order['id']}", headers=full_key)).json()
    assert closed["close_reason"] == "REFUNDED" and [m["status"] for m in closed["milestones"]] == [
        "RELEASED",
        "CANCELED",
    ]
    assert (await balance_of(client, full_key, seller["id"]))["available"] == "30.00"
    assert (await balance_of(client, full_key, buyer["id"]))["available"] == "70.00"
    await assert_books_balanced(stack)


def temporal_signal(stack: Stack, workflow_id: str, name: str, payload: dict[str, Any]) -> None:
    subprocess.run(
        [
            binary("temporal"),
            "workflow",
            "signal",
            "--address",
            stack.env["TEMPORAL_ADDRESS"],
            "--workflow-id",
            workflow_id,
            "--name",
            name,
            "--input",
            json.dumps(payload),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )


async def test_support_staff_settle_from_the_temporal_cli(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    buyer, seller, order, dispute = await disputed_order(client, stack, full_key, "50.00")
    temporal_signal(stack, dispute["id"], "assign", {"assigned_to": "agent-9", "actor": "ops@example.com"})

    async def under_review() -> bool:
        got = (await client.get(f"/disputes/{dispute['id']}", headers=full_key)).json()
        return bool(got["status"] == "UNDER_REVIEW")

    await assert_eventually(under_review, timeout=10)
    temporal_signal(
        stack,
        dispute["id"],
        "resolve",
        {"decision": "SPLIT", "release_amount": "30.00", "refund_amount": "5.00", "actor": "ops@example.com"},
    )
    await asyncio.sleep(1.5)
    unchanged = (await client.get(f"/disputes/{dispute['id']}", headers=full_key)).json()
    assert unchanged["status"] == "UNDER_REVIEW" and unchanged["resolution_decision"] is None
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        refused = await conn.fetchval(
            "SELECT count(*) FROM audit_logs WHERE resource_id = $1 AND result = 'FAILURE'", dispute["id"]
        )
    finally:
        await conn.close()
    assert refused == 1
    temporal_signal(
        stack,
        dispute["id"],
        "resolve",
        {"decision": "SPLIT", "release_amount": "30.00", "refund_amount": "20.00", "actor": "ops@example.com"},
    )

    async def resolved() -> bool:
        got = (await client.get(f"/disputes/{dispute['id']}", headers=full_key)).json()
        return bool(got["status"] == "RESOLVED")

    await assert_eventually(resolved, timeout=20)
    final = (await client.get(f"/disputes/{dispute['id']}", headers=full_key)).json()
    assert final["resolved_by"] == "ops@example.com"
    # a second decision changes nothing: the workflow has completed and the API refuses it
    assert_error(
        await client.post(f"/disputes/{dispute['id']}/resolve", json={"decision": "FULL_RELEASE"}, headers=full_key),
        409,
        "INVALID_STATE",
    )
    assert (await balance_of(client, full_key, seller["id"]))["available"] == "30.00"
    assert (await balance_of(client, full_key, buyer["id"]))["available"] == "20.00"
    closed = (await client.get(f"/orders/{order['id']}", headers=full_key)).json()
    assert closed["status"] == "CLOSED" and closed["close_reason"] == "SPLIT"
    assert await contract_balance(stack, closed["escrow"]["trustless_contract_id"]) == Decimal(0)
    await assert_books_balanced(stack)


async def test_worker_killed_during_settlement_settles_once(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    from tests.api.test_order_durability import entries, kill_and_restart_worker, slow_tw

    buyer, seller, order, dispute = await disputed_order(client, stack, full_key, "60.00")
    await client.post(f"/disputes/{dispute['id']}/assign", json={"assigned_to": "agent-1"}, headers=full_key)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.sandbox_port}/_sandbox") as control:
        await control.put("/faults", json=slow_tw(1500))
        try:
            settling = asyncio.create_task(
                client.post(
                    f"/disputes/{dispute['id']}/resolve",
                    headers=full_key,
                    json={"decision": "SPLIT", "release_amount": "45.00", "refund_amount": "15.00"},
                )
            )
            await asyncio.sleep(0.6)
            await kill_and_restart_worker(stack)
            response = await settling
            assert response.status_code in (200, 202), response.text
        finally:
            await control.delete("/faults")

    async def closed() -> bool:
        got = (await client.get(f"/orders/{order['id']}", headers=full_key)).json()
        return bool(got["status"] == "CLOSED")

    await assert_eventually(closed, timeout=40, message="the settlement did not finish after the restart")
    assert await entries(stack, order["id"]) == {
        "ORDER_RESERVE": 1,
        "ESCROW_FUND": 1,
        "ESCROW_RELEASE": 1,
        "ESCROW_REFUND": 1,
    }
    assert (await balance_of(client, full_key, seller["id"]))["available"] == "45.00"
    assert (await balance_of(client, full_key, buyer["id"]))["available"] == "15.00"
    await assert_books_balanced(stack)


async def test_full_release(client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]) -> None:
    buyer, seller, order, dispute = await disputed_order(client, stack, full_key, "33.00")
    await client.post(f"/disputes/{dispute['id']}/assign", json={"assigned_to": "agent-2"}, headers=full_key)
    split_only = await client.post(
        f"/disputes/{dispute['id']}/resolve",
        headers=full_key,
        json={"decision": "FULL_RELEASE", "release_amount": "33.00"},
    )
    assert_error(split_only, 400, "VALIDATION_ERROR")
    resolved = await client.post(
        f"/disputes/{dispute['id']}/resolve", json={"decision": "FULL_RELEASE"}, headers=full_key
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["release_amount"] == "33.00" and resolved.json()["refund_amount"] == "0.00"
    closed = (await client.get(f"/orders/{order['id']}", headers=full_key)).json()
    assert closed["close_reason"] == "RELEASED" and closed["escrow"]["status"] == "RELEASED"
    assert (await balance_of(client, full_key, seller["id"]))["available"] == "33.00"
    assert (await balance_of(client, full_key, buyer["id"]))["total"] == "0.00"
    assert await contract_balance(stack, closed["escrow"]["trustless_contract_id"]) == 0
    await assert_books_balanced(stack)
