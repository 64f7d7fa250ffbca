"""Users, their invisible wallets and on-chain deposits, through the HTTP API."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import asyncpg
import httpx

from tests.api.test_envelope import assert_error
from tests.api.test_idempotency import pg_dsn
from tests.support import Stack, assert_books_balanced, assert_eventually, crypto_user, stack_settings


async def sandbox(stack: Stack) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.sandbox_port}/_sandbox", timeout=30)


async def faucet(stack: Stack, address: str, amount: str) -> dict[str, Any]:
    async with await sandbox(stack) as control:
        response = await control.post("/faucet/usdc", json={"address": address, "amount": amount})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def balance_of(client: httpx.AsyncClient, headers: dict[str, str], user_id: str) -> dict[str, Any]:
    data: dict[str, Any] = (await client.get(f"/users/{user_id}/balance", headers=headers)).json()
    return data


async def test_create_user_wallet_ready_then_deposit_credited(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    started = time.monotonic()
    created = await client.post(
        "/users",
        json={
            "external_user_id": "buyer-4821",
            "email": "ana@example.com",
            "type": "BUYER",
            "metadata": {"plan": "pro"},
        },
        headers=full_key,
    )
    assert created.status_code == 201
    user = created.json()
    assert created.headers["location"] == f"/api/v1/users/{user['id']}"
    assert user["wallet"]["status"] == "PENDING" and user["wallet"]["public_key"].startswith("G")
    assert user["balance"] == {"available": "0.00", "reserved": "0.00", "currency": "USD"}
    assert user["status"] == "ACTIVE" and user["airtm_user_id"] is None and user["metadata"] == {"plan": "pro"}

    async def ready() -> bool:
        got = (await client.get(f"/users/{user['id']}", headers=full_key)).json()
        return bool(got["wallet"]["status"] == "READY")

    await assert_eventually(ready, timeout=5, message="wallet not READY within 5 s")
    ready_after = time.monotonic() - started
    deposit = (await client.get(f"/users/{user['id']}/wallet/deposit", headers=full_key)).json()
    assert deposit["ready"] is True and deposit["address"] == user["wallet"]["public_key"]
    assert deposit["asset"]["issuer"] == stack.env["STELLAR_USDC_ISSUER"]
    wallet = (await client.get(f"/users/{user['id']}/wallet", headers=full_key)).json()
    assert wallet["usdc_trustline"] is True and wallet["onchain_balances"]["usdc"] == "0.0000000"
    assert "secret" not in str(wallet).lower()

    paid_at = time.monotonic()
    await faucet(stack, deposit["address"], "100.00")

    async def credited() -> bool:
        return bool((await balance_of(client, full_key, user["id"]))["available"] == "100.00")

    await assert_eventually(credited, timeout=5, message="deposit not credited within 5 s")
    print(f"wallet READY after {ready_after:.2f} s; deposit credited after {time.monotonic() - paid_at:.2f} s")
    balance = await balance_of(client, full_key, user["id"])
    assert balance["total"] == "100.00" and balance["reserved"] == "0.00"
    verify = (await client.get(f"/users/{user['id']}/balance/verify", headers=full_key)).json()
    assert verify["provider_balance"] == "100.00" and verify["discrepancy"] == "0.00" and verify["provider_verified"]
    txs = (await client.get(f"/users/{user['id']}/wallet/transactions", headers=full_key)).json()
    incoming = [t for t in txs["data"] if t["direction"] == "in" and t["asset_code"] == "USDC"]
    assert incoming and incoming[0]["amount"] == "100.0000000"
    again = await client.post("/users", json={"external_user_id": "buyer-4821"}, headers=full_key)
    assert again.status_code == 200 and again.json()["id"] == user["id"]
    assert again.json()["balance"]["available"] == "100.00"
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        types = [
            r["type"]
            for r in await conn.fetch(
                "SELECT type FROM events WHERE $1 = ANY(user_ids) ORDER BY occurred_at", user["id"]
            )
        ]
    finally:
        await conn.close()
    assert types == ["user.created", "wallet.created", "topup.created", "balance.credited", "topup.succeeded"]
    await assert_books_balanced(stack)


async def test_the_same_payment_seen_twice_credits_once(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await crypto_user(client, full_key)
    await faucet(stack, user["wallet"]["public_key"], "12.34")
    synced = (await client.post(f"/users/{user['id']}/balance/sync", headers=full_key)).json()
    assert synced["available"] == "12.34" and synced["provider_verified"] is True
    conn = await asyncpg.connect(pg_dsn(stack))
    try:  # forget the cursor: the next scan reads the whole history again
        await conn.execute("UPDATE wallets SET deposit_cursor = NULL WHERE id = $1", user["wallet"]["id"])
    finally:
        await conn.close()
    rescanned = (await client.post(f"/users/{user['id']}/balance/sync", headers=full_key)).json()
    assert rescanned["deposits_found"] == 0 and rescanned["available"] == "12.34"
    await assert_books_balanced(stack)


async def test_other_assets_credit_nothing(client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]) -> None:
    from stellar_sdk import Account, Asset, Keypair, TransactionBuilder

    from providers.stellar.keyvault import KeyVault, SealedWallet

    user = await crypto_user(client, full_key)
    address = user["wallet"]["public_key"]
    passphrase = stack.env["STELLAR_NETWORK_PASSPHRASE"]
    fake_issuer = Keypair.random()
    async with httpx.AsyncClient(timeout=30) as http:
        horizon = stack.env["STELLAR_HORIZON_URL"]
        await http.get(stack.env["STELLAR_FRIENDBOT_URL"], params={"addr": fake_issuer.public_key})
        conn = await asyncpg.connect(pg_dsn(stack))
        try:
            sealed = await conn.fetchval("SELECT secret_encrypted FROM wallets WHERE id = $1", user["wallet"]["id"])
        finally:
            await conn.close()
        wallet = SealedWallet(user["wallet"]["id"], user["id"], address, sealed)
        fake = Asset("USDC", fake_issuer.public_key)

        async def submit(source: str, build: Any, sign: Any) -> None:
            sequence = int((await http.get(f"{horizon}/accounts/{source}")).json()["sequence"])
            envelope = build(TransactionBuilder(Account(source, sequence), passphrase, 100)).set_timeout(30).build()
            sign(envelope)
            response = await http.post(f"{horizon}/transactions", data={"tx": envelope.to_xdr()})
            assert response.status_code == 200, response.text

        vault = KeyVault(stack.env["WALLET_ENCRYPTION_KEY"])
        await submit(address, lambda b: b.append_change_trust_op(fake), lambda e: vault.sign(e, wallet))
        await submit(
            fake_issuer.public_key, lambda b: b.append_payment_op(address, fake, "50"), lambda e: e.sign(fake_issuer)
        )
        await submit(
            fake_issuer.public_key,
            lambda b: b.append_payment_op(address, Asset.native(), "7"),
            lambda e: e.sign(fake_issuer),
        )
    synced = (await client.post(f"/users/{user['id']}/balance/sync", headers=full_key)).json()
    assert synced["deposits_found"] == 0 and synced["available"] == "0.00"
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        ignored = await conn.fetchval(
            "SELECT count(*) FROM audit_logs WHERE action = 'DEPOSIT_IGNORED' AND resource_id = $1",
            user["wallet"]["id"],
        )
        topups = await conn.fetchval("SELECT count(*) FROM topups WHERE user_id = $1", user["id"])
    finally:
        await conn.close()
    assert ignored == 1 and topups == 0
    await assert_books_balanced(stack)


async def test_user_validation_and_lookup_errors(client: httpx.AsyncClient, full_key: dict[str, str]) -> None:
    for body in (
        {},
        {"external_user_id": "has space"},
        {"external_user_id": "x" * 129},
        {"external_user_id": "ok", "email": "not-an-email"},
        {"external_user_id": "ok", "type": "ADMIN"},
        {"external_user_id": "ok", "metadata": {str(i): "v" for i in range(21)}},
        {"external_user_id": "ok", "metadata": {"k": 5}},
        {"external_user_id": "ok", "externalUserId": "x"},
    ):
        assert_error(await client.post("/users", json=body, headers=full_key), 400, "VALIDATION_ERROR")
    error = assert_error(await client.get("/users/usr_unknownunknownunknow", headers=full_key), 404, "USER_NOT_FOUND")
    assert error["details"] == {"user_id": "usr_unknownunknownunknow"}
    assert_error(await client.get("/users/ord_wrongprefix", headers=full_key), 404, "USER_NOT_FOUND")
    assert_error(await client.get("/users/usr_x/balance", headers=full_key), 404, "USER_NOT_FOUND")
    assert_error(
        await client.post("/users/usr_x/airtm/link", json={"email": "a@b.co"}, headers=full_key),
        409,
        "PROVIDER_NOT_ENABLED",
    )
    assert_error(await client.get("/users?type=ADMIN", headers=full_key), 400, "VALIDATION_ERROR")
    assert_error(await client.get("/users?created_after=yesterday", headers=full_key), 400, "VALIDATION_ERROR")


async def test_list_filters_and_pages(client: httpx.AsyncClient, full_key: dict[str, str]) -> None:
    import secrets

    tag = secrets.token_hex(4)
    ids = []
    for i in range(3):
        response = await client.post(
            "/users",
            json={"external_user_id": f"list-{tag}-{i}", "type": "SELLER", "email": f"Seller.{tag}.{i}@Example.com"},
            headers=full_key,
        )
        ids.append(response.json()["id"])
    by_email = (await client.get(f"/users?email=seller.{tag}.1@example.com", headers=full_key)).json()
    assert [u["id"] for u in by_email["data"]] == [ids[1]]
    by_external = (await client.get(f"/users?external_user_id=list-{tag}-2", headers=full_key)).json()
    assert [u["id"] for u in by_external["data"]] == [ids[2]]
    first = (await client.get("/users?type=SELLER&limit=2", headers=full_key)).json()
    assert [u["id"] for u in first["data"]] == ids[::-1][:2] and first["pagination"]["has_more"]
    rest = (
        await client.get(f"/users?type=SELLER&limit=1&cursor={first['pagination']['next_cursor']}", headers=full_key)
    ).json()
    assert rest["data"][0]["id"] == ids[0]
    future = (await client.get("/users?created_after=2999-01-01", headers=full_key)).json()
    assert future == {"data": [], "pagination": {"has_more": False, "next_cursor": None}}


async def test_wallet_seed_never_enters_workflow_history(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    from stellar_sdk import Keypair
    from temporalio.client import Client

    from api.payload_codec import decode_messages, payload_codec
    from providers.stellar.keyvault import KeyVault, wallet_context

    user = await crypto_user(client, full_key)
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        sealed = await conn.fetchval("SELECT secret_encrypted FROM wallets WHERE id = $1", user["wallet"]["id"])
    finally:
        await conn.close()
    seed = KeyVault(stack.env["WALLET_ENCRYPTION_KEY"]).open_bytes(
        sealed, wallet_context(user["wallet"]["id"], user["id"])
    )
    secret = Keypair.from_raw_ed25519_seed(seed).secret
    temporal = await Client.connect(stack.env["TEMPORAL_ADDRESS"])
    history = await temporal.get_workflow_handle(user["wallet"]["id"]).fetch_history()
    codec = payload_codec(stack_settings(stack))
    if codec is not None:  # read what is stored in clear and what only the key opens
        await decode_messages(codec, history.events)
    text = history.to_json() + "\n".join(decoded_payloads(history.to_json_dict()))
    assert user["wallet"]["public_key"] in text  # the decoded activity result is there: the check is real
    for forbidden in (secret, sealed, sealed.split(".")[-1]):
        assert forbidden not in text
    worker_logs = "".join(stack.log_text(p.name) for p in stack.processes if p.name.startswith("worker"))
    assert secret not in worker_logs and sealed not in worker_logs


def decoded_payloads(node: Any) -> list[str]:
    """Every payload `data` of a history, base64-decoded (that is where inputs and results live)."""
    import base64
    import binascii

    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "data" and isinstance(value, str):
                with contextlib.suppress(binascii.Error, ValueError):
                    found.append(base64.b64decode(value).decode("utf-8", errors="replace"))
            else:
                found += decoded_payloads(value)
    elif isinstance(node, list):
        for item in node:
            found += decoded_payloads(item)
    return found
