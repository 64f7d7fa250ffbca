"""User-bound tokens (api.md §4 `POST /auth/token` `user_id`): a browser's token reads its user
and what involves them, nothing else; event streams re-check their credential and end."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from api import credentials
from models.timefmt import utcnow
from tests.api.orders_support import order_in
from tests.api.test_disputes import disputed_order
from tests.api.test_envelope import assert_error
from tests.api.test_events import next_event
from tests.api.test_users import balance_of, faucet
from tests.api.withdrawals_support import external_account, withdraw
from tests.support import Stack, assert_eventually, bearer, create_key, crypto_user, stack_settings

SSE = {"Accept": "text/event-stream"}


async def bound_token(client: httpx.AsyncClient, headers: dict[str, str], user_id: str, **fields: Any) -> str:
    response = await client.post(
        "/auth/token", json={"scopes": ["read"], "user_id": user_id, **fields}, headers=headers
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


@pytest.fixture(scope="module")
def rechecking_api(stack: Stack) -> str:
    """An API process whose event streams re-check their credential every 0.5 s (not 15 s)."""
    return stack.spawn_api("api-recheck", {"SSE_CREDENTIAL_CHECK_SECONDS": "0.5"})


@pytest.fixture
async def rechecking(rechecking_api: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=rechecking_api, timeout=30) as http:
        yield http


async def test_binding_needs_an_existing_user_and_read_only_scopes(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = (await client.post("/users", json={"external_user_id": f"bound-{time.time_ns()}"}, headers=full_key)).json()
    for body in (
        {"user_id": user["id"]},  # the key's scopes (read, write, support) by default
        {"user_id": user["id"], "scopes": ["read", "write"]},
        {"user_id": user["id"], "scopes": ["support"]},
    ):
        error = assert_error(await client.post("/auth/token", json=body, headers=full_key), 400, "VALIDATION_ERROR")
        assert error["details"]["fields"][0]["field"] == "user_id"
    for unknown in ("usr_" + "q" * 21, "ord_" + "q" * 21):
        error = assert_error(
            await client.post("/auth/token", json={"scopes": ["read"], "user_id": unknown}, headers=full_key),
            404,
            "USER_NOT_FOUND",
        )
        assert error["details"] == {"user_id": unknown, "field": "user_id"}

    issued = await client.post("/auth/token", json={"scopes": ["read"], "user_id": user["id"]}, headers=full_key)
    assert issued.status_code == 201 and issued.json()["user_id"] == user["id"]
    unbound = await client.post("/auth/token", json={"scopes": ["read"]}, headers=full_key)
    assert unbound.status_code == 201 and unbound.json()["user_id"] is None

    me = (await client.get("/me", headers=bearer(issued.json()["token"]))).json()["credential"]
    assert me["type"] == "token" and me["user_id"] == user["id"] and me["scopes"] == ["read"]
    assert (await client.get("/me", headers=bearer(unbound.json()["token"]))).json()["credential"]["user_id"] is None
    assert "user_id" not in (await client.get("/me", headers=full_key)).json()["credential"]

    # a key holding only `read` binds with its default scopes
    read_only = await create_key(client, stack.master_key, ["read"])
    by_default = await client.post("/auth/token", json={"user_id": user["id"]}, headers=bearer(read_only["key"]))
    assert by_default.status_code == 201 and by_default.json()["scopes"] == ["read"]

    audit = await client.get("/audit/logs", params={"action": "TOKEN_ISSUED", "user_id": user["id"]}, headers=full_key)
    entries = audit.json()["data"]
    assert len(entries) == 2 and all(e["user_id"] == e["payload_after"]["user_id"] == user["id"] for e in entries), (
        entries
    )


async def test_a_bound_token_reads_its_user_and_what_involves_them_only(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    buyer, seller, order, dispute = await disputed_order(client, stack, full_key, "2.00")
    stranger, _, other_order, other_dispute = await disputed_order(client, stack, full_key, "2.00")
    await faucet(stack, stranger["wallet"]["public_key"], "10.00")

    async def credited() -> bool:
        return bool((await balance_of(client, full_key, stranger["id"]))["available"] == "10.00")

    await assert_eventually(credited, timeout=10, message="deposit not credited")
    other_wd = await withdraw(
        client,
        full_key,
        user_id=stranger["id"],
        amount="10.00",
        destination_type="crypto",
        destination_ref=await external_account(stack),
        commit=False,
    )
    browser = bearer(await bound_token(client, full_key, buyer["id"]))

    async def get(path: str, **params: Any) -> Any:
        response = await client.get(path, params=params, headers=browser)
        assert response.status_code == 200, f"{path}: {response.text}"
        return response.json()

    # the user itself, and its balance, wallet and deposit views
    assert [u["id"] for u in (await get("/users", limit=100))["data"]] == [buyer["id"]]
    assert (await get("/users", external_user_id=stranger["external_user_id"]))["data"] == []
    assert (await get(f"/users/{buyer['id']}"))["id"] == buyer["id"]
    for view in ("balance", "balance/verify", "wallet", "wallet/deposit", "wallet/transactions"):
        await get(f"/users/{buyer['id']}/{view}")
        for user_id in (seller["id"], stranger["id"]):  # a counterparty is another user all the same
            assert_error(await client.get(f"/users/{user_id}/{view}", headers=browser), 404, "USER_NOT_FOUND")
    assert_error(await client.get(f"/users/{seller['id']}", headers=browser), 404, "USER_NOT_FOUND")

    # lists narrowed to the user; an explicit filter for another user is that user's 404
    assert [o["id"] for o in (await get("/orders"))["data"]] == [order["id"]]
    assert [o["id"] for o in (await get("/orders", seller_id=seller["id"]))["data"]] == [order["id"]]
    assert [o["id"] for o in (await get("/orders", user_id=buyer["id"]))["data"]] == [order["id"]]
    assert [d["id"] for d in (await get("/disputes"))["data"]] == [dispute["id"]]
    assert (await get("/disputes", order_id=other_order["id"]))["data"] == []
    topups = (await get("/topups", limit=100))["data"]
    assert topups and {t["user_id"] for t in topups} == {buyer["id"]}
    assert (await get("/withdrawals", limit=100))["data"] == []
    for path in ("/orders", "/topups", "/withdrawals", "/events"):
        error = assert_error(
            await client.get(path, params={"user_id": stranger["id"]}, headers=browser), 404, "USER_NOT_FOUND"
        )
        assert error["details"] == {"user_id": stranger["id"]}
    assert_error(await client.get("/orders", params={"user_id": "ord_x"}, headers=browser), 400, "VALIDATION_ERROR")

    # single reads of what involves the user; anything else is a 404 of that resource
    assert (await get(f"/orders/{order['id']}"))["id"] == order["id"]
    assert (await get(f"/orders/{order['id']}/milestones"))["data"] == []
    assert (await get(f"/disputes/{dispute['id']}"))["id"] == dispute["id"]
    await get(f"/disputes/{dispute['id']}/comments")
    await get(f"/topups/{topups[0]['id']}")
    for path, code in (
        (f"/orders/{other_order['id']}", "ORDER_NOT_FOUND"),
        (f"/orders/{other_order['id']}/milestones", "ORDER_NOT_FOUND"),
        (f"/orders/{other_order['id']}/milestones/ms_{'q' * 21}", "ORDER_NOT_FOUND"),
        (f"/disputes/{other_dispute['id']}", "DISPUTE_NOT_FOUND"),
        (f"/disputes/{other_dispute['id']}/comments", "DISPUTE_NOT_FOUND"),
        (f"/withdrawals/{other_wd['id']}", "WITHDRAWAL_NOT_FOUND"),
    ):
        assert_error(await client.get(path, headers=browser), 404, code)
    stranger_topups = (await client.get("/topups", params={"user_id": stranger["id"]}, headers=full_key)).json()
    stranger_topup = stranger_topups["data"][0]["id"]
    assert_error(await client.get(f"/topups/{stranger_topup}", headers=browser), 404, "TOPUP_NOT_FOUND")

    # events: forced to the user
    events = (await get("/events", limit=100))["data"]
    assert events and all(buyer["id"] in e["user_ids"] for e in events)
    assert (await get("/events", resource_id=other_order["id"]))["data"] == []
    other_events = await client.get("/events", params={"resource_id": other_order["id"]}, headers=full_key)
    foreign = other_events.json()["data"][0]["id"]
    assert_error(await client.get("/events", params={"cursor": foreign}, headers=browser), 400, "VALIDATION_ERROR")

    # everything else readable with `read` is refused; writes need `write` anyway
    for path in ("/config", "/webhook-endpoints", "/audit/logs"):
        assert_error(await client.get(path, headers=browser), 403, "INSUFFICIENT_SCOPE")
    assert_error(
        await client.post(f"/orders/{order['id']}/cancel", json={}, headers=browser), 403, "INSUFFICIENT_SCOPE"
    )
    assert (await client.get("/config", headers=full_key)).status_code == 200


async def test_a_bound_stream_receives_only_its_users_events(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    buyer = await crypto_user(client, full_key)
    seller = await crypto_user(client, full_key)
    stranger = await crypto_user(client, full_key)
    token = await bound_token(client, full_key, buyer["id"])
    async with client.stream("GET", "/events", params={"access_token": token}, headers=SSE, timeout=20) as stream:
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry: 3000")
        other = await order_in(client, full_key, stranger["id"], seller["id"], "1.00", [])
        mine = await order_in(client, full_key, buyer["id"], seller["id"], "1.00", [])
        seen = []
        while True:
            event = await asyncio.wait_for(next_event(lines), timeout=10)
            assert buyer["id"] in event["user_ids"], event
            assert event["resource"]["id"] != other["id"], event
            seen.append(event)
            if event["resource"]["id"] == mine["id"]:
                break
    assert seen[-1]["type"] == "order.created"


async def test_a_stream_ends_with_an_error_once_its_key_is_revoked(
    rechecking: httpx.AsyncClient, stack: Stack, master: dict[str, str]
) -> None:
    key = await create_key(rechecking, stack.master_key, ["read"])
    token = (await rechecking.post("/auth/token", json={}, headers=bearer(key["key"]))).json()["token"]
    async with rechecking.stream("GET", "/events", params={"access_token": token}, headers=SSE) as stream:
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry: 3000")
        assert (await rechecking.delete(f"/auth/api-keys/{key['id']}", headers=master)).status_code == 200
        revoked_at = time.monotonic()
        final = await asyncio.wait_for(rest_of(lines), timeout=10)
    assert time.monotonic() - revoked_at < 5
    assert_ends_with_invalid_key(final)


async def test_a_stream_ends_with_an_error_once_its_token_expires(
    rechecking: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    me = (await rechecking.get("/me", headers=full_key)).json()["credential"]
    # POST /auth/token gives at least 60 s: sign a 2-second token as the instance would
    expires_at = (utcnow() + timedelta(seconds=2)).replace(microsecond=0)
    claims = credentials.TokenClaims(me["id"], ("read",), expires_at)
    token = credentials.sign_token(claims, stack_settings(stack).token_secret)
    async with rechecking.stream("GET", "/events", params={"access_token": token}, headers=SSE) as stream:
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry: 3000")
        final = await asyncio.wait_for(rest_of(lines), timeout=10)
    assert utcnow() < expires_at + timedelta(seconds=3)
    assert_ends_with_invalid_key(final)
    assert_error(await rechecking.get("/events", params={"access_token": token}), 401, "INVALID_API_KEY")


async def rest_of(lines: AsyncIterator[str]) -> list[str]:
    return [line async for line in lines if line]


def assert_ends_with_invalid_key(lines: list[str]) -> None:
    """The stream's last frame is `event: error` carrying the INVALID_API_KEY envelope."""
    frames = [line for line in lines if not line.startswith(":")]
    assert frames[-2] == "event: error", frames
    assert frames[-1].startswith("data: "), frames
    error = json.loads(frames[-1][6:])["error"]
    assert error["code"] == "INVALID_API_KEY" and set(error) == {"code", "message", "details"}
