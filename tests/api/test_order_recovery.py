"""The escrow core on bad days: concurrent actions on one order, chain steps that fail for
good and are retried, partial settlements, a worker killed mid-refund. Every scenario ends
with the books balanced, the sandbox's own invariants ok, and the ledger equal to the chain."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from api.payload_codec import data_converter
from tests.api.orders_support import act, contract_balance, funded_order
from tests.api.test_envelope import assert_error
from tests.api.test_idempotency import pg_dsn
from tests.api.test_order_durability import entries, kill_and_restart_worker, order_status, slow_tw
from tests.api.test_users import balance_of
from tests.support import Stack, assert_books_balanced, assert_eventually, stack_settings

THREE_MILESTONES = [
    {"milestone_ref": "a", "title": "A", "amount": "10.00"},
    {"milestone_ref": "b", "title": "B", "amount": "20.00"},
    {"milestone_ref": "c", "title": "C", "amount": "30.00"},
]


async def three_milestone_order(
    client: httpx.AsyncClient, stack: Stack, headers: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A funded 60.00 order of three milestones (10, 20, 30), IN_PROGRESS."""
    return await funded_order(
        client, stack, headers, "60.00", ["reserve", "escrow", "escrow/fund"], milestones=THREE_MILESTONES
    )


@pytest.fixture
async def control(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.sandbox_port}/_sandbox", timeout=30) as http:
        yield http
        await http.delete("/faults")


def trap_send(rule_id: str, *, after: int = 0) -> dict[str, Any]:
    """The next signed Trustless Work transaction (after `after` others) applies and fails."""
    return {
        "rules": [
            {
                "id": rule_id,
                "target": "tw",
                "method": "POST",
                "path": "/helper/send-transaction",
                "action": "fail_transaction",
                "after": after,
                "times": 1,
            }
        ]
    }


async def usdc_on_chain(control: httpx.AsyncClient, address: str) -> Decimal:
    account = (await control.get(f"/accounts/{address}")).json()
    return sum(
        (Decimal(b["balance"]) for b in account.get("balances", []) if b.get("asset_code") == "USDC"), Decimal(0)
    )


async def assert_ledger_is_chain(
    client: httpx.AsyncClient, headers: dict[str, str], control: httpx.AsyncClient, *users: dict[str, Any]
) -> None:
    """What each user holds in the books is what their wallet holds on chain, and the
    sandbox's own invariants (conservation, one application per hash) hold."""
    for user in users:
        balance = await balance_of(client, headers, user["id"])
        assert Decimal(balance["total"]) == await usdc_on_chain(control, user["wallet"]["public_key"]), user["id"]
    invariants = (await control.get("/invariants")).json()
    assert invariants["ok"], invariants


async def chain_attempts(stack: Stack, prefix: str) -> list[tuple[str, int, str]]:
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        rows = await conn.fetch(
            "SELECT operation_key, attempt, status FROM chain_transactions WHERE operation_key LIKE $1 ORDER BY id",
            prefix + "%",
        )
    finally:
        await conn.close()
    return [(r["operation_key"], r["attempt"], r["status"]) for r in rows]


async def test_funding_refused_for_good_is_retried_once_the_fault_is_cleared(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], control: httpx.AsyncClient
) -> None:
    buyer, seller, order = await funded_order(client, stack, full_key, "40.00", ["reserve", "escrow"])
    await control.put("/faults", json=trap_send("fund-traps"))
    refused = await client.post(f"/orders/{order['id']}/escrow/fund", headers=full_key)
    assert_error(refused, 422, "ESCROW_FUNDING_FAILED")
    stuck = await order_status(client, full_key, order["id"])
    assert stuck["status"] == "ESCROW_FUNDING" and stuck["escrow"]["status"] == "CREATED"
    assert stuck["last_error"]["operation"] == "fund_escrow"
    assert (await balance_of(client, full_key, buyer["id"]))["reserved"] == "40.00"

    await control.delete("/faults")
    funded = await act(client, full_key, order["id"], "escrow/fund")
    assert funded["status"] == "IN_PROGRESS" and funded["escrow"]["status"] == "FUNDED"
    assert funded["last_error"] is None
    escrow_id = funded["escrow"]["id"]
    assert await chain_attempts(stack, f"escrow:{escrow_id}:fund") == [
        (f"escrow:{escrow_id}:fund", 1, "FAILED"),
        (f"escrow:{escrow_id}:fund:r2", 1, "CONFIRMED"),
    ]
    assert await entries(stack, order["id"]) == {"ORDER_RESERVE": 1, "ESCROW_FUND": 1}
    assert await contract_balance(stack, funded["escrow"]["trustless_contract_id"]) == 40
    again = await client.post(f"/orders/{order['id']}/escrow/fund", headers=full_key)
    assert_error(again, 409, "ESCROW_ALREADY_FUNDED")
    assert again.json()["error"]["details"]["escrow_id"] == escrow_id
    await assert_ledger_is_chain(client, full_key, control, buyer, seller)
    await assert_books_balanced(stack)


