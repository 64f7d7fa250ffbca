"""Helpers for order tests: funded users, orders driven through the API, sandbox reads."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from tests.api.test_users import balance_of, faucet
from tests.support import Stack, assert_eventually, crypto_user


async def funded_user(client: httpx.AsyncClient, stack: Stack, headers: dict[str, str], amount: str) -> dict[str, Any]:
    user = await crypto_user(client, headers)
    if Decimal(amount) > 0:
        await faucet(stack, user["wallet"]["public_key"], amount)

        async def credited() -> bool:
            return bool((await balance_of(client, headers, user["id"]))["available"] == amount)

        await assert_eventually(credited, timeout=10, message="deposit not credited")
    return user


async def act(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    order_id: str,
    action: str,
    body: dict[str, Any] | None = None,
    expect: int = 200,
) -> dict[str, Any]:
    response = await client.post(f"/orders/{order_id}/{action}", json=body, headers=headers)
    assert response.status_code == expect, f"{action}: {response.status_code} {response.text}"
    data: dict[str, Any] = response.json()
    return data


async def contract_balance(stack: Stack, contract_id: str) -> Decimal:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.sandbox_port}/_sandbox") as control:
        account = (await control.get(f"/accounts/{contract_id}")).json()
    return Decimal(account["balances"][0]["balance"])


async def order_in(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    buyer: str,
    seller: str,
    amount: str,
    steps: list[str],
    **fields: Any,
) -> dict[str, Any]:
    created = await client.post(
        "/orders",
        json={"buyer_id": buyer, "seller_id": seller, "amount": amount, "title": "Logo design", **fields},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    order: dict[str, Any] = created.json()
    for step in steps:
        order = await act(client, headers, order["id"], step)
    return order


async def funded_order(
    client: httpx.AsyncClient,
    stack: Stack,
    headers: dict[str, str],
    amount: str,
    steps: list[str],
    **fields: Any,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A buyer holding exactly `amount`, a seller with nothing, and their order taken through `steps`."""
    buyer = await funded_user(client, stack, headers, amount)
    seller = await funded_user(client, stack, headers, "0")
    order = await order_in(client, headers, buyer["id"], seller["id"], amount, steps, **fields)
    return buyer, seller, order
