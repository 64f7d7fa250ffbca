"""Hostile input (api.md §1.2) is a 400 that changes nothing, on every channel: body, query,
path, headers, and the operator Signals typed into the Temporal UI."""

from __future__ import annotations

import json
import uuid

import asyncpg
import httpx
import pytest

from tests.api.orders_support import order_in
from tests.api.test_disputes import disputed_order, temporal_signal
from tests.api.test_envelope import assert_error
from tests.api.test_idempotency import pg_dsn
from tests.support import Stack, assert_books_balanced, assert_eventually, crypto_user

NESTED_40 = json.dumps({"external_user_id": "deep", "metadata": {}})[:-2] + "[" * 40 + "]" * 40 + "}}"


def as_json(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"external_user_id": "a\\u0000b"}', "external_user_id"),
        ('{"external_user_id": "ok", "email": "a\\u0007@example.com"}', "email"),
        ('{"external_user_id": "ok", "metadata": {"note": "x\\u0000"}}', "metadata.note"),
        ('{"external_user_id": "ok", "metadata": {"k\\u0000": "v"}}', "metadata"),
        ('{"external_user_id": "\\ud800"}', "external_user_id"),
        ("[" * 5000 + "]" * 5000, "body"),
        ('{"a":' * 3000 + "1" + "}" * 3000, "body"),
        (NESTED_40, "body"),
        ('{"external_user_id": ' + "9" * 5000 + "}", "body"),
    ],
)
async def test_hostile_bodies_are_400_naming_the_field(
    client: httpx.AsyncClient, full_key: dict[str, str], body: str, field: str
) -> None:
    before = (await client.get("/users", headers=full_key, params={"limit": 1})).json()
    response = await client.post("/users", headers=as_json(full_key), content=body.encode("utf-8", "surrogatepass"))
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["details"]["fields"][0]["field"] == field
    after = (await client.get("/users", headers=full_key, params={"limit": 1})).json()
    assert after["data"][:1] == before["data"][:1]  # nothing created


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/orders", {"status": "OPEN\x00"}, "status"),
        ("/orders", {"buyer_id": "usr_\x01"}, "buyer_id"),
        ("/events", {"type": "order.\x00"}, "type"),
        ("/orders/ord_%00abc", {}, "order_id"),
        ("/users/usr_a%1Bb/balance", {}, "user_id"),
    ],
)
async def test_control_characters_in_query_and_path_are_400(
    client: httpx.AsyncClient, full_key: dict[str, str], path: str, params: dict[str, str], field: str
) -> None:
    error = assert_error(await client.get(path, params=params, headers=full_key), 400, "VALIDATION_ERROR")
    assert error["details"]["fields"][0]["field"] == field


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "２０２６-01-01", "2026-01-01T00:00:00"]
)
async def test_timestamps_outside_utc_years_are_400(
    client: httpx.AsyncClient, full_key: dict[str, str], moment: str
) -> None:
    for path in ("/orders", "/events", "/audit/logs"):
        response = await client.get(path, params={"created_after": moment}, headers=full_key)
        assert_error(response, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("amount", ["１２.００", "12.0٠", "1234567890123456.00", "9" * 5000 + ".00", "+1.00", " 1.00"])
async def test_money_is_ascii_and_at_most_15_digits(
    client: httpx.AsyncClient, full_key: dict[str, str], amount: str
) -> None:
    buyer = await crypto_user(client, full_key)
    seller = await crypto_user(client, full_key)
    response = await client.post(
        "/orders",
        headers=full_key,
        json={"buyer_id": buyer["id"], "seller_id": seller["id"], "amount": amount, "title": "x"},
    )
    error = assert_error(response, 400, "INVALID_AMOUNT_FORMAT")
    assert error["details"]["fields"][0]["field"] == "amount"


async def test_fifteen_digits_are_money(client: httpx.AsyncClient, full_key: dict[str, str]) -> None:
    """Well-formed: the order limits answer, not the format rule."""
    buyer = await crypto_user(client, full_key)
    seller = await crypto_user(client, full_key)
    response = await client.post(
        "/orders",
        headers=full_key,
        json={"buyer_id": buyer["id"], "seller_id": seller["id"], "amount": "999999999999999.99", "title": "x"},
    )
    assert_error(response, 400, "INVALID_AMOUNT")


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "data:text/html,<b>x</b>", "ftp://files.example/x", "//files.example/x", "https://"],
)
async def test_evidence_must_be_a_web_url(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], url: str
) -> None:
    buyer = await crypto_user(client, full_key)
    seller = await crypto_user(client, full_key)
    order = await order_in(client, full_key, buyer["id"], seller["id"], "10.00", [])
    response = await client.post(
        f"/orders/{order['id']}/resolution/dispute",
        headers=full_key,
        json={"opened_by": "BUYER", "reason": "OTHER", "evidence": [url]},
    )
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["details"]["fields"][0]["field"].startswith("evidence")


