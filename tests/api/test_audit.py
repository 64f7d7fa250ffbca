"""GET /audit/logs: the trail of an order, refused attempts included, for support keys only."""

from __future__ import annotations

import httpx

from tests.api.orders_support import funded_order
from tests.support import Stack, bearer, create_key


async def test_an_orders_trail_newest_first_with_its_refusal(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    buyer, _, order = await funded_order(client, stack, full_key, "3.00", ["reserve"])
    again = await client.post(f"/orders/{order['id']}/reserve", headers=full_key)
    assert again.status_code == 409

    trail = await client.get(
        "/audit/logs", params={"resource_type": "order", "resource_id": order["id"]}, headers=full_key
    )
    assert trail.status_code == 200, trail.text
    entries = trail.json()["data"]
    assert [e["occurred_at"] for e in entries] == sorted((e["occurred_at"] for e in entries), reverse=True)
    by_action = {e["action"]: e for e in entries}
    assert {"ORDER_CREATED", "FUNDS_RESERVED"} <= set(by_action)
    reserved = by_action["FUNDS_RESERVED"]
    assert (reserved["payload_before"], reserved["payload_after"]) == (
        {"status": "ORDER_CREATED"},
        {"status": "FUNDS_RESERVED"},
    )
    assert reserved["result"] == "SUCCESS" and reserved["id"].startswith("aud_")
    assert reserved["correlation_id"] == order["id"] and reserved["user_id"] == buyer["id"]
    refused = [e for e in entries if e["result"] == "FAILURE"]
    assert refused and refused[0]["action"] == "RESERVE"
    assert refused[0]["error"]["code"] == again.json()["error"]["code"]

    only = await client.get(
        "/audit/logs", params={"resource_id": order["id"], "action": "FUNDS_RESERVED"}, headers=full_key
    )
    assert [e["id"] for e in only.json()["data"]] == [reserved["id"]]
    first = (await client.get("/audit/logs", params={"resource_id": order["id"], "limit": 1}, headers=full_key)).json()
    assert first["pagination"]["has_more"] and first["pagination"]["next_cursor"] == first["data"][0]["id"]
    rest = await client.get(
        "/audit/logs",
        params={"resource_id": order["id"], "cursor": first["pagination"]["next_cursor"], "limit": 100},
        headers=full_key,
    )
    assert [first["data"][0]["id"], *(e["id"] for e in rest.json()["data"])] == [e["id"] for e in entries]
    window = await client.get(
        "/audit/logs",
        params={"resource_id": order["id"], "from": reserved["occurred_at"], "to": reserved["occurred_at"]},
        headers=full_key,
    )
    assert reserved["id"] in [e["id"] for e in window.json()["data"]]


async def test_audit_logs_need_the_support_scope_and_good_filters(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    reader = bearer((await create_key(client, stack.master_key, ["read", "write"]))["key"])
    denied = await client.get("/audit/logs", headers=reader)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "INSUFFICIENT_SCOPE"
    for query in (
        {"resource_type": "planet"},
        {"actor_type": "robot"},
        {"user_id": "ord_x"},
        {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        {"from": "soon"},
        {"limit": "101"},
        {"cursor": "aud_" + "z" * 21},
    ):
        refused = await client.get("/audit/logs", params=query, headers=full_key)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "VALIDATION_ERROR", query
