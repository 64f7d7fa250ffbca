"""Reconciliation runs (operations.md §2) on the session's stack: the five checks, findings
for a balance changed behind the product's back and for an order stuck in ESCROW_FUNDING,
one run at a time, and the master-key endpoints.

The session's database is shared with every other test, and a run checks all of it. So a
test never asserts on the whole report: it asserts on the findings about the resources it
made itself (and that a run with no finding at all is `OK`). A test that breaks something
on purpose repairs it before it ends, so later runs see nothing of it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from api.payload_codec import data_converter
from models.timefmt import iso, utcnow
from tests.api.orders_support import act, funded_order, funded_user
from tests.api.test_idempotency import pg_dsn
from tests.support import Stack, assert_books_balanced, assert_eventually, create_key, stack_settings

CHECKS = {"ledger_invariants", "escrows_on_chain", "wallets_on_chain", "stuck_flows", "webhook_deliveries"}


@pytest.fixture
async def control(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.sandbox_port}/_sandbox", timeout=30) as http:
        yield http
        await http.delete("/faults")


async def finished_run(client: httpx.AsyncClient, master: dict[str, str]) -> dict[str, Any]:
    """A run that started after this call (not one already in progress), once it has finished."""
    since = iso(utcnow())
    assert since is not None
    while True:
        started = await client.post("/admin/reconciliation/run", headers=master)
        assert started.status_code == 202, started.text
        run = await run_finished(client, master, started.json()["id"])
        if run["started_at"] >= since:
            return run


async def run_finished(client: httpx.AsyncClient, master: dict[str, str], run_id: int) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        run: dict[str, Any] = (await client.get(f"/admin/reconciliation/runs/{run_id}", headers=master)).json()
        return run if run["status"] != "RUNNING" else None

    run = await assert_eventually(finished, timeout=90, interval=0.3, message=f"run {run_id} did not finish")
    assert run is not None
    return run


def about(run: dict[str, Any], *ids: str) -> list[dict[str, Any]]:
    return [f for f in run["findings"] if f["resource_id"] in ids]


async def test_a_run_after_a_release_a_refund_and_a_deposit_is_ok(
    client: httpx.AsyncClient, stack: Stack, master: dict[str, str], full_key: dict[str, str]
) -> None:
    buyer, seller, released = await funded_order(client, stack, full_key, "20.00", ["reserve", "escrow", "escrow/fund"])
    await act(client, full_key, released["id"], "resolution/release")
    buyer2, seller2, refunded = await funded_order(
        client, stack, full_key, "15.00", ["reserve", "escrow", "escrow/fund"]
    )
    await act(client, full_key, refunded["id"], "resolution/refund", {"reason": "not delivered"})
    depositor = await funded_user(client, stack, full_key, "7.00")

    run = await finished_run(client, master)

    assert set(run["checks"]) == CHECKS
    assert all(isinstance(c["checked"], int) and isinstance(c["findings"], int) for c in run["checks"].values())
    assert run["checks"]["ledger_invariants"]["checked"] > 0
    assert run["checks"]["wallets_on_chain"]["checked"] >= 5
    assert run["finished_at"] is not None and run["error"] is None
    users = [u["id"] for u in (buyer, seller, buyer2, seller2, depositor)]
    wallets = [u["wallet"]["id"] for u in (buyer, seller, buyer2, seller2, depositor)]
    orders = [released["id"], refunded["id"]]
    assert about(run, *users, *wallets, *orders) == []
    # leftovers of other tests may be reported; with none, the verdict is OK
    assert run["status"] == ("FINDINGS" if run["findings"] else "OK")
    assert sum(c["findings"] for c in run["checks"].values()) >= len(run["findings"])
    await assert_books_balanced(stack)


async def test_a_balance_changed_behind_the_products_back_is_a_finding_naming_both_amounts(
    client: httpx.AsyncClient, stack: Stack, master: dict[str, str], full_key: dict[str, str]
) -> None:
    user = await funded_user(client, stack, full_key, "15.00")
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        await conn.execute("UPDATE balances SET available = available + 1000 WHERE user_id = $1", user["id"])
        try:
            run = await finished_run(client, master)
        finally:
            await conn.execute("UPDATE balances SET available = available - 1000 WHERE user_id = $1", user["id"])
        audited = await conn.fetch(
            "SELECT resource_type, actor_type, result, payload_after FROM audit_logs"
            " WHERE action = 'RECONCILIATION_FINDING' AND user_id = $1",
            user["id"],
        )
    finally:
        await conn.close()

    assert run["status"] == "FINDINGS"
    ledger = [f for f in about(run, user["id"]) if f["check"] == "ledger_invariants"]
    assert {
        "check": "ledger_invariants",
        "resource_type": "user",
        "resource_id": user["id"],
        "expected": {"available": "15.00", "reserved": "0.00"},
        "actual": {"available": "25.00", "reserved": "0.00"},
    } in ledger
    (wallet,) = about(run, user["wallet"]["id"])
    assert wallet["check"] == "wallets_on_chain"
    assert wallet["expected"]["total"] == "25.00" and wallet["actual"]["usdc"] == "15.00"
    assert run["checks"]["ledger_invariants"]["findings"] >= 1
    assert any(f["resource_id"] == "conservation" for f in run["findings"])
    # each finding is also an audit entry on its resource, by the run's workflow
    assert {(a["resource_type"], a["actor_type"], a["result"]) for a in audited} == {
        ("user", "system", "FAILURE"),
        ("wallet", "system", "FAILURE"),
    }
    await assert_books_balanced(stack)


async def test_an_order_left_in_escrow_funding_while_its_step_retries_is_a_stuck_flow(
    client: httpx.AsyncClient,
    stack: Stack,
    master: dict[str, str],
    full_key: dict[str, str],
    control: httpx.AsyncClient,
) -> None:
    buyer, _, order = await funded_order(client, stack, full_key, "12.00", ["reserve", "escrow"])
    assert order["status"] == "ESCROW_FUNDING"
    tw_down = {"id": "tw-down", "target": "tw", "path": "/helper/send-transaction", "action": "error", "status": 503}
    assert (await control.put("/faults", json={"rules": [tw_down]})).status_code == 200
    funding = asyncio.create_task(client.post(f"/orders/{order['id']}/escrow/fund", headers=full_key))
    temporal = await Client.connect(stack.env["TEMPORAL_ADDRESS"], data_converter=data_converter(stack_settings(stack)))

    async def retrying() -> bool:
        described = await temporal.get_workflow_handle(order["id"]).describe()
        return any(p.attempt > 1 for p in described.raw_description.pending_activities)

    await assert_eventually(retrying, timeout=30, interval=0.3, message="the funding step never retried")
    # the stuck limit is an hour in ESCROW_FUNDING: the order's clock is turned back instead of waiting
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        await conn.execute("UPDATE orders SET updated_at = now() - interval '2 hours' WHERE id = $1", order["id"])
    finally:
        await conn.close()

    run = await finished_run(client, master)

    (stuck,) = about(run, order["id"])
    assert stuck["check"] == "stuck_flows" and stuck["resource_type"] == "order"
    assert stuck["actual"]["status"] == "ESCROW_FUNDING"
    assert stuck["actual"]["workflow"] == "RUNNING"
    assert stuck["actual"]["retrying"].startswith("escrow_fund attempt")
    assert run["status"] == "FINDINGS" and run["checks"]["stuck_flows"]["findings"] >= 1
    assert about(run, buyer["id"], buyer["wallet"]["id"]) == []  # nothing moved: the wallet agrees

    await control.delete("/faults")
    assert (await funding).status_code in (200, 202)

    async def funded() -> bool:
        current = (await client.get(f"/orders/{order['id']}", headers=full_key)).json()
        return bool(current["status"] == "IN_PROGRESS")

    await assert_eventually(funded, timeout=60, message="funding did not finish once the provider was back")
    await act(client, full_key, order["id"], "resolution/release")
    await assert_books_balanced(stack)


async def test_a_run_in_progress_is_the_answer_to_a_second_trigger(
    client: httpx.AsyncClient,
    stack: Stack,
    master: dict[str, str],
    full_key: dict[str, str],
    control: httpx.AsyncClient,
) -> None:
    await funded_user(client, stack, full_key, "0")  # at least one wallet for the slowed Horizon to read
    slow = {"id": "slow-accounts", "target": "horizon", "method": "GET", "path": "/accounts/*"}
    await control.put("/faults", json={"rules": [{**slow, "action": "latency_only", "latency_ms": 3000}]})
    first = await client.post("/admin/reconciliation/run", headers=master)
    second = await client.post("/admin/reconciliation/run", headers=master)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.json()["status"] == "RUNNING" and second.json()["finished_at"] is None
    assert first.headers["location"] == f"/api/v1/admin/reconciliation/runs/{first.json()['id']}"
    await control.delete("/faults")
    await run_finished(client, master, first.json()["id"])


async def test_runs_are_listed_newest_first_filtered_and_read_one_by_one(
    client: httpx.AsyncClient, master: dict[str, str]
) -> None:
    done = await finished_run(client, master)
    page = (await client.get("/admin/reconciliation/runs?limit=1", headers=master)).json()
    assert len(page["data"]) == 1 and page["pagination"]["has_more"] is True
    newest = page["data"][0]
    assert newest["id"] >= done["id"]
    after = page["pagination"]["next_cursor"]
    following = (await client.get(f"/admin/reconciliation/runs?limit=100&cursor={after}", headers=master)).json()
    ids = [r["id"] for r in following["data"]]
    assert ids == sorted(ids, reverse=True) and newest["id"] not in ids
    filtered = (await client.get(f"/admin/reconciliation/runs?status={done['status']}", headers=master)).json()
    assert filtered["data"] and all(r["status"] == done["status"] for r in filtered["data"])
    one = await client.get(f"/admin/reconciliation/runs/{done['id']}", headers=master)
    assert one.status_code == 200 and one.json() == done
    assert set(done) == {
        "id", "status", "started_at", "finished_at", "checks", "findings", "error", "created_at", "updated_at"
    }  # fmt: skip
    for missing in ("999999999", "abc", "-1"):
        absent = await client.get(f"/admin/reconciliation/runs/{missing}", headers=master)
        assert absent.status_code == 404 and absent.json()["error"]["code"] == "NOT_FOUND"
    bad = await client.get("/admin/reconciliation/runs?status=DONE", headers=master)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_reconciliation_endpoints_take_the_master_key_only(
    client: httpx.AsyncClient, stack: Stack, master: dict[str, str]
) -> None:
    key = await create_key(client, stack.master_key, ["read", "write", "support"])
    for method, path in (
        ("POST", "/admin/reconciliation/run"),
        ("GET", "/admin/reconciliation/runs"),
        ("GET", "/admin/reconciliation/runs/1"),
    ):
        anonymous = await client.request(method, path)
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "UNAUTHORIZED"
        keyed = await client.request(method, path, headers={"Authorization": f"Bearer {key['key']}"})
        assert keyed.status_code == 401 and keyed.json()["error"]["code"] == "INVALID_API_KEY"


async def test_offerhub_reconcile_waits_and_prints_the_report(stack: Stack) -> None:
    from tests.api.test_cli import offerhub

    result = await asyncio.to_thread(offerhub, stack, "reconcile", "--wait", "--json", "--api-url", stack.api_url)
    report = json.loads(result.stdout)
    assert set(report["checks"]) == CHECKS and report["status"] in ("OK", "FINDINGS")
    # exit 1 on findings (leftovers of other tests may be reported), 0 on a clean run
    assert result.returncode == (0 if report["status"] == "OK" else 1), result.stderr
    shown = await asyncio.to_thread(offerhub, stack, "reconcile", "--wait", "--api-url", stack.api_url)
    assert "ledger_invariants" in shown.stdout and "checked" in shown.stdout
