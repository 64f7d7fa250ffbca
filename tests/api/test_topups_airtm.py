"""Airtm top-ups (api.md §6, domain.md §4.2): created with their pay-in, credited exactly once when
Airtm confirms (read by refresh, the checkout callback, a Signal or the poll), never credited when
the pay-in fails or is canceled, canceled by the API or at expiry. Webhooks are not needed: every
test passes with the sandbox's Airtm webhooks unanswered, paused, or answered."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.client import Client

from api.payload_codec import data_converter
from cli.stack import free_port
from models.errors import ErrorCode, OfferhubError
from models.states import TOPUP, TopupStatus
from models.webhooks_io import AIRTM_PAYIN_SIGNAL, ProviderEvent
from tests.api.orders_support import funded_user
from tests.support import AirtmStack, Stack, assert_books_balanced, assert_eventually, stack_settings

T = TopupStatus
RETURN_URL = "https://market.example/wallet/ok"
CANCEL_URL = "https://market.example/wallet/cancel"
FAST_QUEUE = "offerhub-test-airtm-fast"


# fixtures and helpers -----------------------------------------------------------------------------


@pytest.fixture
async def control(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.sandbox_port}/_sandbox", timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def fast_airtm(stack: Stack, airtm: AirtmStack) -> Iterator[str]:
    """An airtm-mode worker and API polling pay-ins every second, expiring top-ups after 6 s."""
    overrides = {
        "PAYMENT_PROVIDER": "airtm",
        "TEMPORAL_TASK_QUEUE": FAST_QUEUE,
        "TOPUP_POLL_INTERVAL_SECONDS": "1",
        "TOPUP_EXPIRY_SECONDS": "6",
    }
    worker = stack.spawn("worker-airtm-fast", ["worker"], env={**stack.env, **overrides})
    api_url = stack.spawn_api("api-airtm-fast", overrides)
    api = stack.processes[-1]
    yield api_url
    for process in (api, worker):
        process.stop()
        stack.processes.remove(process)
    assert worker.process.poll() is not None


@pytest.fixture
async def fast_client(fast_airtm: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fast_airtm, timeout=30) as http:
        yield http


async def linked_user(
    api: httpx.AsyncClient, control: httpx.AsyncClient, headers: dict[str, str], balance: str = "500.00"
) -> dict[str, Any]:
    """A user linked to an active, verified sandbox Airtm account holding `balance`."""
    email = f"payer-{secrets.token_hex(5)}@example.com"
    made = await control.post("/airtm/users", json={"email": email, "balance": balance})
    assert made.status_code == 201, made.text
    created = await api.post("/users", json={"external_user_id": f"ext-{secrets.token_hex(6)}"}, headers=headers)
    assert created.status_code == 201, created.text
    linked = await api.post(f"/users/{created.json()['id']}/airtm/link", json={"email": email}, headers=headers)
    assert linked.status_code == 200, linked.text
    return {**linked.json(), "email": email}


async def create_topup(
    api: httpx.AsyncClient, headers: dict[str, str], user_id: str, amount: str = "25.00", **fields: Any
) -> dict[str, Any]:
    body = {"user_id": user_id, "amount": amount, "return_url": RETURN_URL, "cancel_url": CANCEL_URL, **fields}
    created = await api.post("/topups", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/api/v1/topups/{created.json()['id']}"
    topup: dict[str, Any] = created.json()
    return topup


async def confirm(control: httpx.AsyncClient, topup: dict[str, Any], email: str, **fields: Any) -> dict[str, Any]:
    confirmed = await control.post(f"/airtm/payins/{topup['id']}/confirm", json={"email": email, **fields})
    assert confirmed.status_code == 200, confirmed.text
    payin: dict[str, Any] = confirmed.json()
    return payin


async def refresh(api: httpx.AsyncClient, headers: dict[str, str], topup_id: str) -> dict[str, Any]:
    refreshed = await api.post(f"/topups/{topup_id}/refresh", headers=headers)
    assert refreshed.status_code == 200, refreshed.text
    topup: dict[str, Any] = refreshed.json()
    return topup


async def available(api: httpx.AsyncClient, headers: dict[str, str], user_id: str) -> str:
    balance = (await api.get(f"/users/{user_id}/balance", headers=headers)).json()
    return str(balance["available"])


async def payin_of(control: httpx.AsyncClient, topup_id: str) -> dict[str, Any]:
    [payin] = (await control.get("/airtm/payins", params={"code": topup_id})).json()
    found: dict[str, Any] = payin
    return found


async def rows(stack: Stack, sql: str, **params: Any) -> list[Any]:
    engine = create_async_engine(stack.database_url)
    try:
        async with engine.connect() as connection:
            return list((await connection.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


async def event_types(stack: Stack, topup_id: str) -> list[str]:
    found = await rows(stack, "SELECT type FROM events WHERE resource_id = :id ORDER BY occurred_at, id", id=topup_id)
    return [row[0] for row in found]


async def deposits_of(stack: Stack, topup_id: str) -> list[tuple[str, int]]:
    found = await rows(
        stack,
        "SELECT idempotency_key, amount FROM ledger_entries WHERE source_id = :id AND entry_type = 'DEPOSIT'",
        id=topup_id,
    )
    return [(row[0], row[1]) for row in found]


async def books_and_sandbox_ok(stack: Stack, control: httpx.AsyncClient) -> None:
    await assert_books_balanced(stack)
    invariants = (await control.get("/invariants")).json()
    assert invariants["ok"], invariants


# the top-up machine as data -----------------------------------------------------------------------

LEGAL = {
    (T.TOPUP_CREATED, T.TOPUP_AWAITING_USER_CONFIRMATION),
    (T.TOPUP_CREATED, T.TOPUP_FAILED),
    (T.TOPUP_CREATED, T.TOPUP_SUCCEEDED),
    (T.TOPUP_CREATED, T.TOPUP_CANCELED),
    (T.TOPUP_AWAITING_USER_CONFIRMATION, T.TOPUP_CANCELED),
    (T.TOPUP_AWAITING_USER_CONFIRMATION, T.TOPUP_PROCESSING),
    (T.TOPUP_AWAITING_USER_CONFIRMATION, T.TOPUP_SUCCEEDED),
    (T.TOPUP_AWAITING_USER_CONFIRMATION, T.TOPUP_FAILED),
    (T.TOPUP_PROCESSING, T.TOPUP_SUCCEEDED),
    (T.TOPUP_PROCESSING, T.TOPUP_FAILED),
}
CANCELABLE = {T.TOPUP_CREATED, T.TOPUP_AWAITING_USER_CONFIRMATION}


@pytest.mark.parametrize("current", list(T))
def test_every_topup_state_allows_exactly_its_actions_and_transitions(current: TopupStatus) -> None:
    for target in T:
        assert TOPUP.can_transition(current, target) == ((current, target) in LEGAL), (current, target)
    TOPUP.require("refresh", current, "topup_x")  # refresh is legal everywhere (a no-op when terminal)
    if current in CANCELABLE:
        TOPUP.require("cancel", current, "topup_x")
    else:
        with pytest.raises(OfferhubError) as refused:
            TOPUP.require("cancel", current, "topup_x")
        assert refused.value.code is ErrorCode.INVALID_STATE
        assert refused.value.details == {
            "topup_id": "topup_x",
            "current_state": current,
            "allowed_states": [T.TOPUP_CREATED, T.TOPUP_AWAITING_USER_CONFIRMATION],
        }
    assert (current in TOPUP.terminal) == (current in {T.TOPUP_SUCCEEDED, T.TOPUP_FAILED, T.TOPUP_CANCELED})
    if current in TOPUP.terminal:
        assert not any(TOPUP.can_transition(current, target) for target in T)


# credited once ------------------------------------------------------------------------------------


async def test_a_confirmed_topup_is_credited_once_by_refresh(
    airtm_client: httpx.AsyncClient, control: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await linked_user(airtm_client, control, full_key)
    topup = await create_topup(airtm_client, full_key, user["id"], "25.00", description="Wallet top-up")
    assert (topup["provider"], topup["status"], topup["amount"], topup["currency"]) == (
        "airtm",
        T.TOPUP_AWAITING_USER_CONFIRMATION,
        "25.00",
        "USD",
    )
    assert topup["airtm_payin_id"] and topup["confirmation_uri"].endswith(f"/payin/{topup['airtm_payin_id']}")
    assert topup["expires_at"] and topup["completed_at"] is None and topup["description"] == "Wallet top-up"
    assert (topup["return_url"], topup["cancel_url"]) == (RETURN_URL, CANCEL_URL)
    payin = await payin_of(control, topup["id"])
    assert (payin["id"], payin["status"], payin["amount"]) == (topup["airtm_payin_id"], "CREATED", 25)

    await confirm(control, topup, user["email"])
    done = await refresh(airtm_client, full_key, topup["id"])
    assert done["status"] == T.TOPUP_SUCCEEDED and done["completed_at"] is not None
    assert await available(airtm_client, full_key, user["id"]) == "25.00"
    again = await refresh(airtm_client, full_key, topup["id"])
    assert again == done  # terminal: answered as stored
    assert await available(airtm_client, full_key, user["id"]) == "25.00"
    assert await deposits_of(stack, topup["id"]) == [(f"topup:{topup['id']}:credit", 2500)]
    types = await event_types(stack, topup["id"])
    assert types[:2] == ["topup.created", "topup.confirmation_required"] and types[-1] == "topup.succeeded"
    assert "topup.processing" not in types  # read straight as CONFIRMED: the machine's jump
    listed = (await airtm_client.get("/topups", params={"user_id": user["id"]}, headers=full_key)).json()
    assert [t["id"] for t in listed["data"]] == [topup["id"]] and listed["data"][0] == done
    await books_and_sandbox_ok(stack, control)


async def test_a_processing_payin_moves_the_topup_through_processing_then_credits(
    airtm_client: httpx.AsyncClient, control: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await linked_user(airtm_client, control, full_key)
    topup = await create_topup(airtm_client, full_key, user["id"], "12.34")
    await confirm(control, topup, user["email"], processing_ms=1500)
    processing = await refresh(airtm_client, full_key, topup["id"])
    assert processing["status"] == T.TOPUP_PROCESSING
    assert await available(airtm_client, full_key, user["id"]) == "0.00"

    async def succeeded() -> bool:
        return bool((await refresh(airtm_client, full_key, topup["id"]))["status"] == T.TOPUP_SUCCEEDED)

    await assert_eventually(succeeded, timeout=15, interval=0.3)
    assert await available(airtm_client, full_key, user["id"]) == "12.34"
    assert "topup.processing" in await event_types(stack, topup["id"])
    assert len(await deposits_of(stack, topup["id"])) == 1
    await books_and_sandbox_ok(stack, control)


async def test_an_airtm_signal_rereads_the_payin_and_never_trusts_its_body(
    airtm_client: httpx.AsyncClient, control: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    """What the webhook endpoint sends: a lying body changes nothing; after Airtm confirms, a
    Signal (and its duplicate) credits once."""
    user = await linked_user(airtm_client, control, full_key)
    topup = await create_topup(airtm_client, full_key, user["id"], "8.00")
    temporal = await Client.connect(stack.env["TEMPORAL_ADDRESS"], data_converter=data_converter(stack_settings(stack)))
    handle = temporal.get_workflow_handle(topup["id"])
    lie = ProviderEvent(
        provider="airtm",
        event_id="msg_forged",
        type="payin.confirmed",
        data={"code": topup["id"], "status": "CONFIRMED"},
    )
    await handle.signal(AIRTM_PAYIN_SIGNAL, lie)
    await handle.signal(AIRTM_PAYIN_SIGNAL, lie)
    state = await airtm_client.get(f"/topups/{topup['id']}", headers=full_key)
    assert state.json()["status"] == T.TOPUP_AWAITING_USER_CONFIRMATION

    await confirm(control, topup, user["email"])
    for event_id in ("msg_1", "msg_1", "msg_2"):  # a repeat and a second delivery
        await handle.signal(AIRTM_PAYIN_SIGNAL, lie.model_copy(update={"event_id": event_id}))

    async def credited() -> bool:
        found = (await airtm_client.get(f"/topups/{topup['id']}", headers=full_key)).json()
        return bool(found["status"] == T.TOPUP_SUCCEEDED)

    await assert_eventually(credited, timeout=10)
    assert await available(airtm_client, full_key, user["id"]) == "8.00"
    assert len(await deposits_of(stack, topup["id"])) == 1
    await books_and_sandbox_ok(stack, control)


async def test_a_lost_webhook_is_caught_by_polling(
    fast_client: httpx.AsyncClient, control: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await linked_user(fast_client, control, full_key)
    paused = await control.post("/webhooks/pause")
    assert paused.status_code == 200, paused.text
    try:
        topup = await create_topup(fast_client, full_key, user["id"], "40.00")
        await confirm(control, topup, user["email"])

        async def credited() -> bool:
            found = (await fast_client.get(f"/topups/{topup['id']}", headers=full_key)).json()
            return bool(found["status"] == T.TOPUP_SUCCEEDED)

        await assert_eventually(credited, timeout=15, interval=0.2, message="polling never read the pay-in")
    finally:
        await control.post("/webhooks/resume")
    assert await available(fast_client, full_key, user["id"]) == "40.00"
    assert len(await deposits_of(stack, topup["id"])) == 1
    await books_and_sandbox_ok(stack, control)


# credited nothing ---------------------------------------------------------------------------------


async def test_a_failed_payin_fails_the_topup_and_credits_nothing(
    airtm_client: httpx.AsyncClient, control: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await linked_user(airtm_client, control, full_key)
    topup = await create_topup(airtm_client, full_key, user["id"], "30.00")
    await confirm(control, topup, user["email"], result="FAILED", failure_reason="CARD_DECLINED")
    failed = await refresh(airtm_client, full_key, topup["id"])
    assert (failed["status"], failed["failure_code"], failed["failure_reason"]) == (
        T.TOPUP_FAILED,
        "CARD_DECLINED",
        "CARD_DECLINED",
    )
    assert failed["completed_at"] is not None
    assert await available(airtm_client, full_key, user["id"]) == "0.00"
    assert await deposits_of(stack, topup["id"]) == []
    assert (await event_types(stack, topup["id"]))[-1] == "topup.failed"
    late = await airtm_client.post(f"/topups/{topup['id']}/cancel", headers=full_key)
    assert late.status_code == 409 and late.json()["error"]["details"]["current_state"] == T.TOPUP_FAILED
    await books_and_sandbox_ok(stack, control)


async def test_a_payin_canceled_at_airtm_cancels_the_topup(
    airtm_client: httpx.AsyncClient, control: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await linked_user(airtm_client, control, full_key)
    topup = await create_topup(airtm_client, full_key, user["id"], "9.99")
    assert (await control.post(f"/airtm/payins/{topup['id']}/cancel")).status_code == 200
    canceled = await refresh(airtm_client, full_key, topup["id"])
    assert (canceled["status"], canceled["failure_code"]) == (T.TOPUP_CANCELED, "CANCELED")
    assert await deposits_of(stack, topup["id"]) == []
    payload = await rows(
        stack, "SELECT payload FROM events WHERE resource_id = :id AND type = 'topup.canceled'", id=topup["id"]
    )
    assert payload[0][0]["canceled_by"] == "provider"
    await books_and_sandbox_ok(stack, control)


async def test_cancel_before_confirmation_cancels_the_payin_at_airtm(
    airtm_client: httpx.AsyncClient, control: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await linked_user(airtm_client, control, full_key)
    topup = await create_topup(airtm_client, full_key, user["id"], "15.00")
    canceled = await airtm_client.post(
        f"/topups/{topup['id']}/cancel", json={"reason": "changed my mind"}, headers=full_key
    )
    assert canceled.status_code == 200, canceled.text
    body = canceled.json()
    assert (body["status"], body["failure_code"], body["failure_reason"]) == (
        T.TOPUP_CANCELED,
        "CANCELED",
        "changed my mind",
    )
    assert (await payin_of(control, topup["id"]))["status"] == "CANCELED"
    late = await control.post(f"/airtm/payins/{topup['id']}/confirm", json={"email": user["email"]})
    assert late.status_code == 409  # the user can no longer pay it

    again = await airtm_client.post(f"/topups/{topup['id']}/cancel", headers=full_key)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["details"] == {
        "topup_id": topup["id"],
        "current_state": T.TOPUP_CANCELED,
        "allowed_states": [T.TOPUP_CREATED, T.TOPUP_AWAITING_USER_CONFIRMATION],
    }
    assert (await refresh(airtm_client, full_key, topup["id"]))["status"] == T.TOPUP_CANCELED
    assert await available(airtm_client, full_key, user["id"]) == "0.00"
    payload = await rows(
        stack, "SELECT payload FROM events WHERE resource_id = :id AND type = 'topup.canceled'", id=topup["id"]
    )
    assert [p[0]["canceled_by"] for p in payload] == ["api"]
    await books_and_sandbox_ok(stack, control)


async def test_cancel_after_the_user_confirmed_is_refused_and_the_topup_proceeds(
    airtm_client: httpx.AsyncClient, control: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await linked_user(airtm_client, control, full_key)
    await control.post("/webhooks/pause")  # no webhook may tell the workflow before the cancel does
    try:
        topup = await create_topup(airtm_client, full_key, user["id"], "20.00")
        await confirm(control, topup, user["email"], processing_ms=2000)
        refused = await airtm_client.post(f"/topups/{topup['id']}/cancel", headers=full_key)
    finally:
        await control.post("/webhooks/resume")
    assert refused.status_code == 502, refused.text
    error = refused.json()["error"]
    assert error["code"] == "PROVIDER_ERROR" and error["details"]["topup_id"] == topup["id"]
    state = (await airtm_client.get(f"/topups/{topup['id']}", headers=full_key)).json()
    assert state["status"] == T.TOPUP_PROCESSING
    processing = await airtm_client.post(f"/topups/{topup['id']}/cancel", headers=full_key)
    assert processing.status_code == 409 and processing.json()["error"]["details"]["current_state"] == (
        T.TOPUP_PROCESSING
    )

    async def succeeded() -> bool:
        return bool((await refresh(airtm_client, full_key, topup["id"]))["status"] == T.TOPUP_SUCCEEDED)

    await assert_eventually(succeeded, timeout=15, interval=0.3)
    assert await available(airtm_client, full_key, user["id"]) == "20.00"
    for terminal_cancel in range(2):
        late = await airtm_client.post(f"/topups/{topup['id']}/cancel", headers=full_key)
        assert late.status_code == 409, (terminal_cancel, late.text)
    audited = await rows(
        stack,
        "SELECT count(*) FROM audit_logs WHERE resource_id = :id AND action = 'TOPUP_CANCEL' AND result = 'FAILURE'",
        id=topup["id"],
    )
    assert audited[0][0] == 3
    await books_and_sandbox_ok(stack, control)


async def test_an_unconfirmed_topup_expires_and_its_payin_is_canceled(
    fast_client: httpx.AsyncClient, control: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await linked_user(fast_client, control, full_key)
    topup = await create_topup(fast_client, full_key, user["id"], "11.00")

    async def expired() -> dict[str, Any] | None:
        found: dict[str, Any] = (await fast_client.get(f"/topups/{topup['id']}", headers=full_key)).json()
        return found if found["status"] == T.TOPUP_CANCELED else None

    found = await assert_eventually(expired, timeout=20, interval=0.3, message="the top-up never expired")
    assert found is not None and found["failure_code"] == "EXPIRED" and found["completed_at"] is not None
    assert (await payin_of(control, topup["id"]))["status"] == "CANCELED"
    payload = await rows(
        stack, "SELECT payload FROM events WHERE resource_id = :id AND type = 'topup.canceled'", id=topup["id"]
    )
    assert payload[0][0]["canceled_by"] == "expiry"
    assert await deposits_of(stack, topup["id"]) == []
    await books_and_sandbox_ok(stack, control)


# the way back from checkout -----------------------------------------------------------------------


async def test_the_callback_rereads_the_payin_and_redirects_by_state(
    airtm_client: httpx.AsyncClient, control: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await linked_user(airtm_client, control, full_key)
    paid = await create_topup(airtm_client, full_key, user["id"], "5.00")
    await confirm(control, paid, user["email"])
    back = await airtm_client.get(f"/topups/{paid['id']}/callback", params={"status": "canceled", "code": "lie"})
    assert back.status_code == 302, back.text
    assert back.headers["location"] == f"{RETURN_URL}?topup_id={paid['id']}&status={T.TOPUP_SUCCEEDED}"
    assert await available(airtm_client, full_key, user["id"]) == "5.00"

    left = await create_topup(airtm_client, full_key, user["id"], "6.00", return_url=None, cancel_url=None)
    away = await airtm_client.get(f"/topups/{left['id']}/callback", params={"status": "confirmed"})
    assert away.status_code == 302
    assert away.headers["location"] == (
        f"http://localhost:3000/topups/canceled?topup_id={left['id']}&status={T.TOPUP_AWAITING_USER_CONFIRMATION}"
    )
    unknown = await airtm_client.get("/topups/topup_nope/callback")
    assert unknown.status_code == 302
    assert unknown.headers["location"] == "http://localhost:3000/topups/canceled?topup_id=topup_nope"
    await books_and_sandbox_ok(stack, control)


# refusals -----------------------------------------------------------------------------------------


async def test_crypto_mode_refuses_topup_creation(client: httpx.AsyncClient, full_key: dict[str, str]) -> None:
    refused = await client.post("/topups", json={"user_id": "usr_x", "amount": "10.00"}, headers=full_key)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == {
        "code": "PROVIDER_NOT_ENABLED",
        "message": refused.json()["error"]["message"],
        "details": {"payment_provider": "crypto", "required_provider": "airtm"},
    }


async def test_a_crypto_topup_is_refreshed_as_stored_and_never_canceled(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await funded_user(client, stack, full_key, "2.00")
    [deposit] = (await client.get("/topups", params={"user_id": user["id"]}, headers=full_key)).json()["data"]
    assert (await refresh(client, full_key, deposit["id"])) == deposit
    refused = await client.post(f"/topups/{deposit['id']}/cancel", json={"reason": "no"}, headers=full_key)
    assert refused.status_code == 409, refused.text
    details = refused.json()["error"]["details"]
    assert (details["current_state"], details["allowed_states"]) == (T.TOPUP_SUCCEEDED, [])
    await assert_books_balanced(stack)


async def test_topup_creation_refusals(
    airtm_client: httpx.AsyncClient, control: httpx.AsyncClient, full_key: dict[str, str]
) -> None:
    user = await linked_user(airtm_client, control, full_key)
    unlinked = (
        await airtm_client.post("/users", json={"external_user_id": f"ext-{secrets.token_hex(6)}"}, headers=full_key)
    ).json()
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"user_id": user["id"], "amount": "0.50"}, 400, "INVALID_AMOUNT"),
        ({"user_id": user["id"], "amount": "10000.01"}, 400, "INVALID_AMOUNT"),
        ({"user_id": user["id"], "amount": "10"}, 400, "INVALID_AMOUNT_FORMAT"),
        ({"user_id": user["id"], "amount": "10.00", "currency": "EUR"}, 400, "INVALID_CURRENCY"),
        ({"user_id": user["id"], "amount": "10.00", "return_url": "ftp://x.example/ok"}, 400, "VALIDATION_ERROR"),
        ({"user_id": user["id"], "amount": "10.00", "userId": "typo"}, 400, "VALIDATION_ERROR"),
        ({"user_id": "usr_" + "n" * 21, "amount": "10.00"}, 404, "USER_NOT_FOUND"),
        ({"user_id": "ord_wrongprefix", "amount": "10.00"}, 404, "USER_NOT_FOUND"),
        ({"user_id": unlinked["id"], "amount": "10.00"}, 422, "AIRTM_USER_NOT_LINKED"),
    ]
    for body, status, code in cases:
        refused = await airtm_client.post("/topups", json=body, headers=full_key)
        assert (refused.status_code, refused.json()["error"]["code"]) == (status, code), (body, refused.text)
    limits = (await airtm_client.post("/topups", json=cases[0][0], headers=full_key)).json()["error"]["details"]
    assert limits == {"min": "1.00", "max": "10000.00"}

    inactive = await control.post("/airtm/users", json={"email": user["email"], "status": "inactive"})
    assert inactive.status_code == 200, inactive.text
    refused = await airtm_client.post("/topups", json={"user_id": user["id"], "amount": "10.00"}, headers=full_key)
    assert refused.status_code == 422 and refused.json()["error"]["details"] == {"reason": "USER_INACTIVE"}
    listed = (await airtm_client.get("/topups", params={"user_id": user["id"]}, headers=full_key)).json()
    assert listed["data"] == []  # no refusal created a top-up

    for action in ("refresh", "cancel"):
        missing = await airtm_client.post(f"/topups/topup_{'z' * 21}/{action}", headers=full_key)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "TOPUP_NOT_FOUND"


async def test_ten_topups_a_minute_per_user(airtm_client: httpx.AsyncClient, full_key: dict[str, str]) -> None:
    user_id = "usr_" + secrets.token_urlsafe(16)[:21]
    for _ in range(10):  # refused for their amount, but counted
        counted = await airtm_client.post("/topups", json={"user_id": user_id, "amount": "0.10"}, headers=full_key)
        assert counted.status_code == 400, counted.text
    limited = await airtm_client.post("/topups", json={"user_id": user_id, "amount": "10.00"}, headers=full_key)
    assert limited.status_code == 429, limited.text
    details = limited.json()["error"]["details"]
    assert (details["scope"], details["limit"], details["window_seconds"]) == ("user_topups", 10, 60)
    assert int(limited.headers["retry-after"]) >= 1
    other = await airtm_client.post("/topups", json={"user_id": user_id + "x", "amount": "0.10"}, headers=full_key)
    assert other.status_code != 429


async def test_a_keyed_create_is_replayed_not_repeated(
    airtm_client: httpx.AsyncClient, control: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await linked_user(airtm_client, control, full_key)
    headers = {**full_key, "Idempotency-Key": secrets.token_hex(16)}
    body = {"user_id": user["id"], "amount": "3.00"}
    first = await airtm_client.post("/topups", json=body, headers=headers)
    assert first.status_code == 201, first.text
    second = await airtm_client.post("/topups", json=body, headers=headers)
    assert second.status_code == 201 and second.headers["idempotent-replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    assert len((await control.get("/airtm/payins", params={"code": first.json()["id"]})).json()) == 1
    listed = (await airtm_client.get("/topups", params={"user_id": user["id"]}, headers=full_key)).json()
    assert len(listed["data"]) == 1
    await books_and_sandbox_ok(stack, control)


# webhooks and provider faults ---------------------------------------------------------------------


async def test_duplicated_and_reordered_webhooks_credit_once(
    airtm_client: httpx.AsyncClient, control: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    """Only the webhooks can move this top-up (the session's airtm worker polls every 300 s):
    each arrives twice, newest first, some after a dropped first attempt."""
    user = await linked_user(airtm_client, control, full_key)
    faults = {
        "rules": [],
        "webhooks": {
            "airtm": {
                "duplicate_probability": 1.0,
                "duplicate_delay_ms": 50,
                "reorder": True,
                "reorder_window_ms": 300,
                "drop_first_attempt_probability": 0.5,
            }
        },
    }
    assert (await control.put("/faults", json=faults)).status_code == 200
    try:
        topup = await create_topup(airtm_client, full_key, user["id"], "17.50")
        await confirm(control, topup, user["email"], processing_ms=200)

        async def credited() -> bool:
            found = (await airtm_client.get(f"/topups/{topup['id']}", headers=full_key)).json()
            return bool(found["status"] == T.TOPUP_SUCCEEDED)

        await assert_eventually(credited, timeout=20, interval=0.2, message="the webhooks never moved the top-up")
        await control.post("/webhooks/flush", json={"timeout_ms": 5000})
    finally:
        await control.delete("/faults")
    delivered = (await control.get("/webhooks", params={"provider": "airtm", "status": "DELIVERED"})).json()
    assert any(w["body"]["data"]["code"] == topup["id"] for w in delivered)
    assert await available(airtm_client, full_key, user["id"]) == "17.50"
    assert await deposits_of(stack, topup["id"]) == [(f"topup:{topup['id']}:credit", 1750)]
    await books_and_sandbox_ok(stack, control)


async def test_an_airtm_outage_delays_the_payin_and_a_read_outage_is_a_502(
    airtm_client: httpx.AsyncClient, control: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    """Creation retries through 503s and a dropped answer (one pay-in, found by its code);
    a refresh while Airtm is down answers 502 and changes nothing."""
    user = await linked_user(airtm_client, control, full_key)
    faults = {
        "rules": [
            {
                "id": "payin-503",
                "target": "airtm",
                "method": "POST",
                "path": "/payins",
                "times": 2,
                "action": "error",
                "status": 503,
                "retry_after_s": 1,
            },
            {
                "id": "payin-drop",
                "target": "airtm",
                "method": "POST",
                "path": "/payins",
                "times": 1,
                "action": "drop_after_effect",
                "drop_mode": "error",
            },
        ]
    }
    assert (await control.put("/faults", json=faults)).status_code == 200
    try:
        topup = await create_topup(airtm_client, full_key, user["id"], "4.00")
    finally:
        await control.delete("/faults")
    assert topup["status"] == T.TOPUP_AWAITING_USER_CONFIRMATION
    assert len((await control.get("/airtm/payins", params={"code": topup["id"]})).json()) == 1

    down = {
        "rules": [
            {
                "id": "read-503",
                "target": "airtm",
                "method": "GET",
                "path": "/payins/*",
                "action": "error",
                "status": 503,
            }
        ]
    }
    assert (await control.put("/faults", json=down)).status_code == 200
    try:
        refused = await airtm_client.post(f"/topups/{topup['id']}/refresh", headers=full_key)
    finally:
        await control.delete("/faults")
    assert refused.status_code == 502, refused.text
    assert refused.json()["error"]["details"]["topup_id"] == topup["id"]
    await confirm(control, topup, user["email"])
    assert (await refresh(airtm_client, full_key, topup["id"]))["status"] == T.TOPUP_SUCCEEDED
    assert len(await deposits_of(stack, topup["id"])) == 1
    await books_and_sandbox_ok(stack, control)


# the cached user lookup, Redis lost, slow creation ---------------------------------------------------


async def user_lookups(control: httpx.AsyncClient, email: str) -> int:
    """How many times the sandbox was asked for the Airtm user `email`."""
    logged = (await control.get("/requests", params={"target": "airtm", "limit": 1000})).json()
    return sum(1 for r in logged if r["method"] == "GET" and unquote(r["path"]).endswith("/users/" + email))


def airtm_api(stack: Stack, name: str, overrides: dict[str, str]) -> Iterator[str]:
    """Another airtm-mode API beside `Stack.start_airtm`, on its task queue (its worker runs the flows)."""
    url = stack.spawn_api(
        name, {"PAYMENT_PROVIDER": "airtm", "TEMPORAL_TASK_QUEUE": "offerhub-test-airtm", **overrides}
    )
    process = stack.processes[-1]
    yield url
    process.stop()
    stack.processes.remove(process)


@pytest.fixture(scope="module")
def redisless_url(stack: Stack, airtm: AirtmStack) -> Iterator[str]:
    """An airtm-mode API whose Redis is gone (nothing listens on its port)."""
    yield from airtm_api(stack, "api-airtm-redisless", {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})


@pytest.fixture(scope="module")
def hasty_url(stack: Stack, airtm: AirtmStack) -> Iterator[str]:
    """An airtm-mode API that waits 1 ms for an Update: every accepted create answers 202."""
    yield from airtm_api(stack, "api-airtm-hasty", {"API_UPDATE_WAIT_SECONDS": "0.001"})


async def test_the_airtm_user_lookup_is_cached_five_minutes(
    airtm_client: httpx.AsyncClient, control: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    """providers.md §4.2: one lookup serves the next top-ups; an account deactivated meanwhile is
    seen as the cache says until the entry expires."""
    user = await linked_user(airtm_client, control, full_key)
    before = await user_lookups(control, user["email"])
    await create_topup(airtm_client, full_key, user["id"], "2.00")
    assert await user_lookups(control, user["email"]) == before + 1
    assert (await control.post("/airtm/users", json={"email": user["email"], "status": "inactive"})).status_code == 200
    await create_topup(airtm_client, full_key, user["id"], "3.00")
    assert await user_lookups(control, user["email"]) == before + 1
    await books_and_sandbox_ok(stack, control)


async def test_losing_redis_fails_no_topup_and_no_withdrawal_check(
    redisless_url: str, airtm_client: httpx.AsyncClient, control: httpx.AsyncClient, full_key: dict[str, str]
) -> None:
    """Without Redis every lookup goes to Airtm, and the request is served."""
    user = await linked_user(airtm_client, control, full_key)
    async with httpx.AsyncClient(base_url=redisless_url, timeout=30) as redisless:
        before = await user_lookups(control, user["email"])
        for amount in ("2.00", "3.00"):
            await create_topup(redisless, full_key, user["id"], amount)
        assert await user_lookups(control, user["email"]) == before + 2
        # a withdrawal's eligibility check reads the account the same way (refused for funds, not Redis)
        body = {"user_id": user["id"], "amount": "10.00", "destination_type": "bank", "destination_ref": "ref-1"}
        refused = await redisless.post("/withdrawals", json=body, headers=full_key)
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "INSUFFICIENT_FUNDS", refused.text
        assert await user_lookups(control, user["email"]) == before + 3


async def test_a_slow_topup_creation_answers_202_and_finishes_by_itself(
    hasty_url: str, airtm_client: httpx.AsyncClient, control: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await linked_user(airtm_client, control, full_key)
    headers = {**full_key, "Idempotency-Key": secrets.token_hex(16)}
    body = {"user_id": user["id"], "amount": "6.00", "return_url": RETURN_URL, "cancel_url": CANCEL_URL}
    async with httpx.AsyncClient(base_url=hasty_url, timeout=30) as hasty:
        first = await hasty.post("/topups", json=body, headers=headers)
        assert first.status_code == 202, first.text
        topup_id = first.json()["id"]
        assert first.headers["location"] == f"/api/v1/topups/{topup_id}"
        assert first.json()["status"] in (T.TOPUP_CREATED, T.TOPUP_AWAITING_USER_CONFIRMATION)
        assert (first.json()["user_id"], first.json()["amount"]) == (user["id"], "6.00")

        async def awaiting() -> dict[str, Any] | None:
            topup: dict[str, Any] = (await airtm_client.get(f"/topups/{topup_id}", headers=full_key)).json()
            return topup if topup["status"] == T.TOPUP_AWAITING_USER_CONFIRMATION else None

        done = await assert_eventually(awaiting, timeout=20, message="the pay-in was never created")
        assert done is not None and done["confirmation_uri"] and done["airtm_payin_id"]
        replay = await hasty.post("/topups", json=body, headers=headers)
        assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true", replay.text
        assert replay.json()["id"] == topup_id and replay.headers["location"] == first.headers["location"]
    assert len((await control.get("/airtm/payins", params={"code": topup_id})).json()) == 1
    await confirm(control, done, user["email"])
    assert (await refresh(airtm_client, full_key, topup_id))["status"] == T.TOPUP_SUCCEEDED
    await books_and_sandbox_ok(stack, control)
