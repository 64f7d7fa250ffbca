"""Real resources the fuzzer's generated paths and filters can name, so requests reach past
the 404s into the handlers and workflows: users, a milestone order, a disputed order, an
uncommitted withdrawal, a webhook endpoint (loopback), a spare API key, a token."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.orders_support import funded_user, order_in
from tests.api.test_disputes import disputed_order
from tests.api.withdrawals_support import external_account, withdraw
from tests.fuzz.requests import LOOPBACK_SINK
from tests.support import Stack, bearer, create_key


async def seed_resources(stack: Stack) -> tuple[dict[str, list[str]], dict[str, str]]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
        key = await create_key(client, stack.master_key, ["read", "write", "support"], name="fuzz")
        spare = await create_key(client, stack.master_key, ["read"], name="fuzz-spare")
        headers = bearer(key["key"])
        token = await client.post("/auth/token", headers=headers, json={"scopes": ["read"]})
        assert token.status_code == 201, token.text
        buyer, seller, order, dispute = await disputed_order(client, stack, headers, "30.00")
        rich = await funded_user(client, stack, headers, "50.00")
        milestones = await order_in(
            client,
            headers,
            rich["id"],
            seller["id"],
            "20.00",
            [],
            milestones=[
                {"milestone_ref": "draft", "title": "Draft", "amount": "10.00"},
                {"milestone_ref": "final", "title": "Final", "amount": "10.00"},
            ],
        )
        withdrawal = await withdraw(
            client,
            headers,
            commit=False,
            user_id=rich["id"],
            amount="10.00",
            destination_type="crypto",
            destination_ref=await external_account(stack),
        )
        endpoint = await client.post(
            "/webhook-endpoints", headers=headers, json={"url": LOOPBACK_SINK, "event_types": ["order.*"]}
        )
        assert endpoint.status_code == 201, endpoint.text
        topups = (await client.get("/topups", headers=headers, params={"user_id": rich["id"]})).json()["data"]
    users = [buyer["id"], seller["id"], rich["id"]]
    orders = [order["id"], milestones["id"]]
    milestone_ids = [m["id"] for m in milestones["milestones"]] + [m["milestone_ref"] for m in milestones["milestones"]]
    known: dict[str, Any] = {
        "user_id": users,
        "buyer_id": users,
        "seller_id": users,
        "order_id": orders,
        "resource_id": [*orders, *users, dispute["id"]],
        "milestone": milestone_ids,
        "dispute_id": [dispute["id"]],
        "withdrawal_id": [withdrawal["id"]],
        "topup_id": [t["id"] for t in topups],
        "endpoint_id": [endpoint.json()["id"]],
        "key_id": [spare["id"]],
        "run_id": ["1", "999999"],
    }
    credentials = {"master": stack.master_key, "key": key["key"], "token": token.json()["token"]}
    return known, credentials
