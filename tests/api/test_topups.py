"""Top-up reads: an on-chain deposit is a `crypto` top-up, listed and read like any other."""

from __future__ import annotations

import httpx

from tests.api.orders_support import funded_user
from tests.support import Stack


async def test_a_deposit_reads_as_a_succeeded_crypto_topup(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await funded_user(client, stack, full_key, "7.25")
    listed = await client.get("/topups", params={"user_id": user["id"]}, headers=full_key)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["pagination"] == {"has_more": False, "next_cursor": None}
    [topup] = page["data"]
    assert topup["id"].startswith("topup_") and topup["user_id"] == user["id"]
    assert (topup["provider"], topup["status"], topup["amount"], topup["currency"]) == (
        "crypto",
        "TOPUP_SUCCEEDED",
        "7.25",
        "USD",
    )
    assert topup["stellar_operation_id"] and topup["stellar_transaction_hash"] and topup["source_address"]
    assert topup["confirmation_uri"] is None and topup["airtm_payin_id"] is None
    assert topup["completed_at"] is not None and topup["created_at"].endswith("Z")

    one = await client.get(f"/topups/{topup['id']}", headers=full_key)
    assert one.status_code == 200 and one.json() == topup

    for query, count in (
        ({"user_id": user["id"], "provider": "airtm"}, 0),
        ({"user_id": user["id"], "status": "TOPUP_FAILED"}, 0),
        ({"user_id": user["id"], "provider": "crypto", "status": "TOPUP_SUCCEEDED"}, 1),
    ):
        found = await client.get("/topups", params=query, headers=full_key)
        assert found.status_code == 200 and len(found.json()["data"]) == count, (query, found.text)


async def test_topup_reads_refuse_bad_input(client: httpx.AsyncClient, full_key: dict[str, str]) -> None:
    for topup_id in ("topup_" + "x" * 21, "ord_nope"):
        missing = await client.get(f"/topups/{topup_id}", headers=full_key)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "TOPUP_NOT_FOUND"
    for query in (
        {"user_id": "ord_123"},
        {"status": "DONE"},
        {"provider": "paypal"},
        {"limit": "0"},
        {"cursor": "topup_" + "y" * 21},
        {"created_after": "yesterday"},
    ):
        refused = await client.get("/topups", params=query, headers=full_key)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "VALIDATION_ERROR", query


async def test_topup_reads_need_a_read_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/topups")).status_code == 401
