"""GET /events: the outbox by cursor, as JSON pages and as a live SSE stream."""

from __future__ import annotations

import json
from typing import Any

import httpx

from models.event_catalog import EVENT_TYPES
from tests.api.orders_support import act, funded_order
from tests.support import Stack, assert_eventually, bearer


async def order_events(client: httpx.AsyncClient, headers: dict[str, str], order_id: str, **params: Any) -> list[Any]:
    page = await client.get("/events", params={"resource_id": order_id, **params}, headers=headers)
    assert page.status_code == 200, page.text
    data: list[Any] = page.json()["data"]
    return data


async def test_json_pages_filters_and_cursors(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    buyer, seller, order = await funded_order(client, stack, full_key, "2.00", ["reserve"])

    async def sequenced() -> list[Any]:
        events = await order_events(client, full_key, order["id"])
        return events if len(events) >= 2 else []

    newest_first = await assert_eventually(sequenced, timeout=10, message="order events not served")
    assert [e["type"] for e in newest_first] == ["order.funds_reserved", "order.created"]
    reserved = newest_first[0]
    assert reserved["resource"] == {"type": "order", "id": order["id"]} and reserved["correlation_id"] == order["id"]
    assert set(reserved["user_ids"]) == {buyer["id"], seller["id"]} and reserved["data"]["status"] == "FUNDS_RESERVED"
    assert reserved["created_at"] == reserved["updated_at"] == reserved["occurred_at"]
    oldest_first = await order_events(client, full_key, order["id"], order="asc")
    assert oldest_first == newest_first[::-1]

    first = await client.get("/events", params={"resource_id": order["id"], "limit": 1}, headers=full_key)
    assert first.json()["pagination"] == {"has_more": True, "next_cursor": reserved["id"]}
    older = await order_events(client, full_key, order["id"], cursor=reserved["id"])
    assert [e["id"] for e in older] == [newest_first[1]["id"]]
    later = await order_events(client, full_key, order["id"], cursor=newest_first[1]["id"], order="asc")
    assert [e["id"] for e in later] == [reserved["id"]]

    assert [e["type"] for e in await order_events(client, full_key, order["id"], types="order.created")] == [
        "order.created"
    ]
    assert len(await order_events(client, full_key, order["id"], types="order.*,balance.debited")) == 2
    assert await order_events(client, full_key, order["id"], types="escrow.*") == []
    mine = await client.get("/events", params={"user_id": buyer["id"], "types": "balance.*"}, headers=full_key)
    assert {e["type"] for e in mine.json()["data"]} == {"balance.credited", "balance.reserved"}

    for query in (
        {"types": "order.exploded"},
        {"types": "nothing.*"},
        {"resource_type": "planet"},
        {"user_id": "ord_x"},
        {"cursor": "evt_" + "q" * 21},
        {"order": "sideways"},
        {"limit": "0"},
        {"since": "someday"},
    ):
        refused = await client.get("/events", params=query, headers=full_key)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "VALIDATION_ERROR", query


async def test_every_event_written_so_far_is_in_the_catalog(stack: Stack) -> None:
    import asyncpg

    from tests.api.test_idempotency import pg_dsn

    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        types = {row["type"] for row in await conn.fetch("SELECT DISTINCT type FROM events")}
    finally:
        await conn.close()
    assert types and types <= set(EVENT_TYPES), types - set(EVENT_TYPES)


async def test_a_stream_replays_then_follows_and_a_newer_one_replaces_it(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    buyer, _, order = await funded_order(client, stack, full_key, "1.00", ["reserve"])

    async def created_event() -> list[Any]:
        return await order_events(client, full_key, order["id"], types="order.created")

    [created] = await assert_eventually(created_event, timeout=10)
    token = (await client.post("/auth/token", json={"scopes": ["read"]}, headers=full_key)).json()["token"]
    params = {"resource_id": order["id"], "user_id": buyer["id"], "access_token": token}
    sse = {"Accept": "text/event-stream", "Last-Event-ID": created["id"]}
    async with client.stream("GET", "/events", params=params, headers=sse, timeout=20) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-cache" and stream.headers["x-accel-buffering"] == "no"
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry: 3000")
        replayed = await next_event(lines)
        assert replayed["type"] == "order.funds_reserved"
        await act(client, full_key, order["id"], "cancel", {"reason": "changed my mind"})
        live = [(await next_event(lines))["type"] for _ in range(2)]
        assert live == ["order.canceled", "order.closed"]
        # a second stream for the same credential and user_id ends this one
        async with client.stream("GET", "/events", params=params, headers=sse, timeout=20) as newer:
            assert newer.status_code == 200
            rest = [line async for line in lines]
            assert all(not line.startswith("event: order.") for line in rest)

    refused = await client.get("/events", params={"access_token": full_key["Authorization"][7:]})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "INVALID_API_KEY"
    assert (await client.get("/events", params={"access_token": token})).status_code == 200
    assert (await client.get("/events", headers=bearer(token))).status_code == 200


async def next_event(lines: Any) -> dict[str, Any]:
    """The data of the next non-ping event of an SSE stream."""
    kind = None
    async for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind != "ping":
            data: dict[str, Any] = json.loads(line[6:])
            return data
    raise AssertionError("the stream ended")