@pytest.mark.parametrize("key", ["a\x00b", "ключ", "a" * 256, "two words"])
async def test_malformed_idempotency_keys(client: httpx.AsyncClient, full_key: dict[str, str], key: str) -> None:
    headers = {name.encode(): value.encode() for name, value in {**full_key, "Idempotency-Key": key}.items()}
    try:
        response = await client.post("/users", headers=headers, json={"external_user_id": f"ext-{uuid.uuid4().hex}"})
    except httpx.LocalProtocolError:
        return  # the client itself will not send such a header: nothing reached the API
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["details"]["header"] == "Idempotency-Key"


async def test_hostile_operator_signals_are_refused_and_the_dispute_goes_on(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    """A 5000-digit amount, a NUL in a note, a non-text actor: each Signal is refused and
    audited (FAILURE), the workflow is not wedged, and a good decision still settles."""
    *_, dispute = await disputed_order(client, stack, full_key, "40.00")
    temporal_signal(stack, dispute["id"], "assign", {"assigned_to": "agent\u0000x", "actor": "ops@example.com"})
    temporal_signal(stack, dispute["id"], "assign", {"assigned_to": "agent-7", "actor": "ops\u0000@example.com"})

    async def under_review() -> bool:
        got = (await client.get(f"/disputes/{dispute['id']}", headers=full_key)).json()
        return bool(got["status"] == "UNDER_REVIEW")

    await assert_eventually(under_review, timeout=10)
    for payload in (
        {"decision": "SPLIT", "release_amount": "9" * 5000 + ".00", "refund_amount": "1.00", "actor": "ops"},
        {"decision": "FULL_REFUND", "note": "bad\u0000note", "actor": "ops"},
        {"decision": "FULL_RELEASE", "actor": {"nested": ["x"] * 3}, "resolved_by": "\u001b[31mred"},
    ):
        temporal_signal(stack, dispute["id"], "resolve", payload)
    conn = await asyncpg.connect(pg_dsn(stack))
    try:

        async def four_refusals() -> bool:
            found = await conn.fetchval(
                "SELECT count(*) FROM audit_logs WHERE resource_id = $1 AND result = 'FAILURE'", dispute["id"]
            )
            return bool(found == 4)

        await assert_eventually(four_refusals, timeout=15, message="refusals not audited")
        assigned = await conn.fetchrow(
            "SELECT actor_type, actor_id, payload_after FROM audit_logs"
            " WHERE resource_id = $1 AND action = 'DISPUTE_ASSIGNED' AND result = 'SUCCESS'",
            dispute["id"],
        )
    finally:
        await conn.close()
    assert assigned["actor_type"] == "operator" and assigned["actor_id"] == "ops@example.com"
    assert json.loads(assigned["payload_after"])["actor_claimed"] is True
    still = (await client.get(f"/disputes/{dispute['id']}", headers=full_key)).json()
    assert still["status"] == "UNDER_REVIEW"
    temporal_signal(stack, dispute["id"], "resolve", {"decision": "FULL_REFUND", "actor": "ops@example.com"})

    async def resolved() -> bool:
        got = (await client.get(f"/disputes/{dispute['id']}", headers=full_key)).json()
        return bool(got["status"] == "RESOLVED")

    await assert_eventually(resolved, timeout=20)
    await assert_books_balanced(stack)


async def test_nothing_hostile_left_a_500(client: httpx.AsyncClient, full_key: dict[str, str]) -> None:
    """Non-JSON, wrong content types and empty bodies on an action with an optional body."""
    for content, content_type in (
        (b"\xff\xfe\x00", "application/json"),
        (b"NaN", "application/json"),
        (b"{}", "text/plain"),
    ):
        response = await client.post("/users", headers={**full_key, "content-type": content_type}, content=content)
        assert_error(response, 400, "VALIDATION_ERROR")
