"""The `offerhub` commands no other test runs for real (operations.md §1): keys revoke, token create,
maintenance, openapi, the sandbox recipes, and the dispute Signals sent to Temporal."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from api.app import openapi_document
from tests.api.test_disputes import disputed_order
from tests.api.test_topups_airtm import linked_user as airtm_payer
from tests.api.test_users import balance_of
from tests.api.withdrawals_support import control
from tests.support import AirtmStack, Stack, assert_books_balanced, assert_eventually, bearer, crypto_user


def offerhub(stack: Stack, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env={**stack.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=90,
    )


async def run(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """`offerhub` from an async test, off the event loop."""
    return await asyncio.to_thread(offerhub, stack, *args)


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


# keys and tokens ----------------------------------------------------------------------------------


def test_keys_revoke_revokes_and_its_tokens_stop_working(stack: Stack) -> None:
    api = ("--api-url", stack.api_url)
    key = as_json(offerhub(stack, "keys", "create", "--name", "cli-revoke", "--scopes", "read,write", "--json", *api))
    assert key["key"] and key["scopes"] == ["read", "write"]
    token = as_json(offerhub(stack, "token", "create", "--api-key", key["key"], "--ttl", "60", "--json", *api))
    assert httpx.get(stack.api_url + "/me", headers=bearer(token["token"])).status_code == 200

    revoked = offerhub(stack, "keys", "revoke", key["id"], *api)
    assert revoked.returncode == 0, revoked.stderr
    assert f"id={key['id']}" in revoked.stdout and "status=REVOKED" in revoked.stdout
    listed = as_json(offerhub(stack, "keys", "list", "--json", *api))
    [row] = [k for k in listed["data"] if k["id"] == key["id"]]
    assert row["status"] == "REVOKED" and row["key"] is None
    assert httpx.get(stack.api_url + "/me", headers=bearer(key["key"])).status_code == 401
    assert httpx.get(stack.api_url + "/me", headers=bearer(token["token"])).status_code == 401
    again = offerhub(stack, "keys", "revoke", key["id"], *api)
    assert again.returncode in (0, 1)  # idempotent or refused, never a crash
    assert "Traceback" not in again.stderr


def test_token_create_for_a_key_by_the_master_key_and_by_the_key_itself(stack: Stack) -> None:
    api = ("--api-url", stack.api_url)
    key = as_json(offerhub(stack, "keys", "create", "--name", "cli-token", "--scopes", "read,write", "--json", *api))

    minted = as_json(
        offerhub(stack, "token", "create", "--key-id", key["id"], "--scopes", "read", "--ttl", "120", "--json", *api)
    )
    assert minted["token"] and minted["scopes"] == ["read"]
    me = httpx.get(stack.api_url + "/me", headers=bearer(minted["token"])).json()
    assert me["credential"]["type"] == "token" and me["credential"]["scopes"] == ["read"]
    refused = httpx.post(stack.api_url + "/users", json={"external_user_id": "x"}, headers=bearer(minted["token"]))
    assert refused.status_code == 403

    own = offerhub(stack, "token", "create", "--api-key", key["key"], *api)  # table output, default TTL
    assert own.returncode == 0, own.stderr
    assert "token=" in own.stdout

    wider = offerhub(stack, "token", "create", "--api-key", key["key"], "--scopes", "support", *api)
    assert wider.returncode == 1 and wider.stderr.split(":")[0].isupper()  # `CODE: message (request id)`


# maintenance --------------------------------------------------------------------------------------


def test_maintenance_enable_status_and_disable(stack: Stack) -> None:
    api = ("--api-url", stack.api_url)
    key = as_json(offerhub(stack, "keys", "create", "--name", "cli-mnt", "--scopes", "read,write", "--json", *api))
    assert as_json(offerhub(stack, "maintenance", "status", "--json", *api))["enabled"] is False
    try:
        enabled = as_json(
            offerhub(stack, "maintenance", "enable", "--message", "Upgrading", "--retry-after", "60", "--json", *api)
        )
        assert (enabled["enabled"], enabled["message"], enabled["retry_after_seconds"]) == (True, "Upgrading", 60)
        write = httpx.post(
            stack.api_url + "/users",
            json={"external_user_id": f"cli-{secrets.token_hex(4)}"},
            headers=bearer(key["key"]),
        )
        assert write.status_code == 503 and write.headers["retry-after"] == "60", write.text
        shown = offerhub(stack, "maintenance", "status", *api)
        assert shown.returncode == 0 and "enabled=True" in shown.stdout and "message=Upgrading" in shown.stdout
    finally:
        disabled = offerhub(stack, "maintenance", "disable", "--json", *api)
    assert as_json(disabled)["enabled"] is False
    write = httpx.post(
        stack.api_url + "/users", json={"external_user_id": f"cli-{secrets.token_hex(4)}"}, headers=bearer(key["key"])
    )
    assert write.status_code == 201, write.text
    unauthorised = offerhub(stack, "maintenance", "enable", "--master-key", key["key"], *api)
    assert unauthorised.returncode == 1
    assert as_json(offerhub(stack, "maintenance", "status", "--json", *api))["enabled"] is False


# openapi ------------------------------------------------------------------------------------------


def test_openapi_writes_the_document_to_stdout_or_a_file(stack: Stack, tmp_path: Path) -> None:
    printed = as_json(offerhub(stack, "openapi"))
    assert printed == json.loads(json.dumps(openapi_document()))
    assert printed["openapi"].startswith("3.") and "/orders" in json.dumps(printed["paths"])
    target = tmp_path / "openapi.json"
    written = offerhub(stack, "openapi", "-o", str(target))
    assert written.returncode == 0 and written.stdout == ""
    assert json.loads(target.read_text()) == printed


# sandbox recipes ----------------------------------------------------------------------------------


async def test_sandbox_fund_by_user_id_and_by_address_credits_the_user(
    stack: Stack, client: httpx.AsyncClient, full_key: dict[str, str]
) -> None:
    sandbox = ("--sandbox-url", f"http://127.0.0.1:{stack.sandbox_port}")
    user = await crypto_user(client, full_key)
    api_key = full_key["Authorization"].removeprefix("Bearer ")
    by_id = await run(
        stack, "sandbox", "fund", user["id"], "12.50", *sandbox, "--api-url", stack.api_url, "--api-key", api_key
    )
    assert by_id.returncode == 0, by_id.stderr
    assert json.loads(by_id.stdout)  # the faucet's answer (the transaction)
    by_address = await run(stack, "sandbox", "fund", user["wallet"]["public_key"], "7.50", *sandbox)
    assert by_address.returncode == 0, by_address.stderr

    async def credited() -> bool:
        return bool((await balance_of(client, full_key, user["id"]))["available"] == "20.00")

    await assert_eventually(credited, timeout=15, message="sandbox fund not credited")
    unknown = await run(
        stack,
        "sandbox",
        "fund",
        "usr_doesNotExist000000000",
        "1.00",
        *sandbox,
        "--api-url",
        stack.api_url,
        "--api-key",
        api_key,
    )
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    await assert_books_balanced(stack)


async def test_sandbox_status_and_faults_set_then_clear(stack: Stack, tmp_path: Path) -> None:
    sandbox = ("--sandbox-url", f"http://127.0.0.1:{stack.sandbox_port}")
    status = as_json(await run(stack, "sandbox", "status", "--json", *sandbox))
    assert status["invariants"]["ok"] is True and status["info"]["ledger"]["sequence"] > 0
    table = await run(stack, "sandbox", "status", *sandbox)
    assert table.returncode == 0 and table.stdout.startswith("ledger ") and " ok" in table.stdout

    rule = {
        "id": "cli-rule",
        "target": "horizon",
        "method": "GET",
        "path": "/fee_stats",
        "times": 1,
        "action": "error",
        "status": 503,
    }
    config = tmp_path / "faults.json"
    config.write_text(json.dumps({"rules": [rule]}))
    try:
        from_file = as_json(await run(stack, "sandbox", "faults", "set", f"@{config}", *sandbox))
        assert [r["id"] for r in from_file["rules"]] == ["cli-rule"]
        inline = as_json(await run(stack, "sandbox", "faults", "set", json.dumps({"rules": [rule]}), *sandbox))
        assert inline["version"] > from_file["version"]
        bad = await run(
            stack, "sandbox", "faults", "set", json.dumps({"rules": [{"id": "x", "target": "nowhere"}]}), *sandbox
        )
        assert bad.returncode == 1 and "VALIDATION_ERROR" in bad.stderr
    finally:
        cleared = await run(stack, "sandbox", "faults", "clear", *sandbox)
    assert cleared.returncode == 0 and "faults cleared" in cleared.stdout, cleared.stderr
    async with control(stack) as http:
        assert (await http.get("/faults")).json()["rules"] == []


async def test_sandbox_confirm_topup_and_fail_payout_on_airtm(
    stack: Stack, airtm: AirtmStack, airtm_client: httpx.AsyncClient, full_key: dict[str, str]
) -> None:
    sandbox = ("--sandbox-url", f"http://127.0.0.1:{stack.sandbox_port}")
    async with control(stack) as http:
        user = await airtm_payer(airtm_client, http, full_key)
    created = await airtm_client.post("/topups", json={"user_id": user["id"], "amount": "30.00"}, headers=full_key)
    assert created.status_code == 201, created.text
    topup = created.json()
    confirmed = await run(stack, "sandbox", "confirm-topup", topup["id"], "--email", user["email"], *sandbox)
    payin = as_json(confirmed)
    assert payin["id"] == topup["airtm_payin_id"] and payin["status"] != "CREATED"
    refreshed = (await airtm_client.post(f"/topups/{topup['id']}/refresh", headers=full_key)).json()
    assert refreshed["status"] == "TOPUP_SUCCEEDED", refreshed
    again = await run(stack, "sandbox", "confirm-topup", topup["id"], *sandbox)
    assert again.returncode == 1 and again.stderr.strip()  # already confirmed: the sandbox's error

    async with control(stack) as http:
        await http.put("/airtm/settings", json={"payout_completion": "manual"})
        try:
            made = await airtm_client.post(
                "/withdrawals",
                json={
                    "user_id": user["id"],
                    "amount": "20.00",
                    "destination_type": "airtm_balance",
                    "destination_ref": "airtm-wallet-cli",
                    "commit": True,
                },
                headers=full_key,
            )
            assert made.status_code == 201, made.text
            wd = made.json()
            failed = await run(stack, "sandbox", "fail-payout", wd["id"], "--reason-code", "415074", *sandbox)
        finally:
            await http.put("/airtm/settings", json={"payout_completion": "auto"})
    assert as_json(failed)["status"] == "FAILED"
    after = (await airtm_client.post(f"/withdrawals/{wd['id']}/refresh", headers=full_key)).json()
    assert (after["status"], after["failure_code"]) == ("WITHDRAWAL_FAILED", "415074")
    balance = (await airtm_client.get(f"/users/{user['id']}/balance", headers=full_key)).json()
    assert (balance["available"], balance["reserved"]) == ("30.00", "0.00")
    missing = await run(stack, "sandbox", "fail-payout", "wd_doesNotExist", *sandbox)
    assert missing.returncode == 1
    await assert_books_balanced(stack)


# dispute Signals ----------------------------------------------------------------------------------


async def test_disputes_assign_and_resolve_send_the_signals_and_settle(
    stack: Stack, client: httpx.AsyncClient, full_key: dict[str, str]
) -> None:
    buyer, seller, _order, dispute = await disputed_order(client, stack, full_key, "90.00")
    assigned = await run(
        stack, "disputes", "assign", dispute["id"], "--to", "agent-7", "--note", "mine", "--actor", "ops@example.com"
    )
    outcome = as_json(assigned)
    assert (outcome["status"], outcome["assigned_to"]) == ("UNDER_REVIEW", "agent-7")

    refused = await run(
        stack, "disputes", "resolve", dispute["id"], "--decision", "SPLIT", "--release-amount", "10.00",
        "--refund-amount", "10.00", "--actor", "ops@example.com",
    )  # fmt: skip
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert json.loads(refused.stdout)["refused"]

    resolved = await run(
        stack, "disputes", "resolve", dispute["id"], "--decision", "SPLIT", "--release-amount", "60.00",
        "--refund-amount", "30.00", "--note", "two thirds delivered", "--actor", "ops@example.com",
    )  # fmt: skip
    outcome = as_json(resolved)
    assert (outcome["status"], outcome["resolution_decision"], outcome["resolved_by"]) == (
        "RESOLVED",
        "SPLIT",
        "ops@example.com",
    )

    async def settled() -> bool:
        seller_balance = await balance_of(client, full_key, seller["id"])
        buyer_balance = await balance_of(client, full_key, buyer["id"])
        return bool((seller_balance["available"], buyer_balance["available"]) == ("60.00", "30.00"))

    await assert_eventually(settled, timeout=30, message="the split never paid out")
    await assert_books_balanced(stack)