async def test_funding_refused_over_the_fee_cap_is_retried_once_the_provider_is_back(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], control: httpx.AsyncClient
) -> None:
    """Trustless Work builds a transaction whose fee is above STELLAR_MAX_FEE_STROOPS: it is
    never signed (refused for good), and the funding goes through once the fee is normal."""
    buyer, seller, order = await funded_order(client, stack, full_key, "15.00", ["reserve", "escrow"])
    await control.put("/tw/settings", json={"resource_fee_stroops": 50_000_000})
    try:
        refused = await client.post(f"/orders/{order['id']}/escrow/fund", headers=full_key)
    finally:
        await control.put("/tw/settings", json={"resource_fee_stroops": 100_000})  # the sandbox default
    assert_error(refused, 422, "ESCROW_FUNDING_FAILED")
    assert (await order_status(client, full_key, order["id"]))["status"] == "ESCROW_FUNDING"
    funded = await act(client, full_key, order["id"], "escrow/fund")
    assert funded["status"] == "IN_PROGRESS" and funded["last_error"] is None
    assert await entries(stack, order["id"]) == {"ORDER_RESERVE": 1, "ESCROW_FUND": 1}
    await assert_ledger_is_chain(client, full_key, control, buyer, seller)
    await assert_books_balanced(stack)


async def test_release_racing_refund_one_wins_the_other_is_refused(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], control: httpx.AsyncClient
) -> None:
    buyer, seller, order = await funded_order(client, stack, full_key, "25.00", ["reserve", "escrow", "escrow/fund"])
    release, refund = await asyncio.gather(
        client.post(f"/orders/{order['id']}/resolution/release", headers=full_key),
        client.post(f"/orders/{order['id']}/resolution/refund", json={"reason": "late"}, headers=full_key),
    )
    statuses = sorted([release.status_code, refund.status_code])
    assert statuses == [200, 409], (release.text, refund.text)
    loser = release if release.status_code == 409 else refund
    assert loser.json()["error"]["code"] == "INVALID_STATE"
    closed = await order_status(client, full_key, order["id"])
    assert closed["status"] == "CLOSED"
    paid = await entries(stack, order["id"])
    assert paid.get("ESCROW_RELEASE", 0) + paid.get("ESCROW_REFUND", 0) == 1
    winner_is_release = release.status_code == 200
    assert closed["close_reason"] == ("RELEASED" if winner_is_release else "REFUNDED")
    assert await contract_balance(stack, closed["escrow"]["trustless_contract_id"]) == 0
    await assert_ledger_is_chain(client, full_key, control, buyer, seller)
    await assert_books_balanced(stack)


async def test_concurrent_fund_calls_fund_once(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], control: httpx.AsyncClient
) -> None:
    buyer, seller, order = await funded_order(client, stack, full_key, "12.00", ["reserve", "escrow"])
    answers = await asyncio.gather(
        *(client.post(f"/orders/{order['id']}/escrow/fund", headers=full_key) for _ in range(4))
    )
    codes = Counter(a.status_code for a in answers)
    assert codes[200] >= 1 and codes[200] + codes[409] == 4, [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} <= {"ESCROW_ALREADY_FUNDED"}
    assert await entries(stack, order["id"]) == {"ORDER_RESERVE": 1, "ESCROW_FUND": 1}
    await assert_ledger_is_chain(client, full_key, control, buyer, seller)
    await assert_books_balanced(stack)


