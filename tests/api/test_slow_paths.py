"""Slow Updates answer 202 with `Location` (api.md §1.3); a stored 202 is replayed as the
resource as it is now: 200 once its operation finished, 202 until then (§1.5)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.api.orders_support import act, funded_order
from tests.api.test_order_durability import slow_tw
from tests.support import Stack, assert_books_balanced, assert_eventually


@pytest.fixture
async def control(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox's fault rules, cleared after the test."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.sandbox_port}/_sandbox", timeout=30) as http:
        yield http
        await http.delete("/faults")


@pytest.fixture(scope="module")
def hasty_url(stack: Stack) -> str:
    """An API that waits 1 ms for an Update: every accepted Update answers 202."""
    return stack.spawn_api("api-hasty", {"API_UPDATE_WAIT_SECONDS": "0.001"})


@pytest.fixture
async def hasty(hasty_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hasty_url, timeout=30) as http:
        yield http


def keyed(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": str(uuid.uuid4())}


def assert_replayed(response: httpx.Response, first: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["idempotent-replayed"] == "true"
    assert response.headers["x-idempotency-key"] == first.headers["x-idempotency-key"]
    assert response.headers["location"] == first.headers["location"]
    body: dict[str, Any] = response.json()
    return body


async def get(client: httpx.AsyncClient, headers: dict[str, str], location: str) -> dict[str, Any]:
    response = await client.get(location.removeprefix("/api/v1"), headers=headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_a_slow_dispute_opening_answers_202_with_the_dispute_to_follow(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], hasty: httpx.AsyncClient
) -> None:
    _, _, order = await funded_order(client, stack, full_key, "20.00", ["reserve", "escrow", "escrow/fund"])
    headers = keyed(full_key)
    body = {"opened_by": "BUYER", "reason": "NOT_DELIVERED"}
    opened = await hasty.post(f"/orders/{order['id']}/resolution/dispute", json=body, headers=headers)
    assert opened.status_code == 202, opened.text
    assert opened.headers["x-idempotency-key"] == headers["Idempotency-Key"]
    location = opened.headers["location"]
    dispute_id = location.removeprefix("/api/v1/disputes/")
    assert dispute_id.startswith("dsp_")
    # the dispute as recorded, or the order while the opening waits for the order's lock
    assert opened.json()["id"] in (dispute_id, order["id"])

    async def recorded() -> dict[str, Any] | None:
        response = await client.get(f"/disputes/{dispute_id}", headers=full_key)
        return response.json() if response.status_code == 200 else None

    dispute = await assert_eventually(recorded, timeout=10, message="the dispute was never opened")
    assert dispute is not None and dispute["status"] == "OPEN" and dispute["order_id"] == order["id"]
    replay = await hasty.post(f"/orders/{order['id']}/resolution/dispute", json=body, headers=headers)
    assert assert_replayed(replay, opened, 200) == await get(client, full_key, location)
    assert (await get(client, full_key, f"/orders/{order['id']}"))["status"] == "DISPUTED"
    comment = await client.post(
        f"/disputes/{dispute_id}/comments", json={"author_type": "SUPPORT", "message": "on it"}, headers=full_key
    )
    assert comment.status_code == 201 and comment.json()["id"].startswith("cmt_"), comment.text
    await assert_books_balanced(stack)


async def test_a_slow_release_is_replayed_as_the_order_now(
    client: httpx.AsyncClient,
    stack: Stack,
    full_key: dict[str, str],
    hasty: httpx.AsyncClient,
    control: httpx.AsyncClient,
) -> None:
    _, _, order = await funded_order(client, stack, full_key, "30.00", ["reserve", "escrow", "escrow/fund"])
    await control.put("/faults", json=slow_tw(1500))
    headers = keyed(full_key)
    path = f"/orders/{order['id']}/resolution/release"
    first = await hasty.post(path, headers=headers)
    assert first.status_code == 202, first.text
    assert first.headers["location"] == f"/api/v1/orders/{order['id']}"
    assert first.headers["x-idempotency-key"] == headers["Idempotency-Key"]

    async def requested() -> bool:
        return bool((await get(client, full_key, f"/orders/{order['id']}"))["status"] == "RELEASE_REQUESTED")

    await assert_eventually(requested, timeout=10)
    in_flight = assert_replayed(await hasty.post(path, headers=headers), first, 202)
    assert in_flight["status"] == "RELEASE_REQUESTED"

    async def closed() -> bool:
        return bool((await get(client, full_key, f"/orders/{order['id']}"))["status"] == "CLOSED")

    await assert_eventually(closed, timeout=60, message="the release did not finish by itself")
    done = assert_replayed(await hasty.post(path, headers=headers), first, 200)
    assert done == await get(client, full_key, f"/orders/{order['id']}")
    assert done["status"] == "CLOSED" and done["released_amount"] == "30.00"
    await assert_books_balanced(stack)


async def test_a_slow_milestone_approval_answers_202_with_the_milestone_location(
    client: httpx.AsyncClient,
    stack: Stack,
    full_key: dict[str, str],
    hasty: httpx.AsyncClient,
    control: httpx.AsyncClient,
) -> None:
    _, _, order = await funded_order(
        client,
        stack,
        full_key,
        "25.00",
        ["reserve", "escrow", "escrow/fund"],
        milestones=[{"milestone_ref": "only", "title": "All", "amount": "25.00"}],
    )
    milestone_id = order["milestones"][0]["id"]
    await act(client, full_key, order["id"], "milestones/only/complete")
    await control.put("/faults", json=slow_tw(1000))
    headers = keyed(full_key)
    path = f"/orders/{order['id']}/milestones/only/approve"
    first = await hasty.post(path, headers=headers)
    assert first.status_code == 202, first.text
    location = f"/api/v1/orders/{order['id']}/milestones/{milestone_id}"
    assert first.headers["location"] == location
    assert first.json()["id"] == milestone_id

    async def released() -> bool:
        return bool((await get(client, full_key, location))["status"] == "RELEASED")

    await assert_eventually(released, timeout=60, message="the approval did not finish by itself")
    done = assert_replayed(await hasty.post(path, headers=headers), first, 200)
    assert done == await get(client, full_key, location)
    await assert_books_balanced(stack)


async def test_a_comment_queued_behind_a_slow_settlement_answers_202_then_what_became_of_it(
    client: httpx.AsyncClient,
    stack: Stack,
    full_key: dict[str, str],
    hasty: httpx.AsyncClient,
    control: httpx.AsyncClient,
) -> None:
    buyer, _, order = await funded_order(client, stack, full_key, "40.00", ["reserve", "escrow", "escrow/fund"])
    opened = await client.post(
        f"/orders/{order['id']}/resolution/dispute", json={"opened_by": "BUYER", "reason": "OTHER"}, headers=full_key
    )
    assert opened.status_code == 201, opened.text
    dispute_id = opened.json()["id"]
    location = f"/api/v1/disputes/{dispute_id}"
    assigned = await client.post(f"/disputes/{dispute_id}/assign", json={"assigned_to": "agent-3"}, headers=full_key)
    assert assigned.status_code == 200, assigned.text
    await control.put("/faults", json=slow_tw(2000))
    resolve_headers = keyed(full_key)
    resolving = await hasty.post(
        f"/disputes/{dispute_id}/resolve", json={"decision": "FULL_REFUND"}, headers=resolve_headers
    )
    assert resolving.status_code == 202, resolving.text
    assert resolving.headers["location"] == location

    async def settling() -> bool:
        return bool((await get(client, full_key, location))["resolution_decision"] == "FULL_REFUND")

    await assert_eventually(settling, timeout=10)
    # the settlement holds the dispute's lock: the comment waits for its turn
    comment_headers = keyed(full_key)
    comment_body = {"author_type": "BUYER", "author_id": buyer["id"], "message": "still waiting"}
    commenting = await hasty.post(f"/disputes/{dispute_id}/comments", json=comment_body, headers=comment_headers)
    assert commenting.status_code == 202, commenting.text
    assert commenting.headers["location"] == location
    assert commenting.headers["x-idempotency-key"] == comment_headers["Idempotency-Key"]
    assert commenting.json()["id"] == dispute_id and commenting.json()["status"] == "UNDER_REVIEW"
    replay = assert_replayed(
        await hasty.post(f"/disputes/{dispute_id}/comments", json=comment_body, headers=comment_headers),
        commenting,
        202,
    )
    assert replay["id"] == dispute_id
    replay = assert_replayed(
        await hasty.post(f"/disputes/{dispute_id}/resolve", json={"decision": "FULL_REFUND"}, headers=resolve_headers),
        resolving,
        202,
    )
    assert replay["status"] == "UNDER_REVIEW" and replay["resolution_decision"] == "FULL_REFUND"

    async def resolved() -> bool:
        return bool((await get(client, full_key, location))["status"] == "RESOLVED")

    await assert_eventually(resolved, timeout=60, message="the settlement did not finish by itself")

    replay = assert_replayed(
        await hasty.post(f"/disputes/{dispute_id}/comments", json=comment_body, headers=comment_headers),
        commenting,
        200,
    )
    comments = (await get(client, full_key, f"{location}/comments"))["data"]
    if replay["id"].startswith("cmt_"):  # recorded after the settlement
        assert comments == [replay]
    else:  # refused: a resolved dispute takes no comment
        assert replay["id"] == dispute_id and replay["status"] == "RESOLVED"
    done = assert_replayed(
        await hasty.post(f"/disputes/{dispute_id}/resolve", json={"decision": "FULL_REFUND"}, headers=resolve_headers),
        resolving,
        200,
    )
    assert done["status"] == "RESOLVED"
    await assert_books_balanced(stack)
