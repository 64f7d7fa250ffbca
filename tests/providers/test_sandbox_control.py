"""The sandbox's own promises: signed webhooks with stable IDs, Airtm progressions,
fault configuration, request logs and invariants."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request

from cli.stack import free_port
from models.ids import IdPrefix, new_id
from providers.airtm.client import AirtmClient, payin_body
from providers.webhooks import verify_svix, verify_trustless_work
from tests.providers.chain import Chain
from tests.support import assert_eventually

SVIX_SECRET = "whsec_b2ZmZXJodWItc2FuZGJveC1haXJ0bS13ZWJob29rLWtleQ=="


class Receiver:
    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.port = free_port()
        app = FastAPI()

        @app.post("/{provider}")
        async def receive(provider: str, request: Request) -> dict[str, bool]:
            self.calls.append(
                ({k.lower(): v for k, v in request.headers.items()} | {"_provider": provider}, await request.body())
            )
            return {"ok": True}

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))

    def url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.port}/{provider}"


@pytest.fixture
async def receiver(chain: Chain) -> AsyncIterator[Receiver]:
    hook = Receiver()
    task = asyncio.create_task(hook.server.serve())

    async def started() -> bool:
        return bool(hook.server.started)

    await assert_eventually(started, timeout=10)
    before = (await chain.control.get("/info")).json()["webhooks"]
    await chain.control.put("/webhooks/settings", json={"tw_url": hook.url("tw"), "airtm_url": hook.url("airtm")})
    try:
        yield hook
    finally:
        await chain.control.put(
            "/webhooks/settings", json={"tw_url": before["tw_url"], "airtm_url": before["airtm_url"]}
        )
        hook.server.should_exit = True
        await task


async def test_airtm_payin_progression_sends_signed_webhooks_with_stable_ids(chain: Chain, receiver: Receiver) -> None:
    env = chain.stack.env
    airtm = AirtmClient(env["AIRTM_BASE_URL"], env["AIRTM_API_KEY"], env["AIRTM_API_SECRET"])
    email = f"{new_id(IdPrefix.USER)}@example.com"
    user = (await chain.control.post("/airtm/users", json={"email": email, "balance": "100.00"})).json()
    assert user["status"] == "active" and user["balance"] == "100.00"
    await chain.control.put(
        "/faults", json={"webhooks": {"airtm": {"duplicate_probability": 1.0, "duplicate_delay_ms": 10}}}
    )
    try:
        topup = new_id(IdPrefix.TOPUP)
        payin = await airtm.create_payin_once(payin_body(topup, 2500, "Top-up", "http://127.0.0.1:4000"))
        confirmed = (await chain.control.post(f"/airtm/payins/{topup}/confirm", json={"email": email})).json()
        assert confirmed["status"] == "CONFIRMED" and confirmed["airtmUserEmail"] == email
        assert (await airtm.payin(payin["id"]))["status"] == "CONFIRMED"
        await chain.control.post("/webhooks/flush", json={"timeout_ms": 5000})

        def mine() -> list[dict[str, Any]]:
            return [
                json.loads(body) | {"_headers": headers}
                for headers, body in receiver.calls
                if headers["_provider"] == "airtm" and json.loads(body)["data"]["code"] == topup
            ]

        async def both_events_twice() -> bool:
            return len(mine()) >= 4

        await assert_eventually(both_events_twice, timeout=10)
        by_id: dict[str, int] = {}
        for event in mine():
            headers = event["_headers"]
            raw = next(b for h, b in receiver.calls if h is headers)
            assert verify_svix(
                SVIX_SECRET,
                raw,
                headers["svix-id"],
                headers["svix-timestamp"],
                headers["svix-signature"],
                now=time.time(),
                tolerance_seconds=300,
            )
            assert headers["svix-id"] == event["eventId"]
            by_id[event["eventId"]] = by_id.get(event["eventId"], 0) + 1
        assert sorted(by_id.values()) == [2, 2]  # each event delivered twice, same ID both times
        assert {e["type"] for e in mine()} == {"payin.created", "payin.confirmed"}
    finally:
        await chain.control.delete("/faults")
        await airtm.close()
    users = (await chain.control.get("/airtm/users")).json()
    assert next(u for u in users if u["email"] == email)["balance"] == "75.00"
    assert (await chain.invariants())["ok"]


async def test_trustless_work_webhooks_are_signed(chain: Chain, receiver: Receiver) -> None:
    from tests.providers.test_rejections import funded_escrow

    *_, contract = await funded_escrow(chain)
    await chain.control.post("/webhooks/flush", json={"timeout_ms": 5000})

    def events() -> list[str]:
        return [
            json.loads(b)["type"]
            for h, b in receiver.calls
            if h["_provider"] == "tw" and json.loads(b)["data"]["contract_id"] == contract
        ]

    async def funded() -> bool:
        return "escrow.funded" in events()

    await assert_eventually(funded, timeout=10)
    assert events()[:1] == ["escrow.created"]
    for headers, raw in receiver.calls:
        if headers["_provider"] == "tw":
            assert verify_trustless_work("tw_whsec_sandbox", raw, headers["x-tw-signature"])


async def test_fault_configuration_is_validated_and_logged(chain: Chain) -> None:
    bad = await chain.control.put("/faults", json={"rules": [{"id": "x", "target": "nowhere"}]})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    bad_status = await chain.control.put(
        "/faults", json={"rules": [{"id": "x", "target": "tw", "action": "error", "status": 418}]}
    )
    assert bad_status.status_code == 400
    ok = await chain.control.put(
        "/faults",
        json={
            "rules": [
                {
                    "id": "root-down",
                    "target": "horizon",
                    "method": "GET",
                    "path": "/fee_stats",
                    "times": 1,
                    "action": "error",
                    "status": 429,
                    "retry_after_s": 3,
                }
            ]
        },
    )
    assert ok.status_code == 200 and ok.json()["version"] >= 1
    # fee_stats: a route no other client of the session calls, so the rule is ours alone
    first = await chain.horizon.http.client.get("/fee_stats", headers={"X-Request-ID": "mine-1"})
    second = await chain.horizon.http.client.get("/fee_stats", headers={"X-Request-ID": "mine-2"})
    assert first.status_code == 429 and first.headers["retry-after"] == "3"
    assert second.status_code == 200
    assert first.headers["x-sandbox-request-id"] != second.headers["x-sandbox-request-id"]
    log = (await chain.control.get("/faults/log", params={"rule_id": "root-down"})).json()
    assert log[-1]["effect_applied"] is False and log[-1]["request_id"] == first.headers["x-sandbox-request-id"]
    requests = (await chain.control.get("/requests", params={"target": "horizon", "limit": 1000})).json()
    mine = [r for r in requests if r["x_request_id"] in ("mine-1", "mine-2")]
    assert [(r["status"], r["fault_rule_id"]) for r in mine] == [(429, "root-down"), (200, None)]
    assert mine[-1]["request_id"] == second.headers["x-sandbox-request-id"]


async def test_ledger_totals_and_invariants(chain: Chain) -> None:
    totals = (await chain.control.get("/ledger/totals")).json()
    usdc = totals["assets"][0]
    assert usdc["code"] == "USDC"
    checks = await chain.invariants()
    assert checks["ok"], checks
    assert {c["name"] for c in checks["checks"]} == {
        "asset_conserved",
        "xlm_conserved",
        "no_negative_balances",
        "hash_applied_once",
        "contract_balance_consistent",
        "airtm_conserved",
    }
