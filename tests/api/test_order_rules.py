"""The order state machine from the outside: every action in every state, idempotent
repeats, and concurrent reserves against one balance."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from models.errors import HTTP_STATUS, OfferhubError
from models.states import ORDER
from tests.api.orders_support import act, funded_user, order_in
from tests.api.test_users import balance_of
from tests.support import Stack, assert_books_balanced

ACTIONS = {
    "reserve": "reserve",
    "cancel": "cancel",
    "create_escrow": "escrow",
    "fund_escrow": "escrow/fund",
    "release": "resolution/release",
    "refund": "resolution/refund",
}
STATES = {  # the steps that bring a fresh order to each state
    "ORDER_CREATED": [],
    "FUNDS_RESERVED": ["reserve"],
    "ESCROW_FUNDING": ["reserve", "escrow"],
    "IN_PROGRESS": ["reserve", "escrow", "escrow/fund"],
    "CLOSED": ["cancel"],
}


@pytest.mark.parametrize("state", list(STATES))
async def test_every_illegal_action_is_refused_as_the_table_says(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], state: str
) -> None:
    buyer = await funded_user(client, stack, full_key, "10.00")
    seller = await funded_user(client, stack, full_key, "0")
    order = await order_in(client, full_key, buyer["id"], seller["id"], "10.00", STATES[state])
    assert order["status"] == state
    for action, path in ACTIONS.items():
        try:
            ORDER.require(action, state, order["id"])
        except OfferhubError as expected:
            body = {"reason": "test"} if action == "refund" else None
            response = await client.post(f"/orders/{order['id']}/{path}", json=body, headers=full_key)
            assert response.status_code == HTTP_STATUS[expected.code], (action, response.text)
            error = response.json()["error"]
            assert error["code"] == expected.code.value, (action, error)
            assert error["details"]["current_state"] == state
            assert error["details"]["allowed_states"] == ORDER.allowed_states(action)
    unchanged = (await client.get(f"/orders/{order['id']}", headers=full_key)).json()
    assert unchanged["status"] == state
    await assert_books_balanced(stack)


async def test_each_legal_action_succeeds_from_its_state(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    """The table's legal moves (the lifecycle tests cover the rest of the path)."""
    buyer = await funded_user(client, stack, full_key, "40.00")
    seller = await funded_user(client, stack, full_key, "0")
    for state, action, target in (
        ("ORDER_CREATED", "cancel", "CLOSED"),
        ("FUNDS_RESERVED", "cancel", "CLOSED"),
        ("IN_PROGRESS", "refund", "CLOSED"),
    ):
        order = await order_in(client, full_key, buyer["id"], seller["id"], "10.00", STATES[state])
        body = {"reason": "test"} if action == "refund" else None
        done = await act(client, full_key, order["id"], ACTIONS[action], body)
        assert done["status"] == target
    await assert_books_balanced(stack)


async def test_repeating_a_keyed_action_returns_the_same_answer_with_one_effect(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    buyer = await funded_user(client, stack, full_key, "20.00")
    seller = await funded_user(client, stack, full_key, "0")
    key = str(uuid.uuid4())
    body = {"buyer_id": buyer["id"], "seller_id": seller["id"], "amount": "20.00", "title": "Keyed"}
    first = await client.post("/orders", json=body, headers={**full_key, "Idempotency-Key": key})
    second = await client.post("/orders", json=body, headers={**full_key, "Idempotency-Key": key})
    assert first.status_code == second.status_code == 201 and first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    order_id = first.json()["id"]
    for path in ("reserve", "escrow", "escrow/fund", "resolution/release"):
        headers = {**full_key, "Idempotency-Key": str(uuid.uuid4())}
        one = await client.post(f"/orders/{order_id}/{path}", headers=headers)
        two = await client.post(f"/orders/{order_id}/{path}", headers=headers)
        assert one.status_code == two.status_code == 200, (path, one.text, two.text)
        assert two.json() == one.json() and two.headers["idempotent-replayed"] == "true"
    listed = (await client.get(f"/orders?buyer_id={buyer['id']}", headers=full_key)).json()
    assert len(listed["data"]) == 1
    assert (await balance_of(client, full_key, seller["id"]))["available"] == "20.00"
    await assert_books_balanced(stack)


async def test_fifty_concurrent_reserves_against_a_buyer_who_can_afford_ten(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    buyer = await funded_user(client, stack, full_key, "50.00")
    seller = await funded_user(client, stack, full_key, "0")
    orders = await asyncio.gather(
        *[order_in(client, full_key, buyer["id"], seller["id"], "5.00", []) for _ in range(50)]
    )
    responses = await asyncio.gather(*[client.post(f"/orders/{o['id']}/reserve", headers=full_key) for o in orders])
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 10 and statuses.count(422) == 40, statuses
    for response in responses:
        if response.status_code == 422:
            error = response.json()["error"]
            assert error["code"] == "INSUFFICIENT_FUNDS" and error["details"]["requested"] == "5.00"
    balance = await balance_of(client, full_key, buyer["id"])
    assert balance["available"] == "0.00" and balance["reserved"] == "50.00"
    await assert_books_balanced(stack)
