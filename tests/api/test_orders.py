"""Orders through the HTTP API only: reserve, escrow, fund, release / milestones / refund / cancel."""

from __future__ import annotations

from decimal import Decimal

import httpx

from tests.api.orders_support import act, contract_balance, funded_order, funded_user, order_in
from tests.api.test_envelope import assert_error
from tests.api.test_users import balance_of
from tests.support import Stack, assert_books_balanced


async def test_single_release_lifecycle(client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]) -> None:
    buyer = await funded_user(client, stack, full_key, "120.00")
    seller = await funded_user(client, stack, full_key, "0")
    created = await client.post(
        "/orders",
        json={
            "buyer_id": buyer["id"],
            "seller_id": seller["id"],
            "amount": "120.00",
            "title": "Logo design",
            "description": "Two concepts",
            "client_order_ref": f"MKT-{buyer['id']}",
            "metadata": {"category": "design"},
        },
        headers=full_key,
    )
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "ORDER_CREATED" and order["escrow"] is None and order["milestones"] == []
    assert created.headers["location"] == f"/api/v1/orders/{order['id']}"
    order = await act(client, full_key, order["id"], "reserve", {"amount": "120.00"})
    assert order["status"] == "FUNDS_RESERVED"
    assert (await balance_of(client, full_key, buyer["id"]))["reserved"] == "120.00"
    order = await act(client, full_key, order["id"], "escrow")
    assert order["status"] == "ESCROW_FUNDING" and order["escrow"]["status"] == "CREATED"
    contract = order["escrow"]["trustless_contract_id"]
    assert contract.startswith("C") and order["escrow"]["type"] == "SINGLE_RELEASE"
    order = await act(client, full_key, order["id"], "escrow/fund")
    assert order["status"] == "IN_PROGRESS" and order["escrow"]["status"] == "FUNDED"
    assert order["amount_in_escrow"] == "120.00"
    assert (await balance_of(client, full_key, buyer["id"]))["reserved"] == "0.00"
    assert await contract_balance(stack, contract) == Decimal("120")
    order = await act(client, full_key, order["id"], "resolution/release", {"reason": "delivered"})
    assert order["status"] == "CLOSED" and order["close_reason"] == "RELEASED"
    assert order["escrow"]["status"] == "RELEASED" and order["released_amount"] == "120.00"
    assert order["amount_in_escrow"] == "0.00"
    assert (await balance_of(client, full_key, buyer["id"]))["total"] == "0.00"
    assert (await balance_of(client, full_key, seller["id"]))["available"] == "120.00"
    assert await contract_balance(stack, contract) == 0
    again = await client.post(
        "/orders",
        json={
            "buyer_id": buyer["id"],
            "seller_id": seller["id"],
            "amount": "120.00",
            "title": "x",
            "client_order_ref": f"MKT-{buyer['id']}",
        },
        headers=full_key,
    )
    assert again.status_code == 200 and again.json()["id"] == order["id"]
    other = await client.post(
        "/orders",
        json={
            "buyer_id": buyer["id"],
            "seller_id": seller["id"],
            "amount": "99.00",
            "title": "x",
            "client_order_ref": f"MKT-{buyer['id']}",
        },
        headers=full_key,
    )
    assert_error(other, 409, "ORDER_ALREADY_EXISTS")
    await assert_books_balanced(stack)


async def test_two_milestones_release_step_by_step(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    _, seller, order = await funded_order(
        client,
        stack,
        full_key,
        "120.00",
        ["reserve", "escrow", "escrow/fund"],
        milestones=[
            {"milestone_ref": "concepts", "title": "Two concepts", "amount": "60.00"},
            {"milestone_ref": "final", "title": "Final file", "amount": "60.00"},
        ],
    )
    assert order["escrow"]["type"] == "MULTI_RELEASE" and order["status"] == "IN_PROGRESS"
    early = await client.post(f"/orders/{order['id']}/milestones/concepts/approve", headers=full_key)
    assert_error(early, 409, "INVALID_STATE")
    for ref, seller_total in (("concepts", "60.00"), ("final", "120.00")):
        done = await act(client, full_key, order["id"], f"milestones/{ref}/complete", {"note": "uploaded"})
        assert done["status"] == "COMPLETED" and done["completion_note"] == "uploaded"
        paid = await act(client, full_key, order["id"], f"milestones/{ref}/approve")
        assert paid["status"] == "RELEASED" and paid["release_tx_hash"]
        assert (await balance_of(client, full_key, seller["id"]))["available"] == seller_total

    async def closed() -> bool:
        return bool((await client.get(f"/orders/{order['id']}", headers=full_key)).json()["status"] == "CLOSED")

    from tests.support import assert_eventually

    await assert_eventually(closed, timeout=10)
    final = (await client.get(f"/orders/{order['id']}", headers=full_key)).json()
    assert final["close_reason"] == "RELEASED" and final["escrow"]["status"] == "RELEASED"
    assert [m["status"] for m in final["milestones"]] == ["RELEASED", "RELEASED"]
    assert await contract_balance(stack, final["escrow"]["trustless_contract_id"]) == 0
    await assert_books_balanced(stack)


async def test_cancel_before_escrow_returns_the_reservation(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    buyer = await funded_user(client, stack, full_key, "30.00")
    seller = await funded_user(client, stack, full_key, "0")
    order = await order_in(
        client,
        full_key,
        buyer["id"],
        seller["id"],
        "25.00",
        ["reserve"],
        milestones=[{"milestone_ref": "only", "title": "All", "amount": "25.00"}],
    )
    assert (await balance_of(client, full_key, buyer["id"]))["available"] == "5.00"
    canceled = await act(client, full_key, order["id"], "cancel", {"reason": "changed my mind"})
    assert canceled["status"] == "CLOSED" and canceled["close_reason"] == "CANCELED"
    assert canceled["cancel_reason"] == "changed my mind" and canceled["milestones"][0]["status"] == "CANCELED"
    assert (await balance_of(client, full_key, buyer["id"]))["available"] == "30.00"
    assert_error(await client.post(f"/orders/{order['id']}/reserve", headers=full_key), 409, "INVALID_STATE")
    await assert_books_balanced(stack)


async def test_refund_returns_what_is_in_escrow(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    buyer = await funded_user(client, stack, full_key, "40.00")
    seller = await funded_user(client, stack, full_key, "0")
    order = await order_in(client, full_key, buyer["id"], seller["id"], "40.00", ["reserve", "escrow", "escrow/fund"])
    refunded = await act(client, full_key, order["id"], "resolution/refund", {"reason": "not delivered"})
    assert refunded["status"] == "CLOSED" and refunded["close_reason"] == "REFUNDED"
    assert refunded["escrow"]["status"] == "REFUNDED" and refunded["refunded_amount"] == "40.00"
    assert (await balance_of(client, full_key, buyer["id"]))["available"] == "40.00"
    assert await contract_balance(stack, refunded["escrow"]["trustless_contract_id"]) == 0
    await assert_books_balanced(stack)