async def test_concurrent_reserves_reserve_once(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], control: httpx.AsyncClient
) -> None:
    buyer, seller, order = await funded_order(client, stack, full_key, "9.00", [])
    answers = await asyncio.gather(*(client.post(f"/orders/{order['id']}/reserve", headers=full_key) for _ in range(5)))
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409, 409], [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"FUNDS_ALREADY_RESERVED"}
    assert await entries(stack, order["id"]) == {"ORDER_RESERVE": 1}
    assert (await balance_of(client, full_key, buyer["id"]))["reserved"] == "9.00"
    await assert_ledger_is_chain(client, full_key, control, buyer, seller)
    await assert_books_balanced(stack)


async def test_a_milestone_order_is_released_as_a_whole_once_its_milestones_are_complete(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], control: httpx.AsyncClient
) -> None:
    buyer, seller, order = await three_milestone_order(client, stack, full_key)
    # the milestone workflows are listed in the Temporal UI like orders (architecture.md)
    temporal = await Client.connect(stack.env["TEMPORAL_ADDRESS"], data_converter=data_converter(stack_settings(stack)))
    query = f"OfferhubResourceType = 'milestone' AND OfferhubUserIds = '{buyer['id']}'"

    async def listed() -> set[str]:
        return {w.id async for w in temporal.list_workflows(query)}

    assert await assert_eventually(listed, timeout=10) == {m["id"] for m in order["milestones"]}
    await act(client, full_key, order["id"], "milestones/a/complete")
    await act(client, full_key, order["id"], "milestones/b/complete")
    refused = await client.post(f"/orders/{order['id']}/resolution/release", headers=full_key)
    assert_error(refused, 409, "INVALID_STATE")
    assert refused.json()["error"]["details"]["incomplete_milestones"] == ["c"]
    await act(client, full_key, order["id"], "milestones/c/complete")
    released = await act(client, full_key, order["id"], "resolution/release")
    assert released["status"] == "CLOSED" and released["close_reason"] == "RELEASED"
    assert [m["status"] for m in released["milestones"]] == ["RELEASED"] * 3
    assert released["escrow"]["status"] == "RELEASED" and released["released_amount"] == "60.00"
    assert await entries(stack, order["id"]) == {"ORDER_RESERVE": 1, "ESCROW_FUND": 1, "ESCROW_RELEASE": 3}
    assert (await balance_of(client, full_key, seller["id"]))["available"] == "60.00"
    await assert_ledger_is_chain(client, full_key, control, buyer, seller)
    await assert_books_balanced(stack)


async def open_and_assign(client: httpx.AsyncClient, headers: dict[str, str], order_id: str) -> dict[str, Any]:
    opened = await client.post(
        f"/orders/{order_id}/resolution/dispute", headers=headers, json={"opened_by": "BUYER", "reason": "OTHER"}
    )
    assert opened.status_code == 201, opened.text
    dispute: dict[str, Any] = opened.json()
    assigned = await client.post(f"/disputes/{dispute['id']}/assign", json={"assigned_to": "agent-9"}, headers=headers)
    assert assigned.status_code == 200, assigned.text
    return dispute


