"""Inbound provider webhooks (api.md §12): verified before anything else, deduplicated in
PostgreSQL, one Signal each; the sandbox's own signed webhooks are processed."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client

from api.payload_codec import data_converter
from models.ids import IdPrefix, new_id
from sandbox.core import DEFAULTS
from sandbox.webhooks import svix_signature, tw_signature
from tests.api.orders_support import act, funded_order, funded_user, order_in
from tests.api.test_envelope import assert_error
from tests.api.test_idempotency import pg_dsn
from tests.support import Stack, assert_books_balanced, assert_eventually, stack_settings

TW_SECRET = DEFAULTS["SANDBOX_TW_WEBHOOK_SECRET"]
AIRTM_SECRET = DEFAULTS["SANDBOX_AIRTM_WEBHOOK_SECRET"]
ACK = {"status": "ok", "duplicate": False, "processed": True}
DUPLICATE = {"status": "ok", "duplicate": True, "processed": False}
IGNORED = {"status": "ok", "duplicate": False, "processed": False}


def tw_event(event_type: str, **data: Any) -> tuple[str, bytes]:
    event_id = "twevt_test_" + secrets.token_hex(10)
    body = {"type": event_type, "event_id": event_id, "data": {"currency": "USDC", "milestone_ref": None, **data}}
    return event_id, json.dumps(body).encode()


def tw_signed(raw: bytes, secret: str = TW_SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-TW-Signature": tw_signature(secret, raw)}


def airtm_event(event_type: str, **data: Any) -> tuple[str, bytes]:
    event_id = "msg_test" + secrets.token_hex(10)
    body = {"type": event_type, "eventType": event_type, "eventId": event_id, "occurredAt": None, "data": data}
    return event_id, json.dumps(body).encode()


def airtm_signed(event_id: str, raw: bytes, *, at: float | None = None, secret: str = AIRTM_SECRET) -> dict[str, str]:
    stamp = int(time.time() if at is None else at)
    return {
        "Content-Type": "application/json",
        "svix-id": event_id,
        "svix-timestamp": str(stamp),
        "svix-signature": svix_signature(secret, event_id, stamp, raw),
    }


def as_bytes(headers: Mapping[str, str | bytes]) -> list[tuple[bytes, bytes]]:
    """Headers as raw bytes, so a test can send what no well-behaved client would (non-ASCII)."""
    return [(name.encode(), value if isinstance(value, bytes) else value.encode()) for name, value in headers.items()]


async def recorded(stack: Stack, provider: str, event_id: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        row: asyncpg.Record | None = await conn.fetchrow(
            "SELECT * FROM webhook_events WHERE provider = $1 AND provider_event_id = $2", provider, event_id
        )
        return row
    finally:
        await conn.close()


async def an_order(client: httpx.AsyncClient, stack: Stack, headers: dict[str, str]) -> dict[str, Any]:
    """An order with no escrow yet (its users need no money for that)."""
    buyer = await funded_user(client, stack, headers, "0")
    seller = await funded_user(client, stack, headers, "0")
    return await order_in(client, headers, buyer["id"], seller["id"], "5.00", [])


async def test_a_forged_or_unsigned_trustless_work_webhook_changes_nothing(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    order = await an_order(client, stack, full_key)
    event_id, raw = tw_event("escrow.funded", order_id=order["id"], contract_id="CUNKNOWN", status="FUNDED")
    good = tw_signature(TW_SECRET, raw)
    forged: list[Mapping[str, str | bytes]] = [
        {"Content-Type": "application/json"},
        {"Content-Type": "application/json", "X-TW-Signature": ""},
        tw_signed(raw, "another-secret"),
        {"Content-Type": "application/json", "X-TW-Signature": good.upper()},
        {"Content-Type": "application/json", "X-TW-Signature": b"\xe9" * 64},  # not ASCII
        {"Content-Type": "application/json", "X-TW-Signature": tw_signature(TW_SECRET, raw + b" ")},
    ]
    for headers in forged:
        response = await client.post("/webhooks/trustless-work", content=raw, headers=as_bytes(headers))
        assert_error(response, 400, "WEBHOOK_SIGNATURE_INVALID")
        assert TW_SECRET not in response.text and good not in response.text
    # the raw body is verified before it is parsed: an unsigned non-JSON body is a signature refusal
    garbage = await client.post("/webhooks/trustless-work", content=b"not json", headers={"Content-Type": "text/plain"})
    assert_error(garbage, 400, "WEBHOOK_SIGNATURE_INVALID")
    assert await recorded(stack, "trustless_work", event_id) is None
    trail = await client.get(
        "/audit/logs", params={"resource_id": order["id"], "action": "WEBHOOK_RECEIVED"}, headers=full_key
    )
    assert trail.json()["data"] == []


async def test_a_signed_trustless_work_event_signals_its_order_once(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    order = await an_order(client, stack, full_key)
    # no contract recorded for the order yet: `data.order_id` routes it
    event_id, raw = tw_event(
        "escrow.funding_started", order_id=order["id"], contract_id="C" + "A" * 55, status="FUNDING", amount="5.0000000"
    )
    first = await client.post("/webhooks/trustless-work", content=raw, headers=tw_signed(raw))
    assert first.status_code == 200, first.text
    assert first.json() == ACK
    again = await client.post("/webhooks/trustless-work", content=raw, headers=tw_signed(raw))
    assert (again.status_code, again.json()) == (200, DUPLICATE)

    row = await recorded(stack, "trustless_work", event_id)
    assert row is not None and row["status"] == "PROCESSED" and row["event_type"] == "escrow.funding_started"
    assert (row["resource_type"], row["resource_id"], row["target_workflow_id"]) == ("order", order["id"], order["id"])
    assert row["body_sha256"] == hashlib.sha256(raw).hexdigest()
    assert json.loads(row["summary"])["status"] == "FUNDING"
    trail = await client.get(
        "/audit/logs", params={"resource_id": order["id"], "action": "WEBHOOK_RECEIVED"}, headers=full_key
    )
    entries = trail.json()["data"]
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["actor_type"], entry["actor_id"], entry["resource_type"]) == ("webhook", "trustless_work", "order")
    assert entry["payload_after"] == {
        "provider": "trustless_work",
        "provider_event_id": event_id,
        "type": "escrow.funding_started",
        "body_sha256": hashlib.sha256(raw).hexdigest(),
    }
    assert entry["correlation_id"] == order["id"] and entry["user_id"] == order["buyer_id"]


async def test_unknown_types_and_targets_are_acknowledged_and_recorded_ignored(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    order = await an_order(client, stack, full_key)
    unknown_type, raw = tw_event("escrow.teleported", order_id=order["id"], contract_id="CX", status="FUNDED")
    response = await client.post("/webhooks/trustless-work", content=raw, headers=tw_signed(raw))
    assert (response.status_code, response.json()) == (200, IGNORED)
    no_order, raw2 = tw_event("escrow.funded", order_id=new_id(IdPrefix.ORDER), contract_id="CY", status="FUNDED")
    response = await client.post("/webhooks/trustless-work", content=raw2, headers=tw_signed(raw2))
    assert (response.status_code, response.json()) == (200, IGNORED)
    for event_id, event_type in ((unknown_type, "escrow.teleported"), (no_order, "escrow.funded")):
        row = await recorded(stack, "trustless_work", event_id)
        assert row is not None and (row["status"], row["event_type"]) == ("IGNORED", event_type)
        assert row["target_workflow_id"] is None
    again = await client.post("/webhooks/trustless-work", content=raw, headers=tw_signed(raw))
    assert again.json() == DUPLICATE


async def test_signed_but_malformed_webhooks_are_validation_errors(client: httpx.AsyncClient, stack: Stack) -> None:
    no_id = json.dumps({"type": "escrow.funded", "data": {}}).encode()
    for raw in (
        b"not json",
        b"[1, 2]",
        no_id,
        json.dumps({"type": "escrow.funded", "event_id": "e1", "data": 3}).encode(),
    ):
        response = await client.post("/webhooks/trustless-work", content=raw, headers=tw_signed(raw))
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert error["details"]["fields"], error
    assert await recorded(stack, "trustless_work", "e1") is None


async def test_the_sandboxs_webhooks_of_an_order_lifecycle_are_processed(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    _, _, order = await funded_order(client, stack, full_key, "2.00", ["reserve", "escrow", "escrow/fund"])
    await act(client, full_key, order["id"], "resolution/release", {"reason": "delivered"})
    contract = order["escrow"]["trustless_contract_id"]

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.sandbox_port}/_sandbox", timeout=30) as sandbox:

        async def delivered() -> list[dict[str, Any]]:
            await sandbox.post("/webhooks/flush", json={"timeout_ms": 2000})
            sent = (await sandbox.get("/webhooks", params={"provider": "tw", "resource_id": contract})).json()
            types = {w["event_type"] for w in sent}
            done = {"escrow.created", "escrow.funded", "escrow.released"} <= types
            return sent if done and all(w["status"] == "DELIVERED" for w in sent) else []

        sent = await assert_eventually(delivered, timeout=20, message="the sandbox's webhooks were not accepted")
    for webhook in sent:
        row = await recorded(stack, "trustless_work", webhook["event_id"])
        assert row is not None and row["status"] == "PROCESSED", (webhook["event_type"], row)
        assert row["resource_type"] == "order" and row["resource_id"] == order["id"]
        assert all(a["status_code"] in (200, None) for a in webhook["attempts"]), webhook["attempts"]

    # the contract is recorded now: it routes, whatever `order_id` says; the order's workflow
    # has ended (CLOSED), so the news is recorded as processed and changes nothing
    late_id, late = tw_event(
        "escrow.released", contract_id=contract, order_id=new_id(IdPrefix.ORDER), status="RELEASED"
    )
    response = await client.post("/webhooks/trustless-work", content=late, headers=tw_signed(late))
    assert (response.status_code, response.json()) == (200, ACK)
    row = await recorded(stack, "trustless_work", late_id)
    assert row is not None and row["resource_id"] == order["id"] and json.loads(row["summary"])["workflow_ended"]
    # another contract claiming this order, whose contract is known: not routed
    _, stray = tw_event("escrow.funded", contract_id="C" + "S" * 55, order_id=order["id"], status="FUNDED")
    response = await client.post("/webhooks/trustless-work", content=stray, headers=tw_signed(stray))
    assert (response.status_code, response.json()) == (200, IGNORED)


async def test_news_of_a_closed_order_is_processed_without_a_signal(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    """A CLOSED order's news changes nothing: recorded as processed (`workflow_ended`) without
    a Signal, so a workflow completing meanwhile is not disturbed, and a workflow Temporal no
    longer holds (past its retention) raises no alert. Shown with Temporal out of reach."""
    _, _, order = await funded_order(client, stack, full_key, "1.00", ["reserve", "escrow", "escrow/fund"])
    closed = await act(client, full_key, order["id"], "resolution/release", {"reason": "delivered"})
    assert closed["status"] == "CLOSED", closed
    contract = order["escrow"]["trustless_contract_id"]
    api_url = stack.spawn_api("api-no-temporal-closed", {"TEMPORAL_ADDRESS": "127.0.0.1:1"})
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as cut_off:
        event_id, raw = tw_event("escrow.released", contract_id=contract, status="RELEASED")
        response = await cut_off.post("/webhooks/trustless-work", content=raw, headers=tw_signed(raw))
        assert (response.status_code, response.json()) == (200, ACK)
        # an open order's news still needs its workflow
        _, raw = tw_event("escrow.created", order_id=(await an_order(client, stack, full_key))["id"], status="X")
        response = await cut_off.post("/webhooks/trustless-work", content=raw, headers=tw_signed(raw))
        assert_error(response, 503, "SERVICE_UNAVAILABLE")
    row = await recorded(stack, "trustless_work", event_id)
    assert row is not None and row["status"] == "PROCESSED" and row["resource_id"] == order["id"]
    assert json.loads(row["summary"])["workflow_ended"]
    await assert_books_balanced(stack)


async def test_milestone_events_of_a_multi_release_escrow_signal_the_milestone(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    _, _, order = await funded_order(
        client,
        stack,
        full_key,
        "4.00",
        ["reserve", "escrow", "escrow/fund"],
        milestones=[
            {"milestone_ref": "concepts", "title": "Two concepts", "amount": "1.00"},
            {"milestone_ref": "final", "title": "Final file", "amount": "3.00"},
        ],
    )
    first, second = order["milestones"]
    await act(client, full_key, order["id"], "milestones/final/complete", {"note": "uploaded"})

    async def milestone_news() -> asyncpg.Record | None:
        conn = await asyncpg.connect(pg_dsn(stack))
        try:
            row: asyncpg.Record | None = await conn.fetchrow(
                "SELECT * FROM webhook_events WHERE provider = 'trustless_work' AND resource_id = $1", second["id"]
            )
            return row
        finally:
            await conn.close()

    row = await assert_eventually(milestone_news, timeout=20, message="escrow.milestone_completed not routed")
    assert row is not None
    assert (row["event_type"], row["status"], row["resource_type"]) == (
        "escrow.milestone_completed",
        "PROCESSED",
        "milestone",
    )
    assert row["target_workflow_id"] == second["id"] and json.loads(row["summary"])["milestone_ref"] == "1"
    # an escrow-wide event of the same contract goes to the order
    event_id, raw = tw_event(
        "escrow.funded", contract_id=order["escrow"]["trustless_contract_id"], status="FUNDED", milestone_ref=None
    )
    assert (await client.post("/webhooks/trustless-work", content=raw, headers=tw_signed(raw))).json() == ACK
    routed = await recorded(stack, "trustless_work", event_id)
    assert routed is not None and (routed["resource_type"], routed["resource_id"]) == ("order", order["id"])
    # a milestone the order does not have: the order hears it
    event_id, raw = tw_event(
        "escrow.released", contract_id=order["escrow"]["trustless_contract_id"], status="RELEASED", milestone_ref="7"
    )
    assert (await client.post("/webhooks/trustless-work", content=raw, headers=tw_signed(raw))).json() == ACK
    routed = await recorded(stack, "trustless_work", event_id)
    assert routed is not None and routed["resource_id"] == order["id"] and first["position"] == 0


async def test_webhooks_are_exempt_from_maintenance(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], master: dict[str, str]
) -> None:
    order = await an_order(client, stack, full_key)
    _, raw = tw_event("escrow.created", order_id=order["id"], contract_id="C" + "M" * 55, status="CREATED")
    await client.post("/admin/maintenance/enable", json={"retry_after_seconds": 30}, headers=master)
    try:

        async def writes_refused() -> bool:
            probe = await client.post("/orders", json={}, headers=full_key)
            return probe.status_code == 503

        await assert_eventually(writes_refused, timeout=5, message="maintenance not applied")
        response = await client.post("/webhooks/trustless-work", content=raw, headers=tw_signed(raw))
        assert (response.status_code, response.json()) == (200, ACK)
    finally:
        await client.post("/admin/maintenance/disable", headers=master)


async def test_temporal_unreachable_answers_503_and_records_nothing(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    order = await an_order(client, stack, full_key)
    event_id, raw = tw_event("escrow.created", order_id=order["id"], contract_id="C" + "T" * 55, status="CREATED")
    api_url = stack.spawn_api("api-no-temporal", {"TEMPORAL_ADDRESS": "127.0.0.1:1"})
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as cut_off:
        response = await cut_off.post("/webhooks/trustless-work", content=raw, headers=tw_signed(raw))
    error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert response.headers["retry-after"] == "5" and error["details"] == {"retry_after_seconds": 5}
    assert await recorded(stack, "trustless_work", event_id) is None
    # the provider's retry, to a healthy API, is processed normally
    retried = await client.post("/webhooks/trustless-work", content=raw, headers=tw_signed(raw))
    assert (retried.status_code, retried.json()) == (200, ACK)


async def test_postgresql_unreachable_answers_503(stack: Stack) -> None:
    _, raw = tw_event("escrow.created", order_id=new_id(IdPrefix.ORDER), contract_id="CZ", status="CREATED")
    api_url = stack.spawn_api("api-no-db", {"DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/offerhub"})
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as cut_off:
        response = await cut_off.post("/webhooks/trustless-work", content=raw, headers=tw_signed(raw))
    assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert response.headers["retry-after"] == "5"


async def test_the_airtm_endpoint_needs_airtm_mode(client: httpx.AsyncClient) -> None:
    event_id, raw = airtm_event("payin.confirmed", code=new_id(IdPrefix.TOPUP), id="p-1", status="CONFIRMED")
    response = await client.post("/webhooks/airtm", content=raw, headers=airtm_signed(event_id, raw))
    error = assert_error(response, 409, "PROVIDER_NOT_ENABLED")
    assert error["details"] == {"payment_provider": "crypto", "required_provider": "airtm"}


async def test_airtm_webhooks_are_verified_and_unknown_targets_ignored(
    airtm_client: httpx.AsyncClient, stack: Stack
) -> None:
    event_id, raw = airtm_event("payin.confirmed", code=new_id(IdPrefix.TOPUP), id="payin-x", status="CONFIRMED")
    good = airtm_signed(event_id, raw)
    forged: list[Mapping[str, str | bytes]] = [
        {"Content-Type": "application/json"},
        {**good, "svix-signature": "v1," + "A" * 44},
        airtm_signed(event_id, raw, secret="whsec_" + "b3RoZXIta2V5"),
        airtm_signed(event_id, raw, at=time.time() - 600),
        {**good, "svix-id": "msg_other"},
        {**good, "svix-timestamp": "soon"},
        {**good, "svix-signature": b"v1,\xff\xfe"},
        {k: v for k, v in good.items() if k != "svix-id"},
    ]
    for headers in forged:
        response = await airtm_client.post("/webhooks/airtm", content=raw, headers=as_bytes(headers))
        assert_error(response, 400, "WEBHOOK_SIGNATURE_INVALID")
    assert await recorded(stack, "airtm", event_id) is None

    response = await airtm_client.post("/webhooks/airtm", content=raw, headers=good)
    assert (response.status_code, response.json()) == (200, IGNORED)
    row = await recorded(stack, "airtm", event_id)
    assert row is not None and (row["status"], row["event_type"]) == ("IGNORED", "payin.confirmed")
    assert json.loads(row["summary"]) == {
        "code": json.loads(raw)["data"]["code"],
        "id": "payin-x",
        "status": "CONFIRMED",
    }
    # Svix retries re-sign with a fresh timestamp: still the same event
    retry = await airtm_client.post(
        "/webhooks/airtm", content=raw, headers=airtm_signed(event_id, raw, at=time.time() + 1)
    )
    assert retry.json() == DUPLICATE

    payout_id, payout = airtm_event("payout.completed", code=new_id(IdPrefix.WITHDRAWAL), status="COMPLETED")
    response = await airtm_client.post("/webhooks/airtm", content=payout, headers=airtm_signed(payout_id, payout))
    assert (response.status_code, response.json()) == (200, IGNORED)
    other_id, other = airtm_event("balance.updated", status="x")
    response = await airtm_client.post("/webhooks/airtm", content=other, headers=airtm_signed(other_id, other))
    assert (response.status_code, response.json()) == (200, IGNORED)


async def test_airtm_events_signal_the_top_up_or_withdrawal_they_name(
    airtm_client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    """Routing by `data.code`, else by the pay-in / payout ID. The workflows under those IDs are
    started on a task queue no worker polls: Temporal accepts Signals to them all the same."""
    created = await airtm_client.post(
        "/users", json={"external_user_id": f"ext-{secrets.token_hex(6)}"}, headers=full_key
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    topup_id, payin_id = new_id(IdPrefix.TOPUP), f"payin-{secrets.token_hex(8)}"
    wd_id = new_id(IdPrefix.WITHDRAWAL)
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        await conn.execute(
            "INSERT INTO topups (id, user_id, provider, status, amount, airtm_payin_id)"
            " VALUES ($1, $2, 'airtm', 'TOPUP_AWAITING_USER_CONFIRMATION', 500, $3)",
            topup_id,
            user_id,
            payin_id,
        )
        await conn.execute(
            "INSERT INTO withdrawals (id, user_id, amount, destination_type, destination_ref, status)"
            " VALUES ($1, $2, 300, 'bank', 'ES9121000418450200051332', 'WITHDRAWAL_PENDING')",
            wd_id,
            user_id,
        )
    finally:
        await conn.close()
    temporal = await Client.connect(stack.env["TEMPORAL_ADDRESS"], data_converter=data_converter(stack_settings(stack)))
    handles = [
        await temporal.start_workflow("TopUpWorkflow", id=topup_id, task_queue="webhooks-test-idle"),
        await temporal.start_workflow("WithdrawalWorkflow", id=wd_id, task_queue="webhooks-test-idle"),
    ]
    try:
        by_id, payin = airtm_event("payin.confirmed", id=payin_id, code=None, status="CONFIRMED", amount=5.0)
        by_code, payout = airtm_event(
            "payout.completed", id="unknown-payout", code=wd_id, status="COMPLETED", airtmUserEmail="jane@example.com"
        )
        for event_id, raw, resource in ((by_id, payin, ("topup", topup_id)), (by_code, payout, ("withdrawal", wd_id))):
            response = await airtm_client.post("/webhooks/airtm", content=raw, headers=airtm_signed(event_id, raw))
            assert (response.status_code, response.json()) == (200, ACK)
            row = await recorded(stack, "airtm", event_id)
            assert row is not None and row["status"] == "PROCESSED"
            assert (row["resource_type"], row["resource_id"], row["target_workflow_id"]) == (*resource, resource[1])
            trail = await airtm_client.get(
                "/audit/logs", params={"resource_id": resource[1], "action": "WEBHOOK_RECEIVED"}, headers=full_key
            )
            [entry] = trail.json()["data"]
            assert (entry["actor_type"], entry["actor_id"], entry["user_id"]) == ("webhook", "airtm", user_id)
        history = [event async for event in handles[1].fetch_history_events()]
        signalled = [
            e.workflow_execution_signaled_event_attributes
            for e in history
            if e.HasField("workflow_execution_signaled_event_attributes")
        ]
        assert [s.signal_name for s in signalled] == ["airtm_payout_event"]
        sent = await temporal.data_converter.decode(list(signalled[0].input.payloads))  # through the payload codec
        assert "jane@example.com" not in str(sent)  # the email is masked in the Signal
    finally:
        for handle in handles:
            await handle.terminate("test over")
        # the rows were inserted without their ledger effects (a withdrawal without its hold):
        # gone again, so the books of the session stay balanced
        conn = await asyncpg.connect(pg_dsn(stack))
        try:
            await conn.execute("DELETE FROM withdrawals WHERE id = $1", wd_id)
            await conn.execute("DELETE FROM topups WHERE id = $1", topup_id)
        finally:
            await conn.close()
    await assert_books_balanced(stack)