async def test_a_dispute_re_decided_after_a_partial_settlement_pays_what_the_books_say(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], control: httpx.AsyncClient
) -> None:
    buyer, seller, order = await three_milestone_order(client, stack, full_key)
    dispute = await open_and_assign(client, full_key, order["id"])
    frozen_release = await client.post(f"/orders/{order['id']}/resolution/release", headers=full_key)
    assert_error(frozen_release, 409, "DISPUTE_ALREADY_OPEN")
    assert frozen_release.json()["error"]["details"]["dispute_id"] == dispute["id"]
    # settlement steps: dispute a, resolve a, dispute b, resolve b (fails), ...
    await control.put("/faults", json=trap_send("resolve-b-traps", after=3))
    split = {"decision": "SPLIT", "release_amount": "25.00", "refund_amount": "35.00"}
    refused = await client.post(f"/disputes/{dispute['id']}/resolve", json=split, headers=full_key)
    assert_error(refused, 502, "PROVIDER_ERROR")
    await control.delete("/faults")
    pending = (await client.get(f"/disputes/{dispute['id']}", headers=full_key)).json()
    assert pending["status"] == "UNDER_REVIEW" and pending["resolution_decision"] is None
    frozen = await order_status(client, full_key, order["id"])
    assert frozen["last_error"]["operation"] == "dispute_settlement"
    # milestone a landed: 10.00 went to the seller on chain and can never be paid again
    assert [m["status"] for m in frozen["milestones"]] == ["CANCELED", "OPEN", "OPEN"]
    everything_back = await client.post(
        f"/disputes/{dispute['id']}/resolve", json={"decision": "FULL_REFUND"}, headers=full_key
    )
    assert_error(everything_back, 400, "INVALID_AMOUNT")
    assert everything_back.json()["error"]["details"]["already_released"] == "10.00"
    again = {"decision": "SPLIT", "release_amount": "10.00", "refund_amount": "50.00"}
    resolved = await client.post(f"/disputes/{dispute['id']}/resolve", json=again, headers=full_key)
    assert resolved.status_code == 200, resolved.text
    closed = await order_status(client, full_key, order["id"])
    assert closed["status"] == "CLOSED" and closed["close_reason"] == "SPLIT"
    assert closed["released_amount"] == "10.00" and closed["refunded_amount"] == "50.00"
    assert (await balance_of(client, full_key, seller["id"]))["available"] == "10.00"
    assert (await balance_of(client, full_key, buyer["id"]))["available"] == "50.00"
    assert await contract_balance(stack, closed["escrow"]["trustless_contract_id"]) == 0
    await assert_ledger_is_chain(client, full_key, control, buyer, seller)
    await assert_books_balanced(stack)


async def test_a_refund_that_fails_at_one_milestone_keeps_the_others_recorded_and_is_retried(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], control: httpx.AsyncClient
) -> None:
    buyer, seller, order = await three_milestone_order(client, stack, full_key)
    await control.put("/faults", json=trap_send("refund-b-traps", after=3))
    refused = await client.post(f"/orders/{order['id']}/resolution/refund", json={"reason": "gone"}, headers=full_key)
    assert_error(refused, 502, "PROVIDER_ERROR")
    await control.delete("/faults")
    partial = await order_status(client, full_key, order["id"])
    assert partial["status"] == "IN_PROGRESS" and partial["last_error"]["operation"] == "refund"
    assert partial["refunded_amount"] == "10.00" and partial["amount_in_escrow"] == "50.00"
    assert [m["status"] for m in partial["milestones"]] == ["CANCELED", "OPEN", "OPEN"]
    await assert_ledger_is_chain(client, full_key, control, buyer, seller)
    await assert_books_balanced(stack)
    refunded = await act(client, full_key, order["id"], "resolution/refund", {"reason": "gone"})
    assert refunded["status"] == "CLOSED" and refunded["close_reason"] == "REFUNDED"
    assert refunded["refunded_amount"] == "60.00" and refunded["last_error"] is None
    assert await entries(stack, order["id"]) == {"ORDER_RESERVE": 1, "ESCROW_FUND": 1, "ESCROW_REFUND": 3}
    assert (await balance_of(client, full_key, buyer["id"]))["available"] == "60.00"
    await assert_ledger_is_chain(client, full_key, control, buyer, seller)
    await assert_books_balanced(stack)


async def test_worker_killed_during_a_multi_milestone_refund_settles_once(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], control: httpx.AsyncClient
) -> None:
    buyer, seller, order = await three_milestone_order(client, stack, full_key)
    await control.put("/faults", json=slow_tw(700))
    refunding = asyncio.create_task(
        client.post(f"/orders/{order['id']}/resolution/refund", json={"reason": "gone"}, headers=full_key)
    )
    await asyncio.sleep(2.0)  # the first milestones are settled, the next in flight
    await kill_and_restart_worker(stack)
    answer = await refunding
    assert answer.status_code in (200, 202), answer.text
    await control.delete("/faults")

    async def closed() -> bool:
        return bool((await order_status(client, full_key, order["id"]))["status"] == "CLOSED")

    await assert_eventually(closed, timeout=60, message="the refund did not finish after the worker restart")
    assert await entries(stack, order["id"]) == {"ORDER_RESERVE": 1, "ESCROW_FUND": 1, "ESCROW_REFUND": 3}
    assert (await balance_of(client, full_key, buyer["id"]))["available"] == "60.00"
    await assert_ledger_is_chain(client, full_key, control, buyer, seller)
    await assert_books_balanced(stack)
