"""Airtm withdrawals (api.md §9, providers.md §4.4): an uncommitted payout at creation, commit,
completion by webhook, refresh or poll; a failed payout returns the hold."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.context import WorkerContext
from activities.payouts import PayoutActivities
from api.payload_codec import data_converter
from api.services import connect_temporal
from models.webhooks_io import AIRTM_PAYOUT_SIGNAL, ProviderEvent
from providers.airtm.client import AirtmClient
from tests.api.orders_support import funded_user
from tests.api.test_envelope import assert_error
from tests.api.test_users import balance_of
from tests.api.withdrawals_support import act, all_balanced, control, entries, event_types, get, withdraw
from tests.support import Stack, assert_eventually, stack_settings
from worker import WORKFLOW_RUNNER, WORKFLOWS, activities_for

REFUSING_QUEUE = "offerhub-test-airtm-refusing"


async def linked_user(
    client: httpx.AsyncClient, airtm_client: httpx.AsyncClient, stack: Stack, headers: dict[str, str], amount: str
) -> dict[str, Any]:
    """A user funded on chain through the crypto API, then linked to a sandbox Airtm account."""
    user = await funded_user(client, stack, headers, amount)
    email = f"payee-{secrets.token_hex(4)}@example.com"
    async with control(stack) as sandbox:
        made = await sandbox.post("/airtm/users", json={"email": email, "status": "active", "is_verified": True})
        assert made.status_code in (200, 201), made.text
    linked = await airtm_client.post(f"/users/{user['id']}/airtm/link", json={"email": email}, headers=headers)
    assert linked.status_code == 200, linked.text
    return {**user, "airtm_email": email}


@pytest.fixture
async def manual_payouts(stack: Stack) -> AsyncIterator[None]:
    async with control(stack) as sandbox:
        await sandbox.put("/airtm/settings", json={"payout_completion": "manual"})
        try:
            yield
        finally:
            await sandbox.put("/airtm/settings", json={"payout_completion": "auto"})


async def status_is(
    airtm_client: httpx.AsyncClient, headers: dict[str, str], withdrawal_id: str, status: str, timeout: float = 20
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        wd = await get(airtm_client, headers, withdrawal_id)
        return wd if wd["status"] == status else None

    found = await assert_eventually(reached, timeout=timeout, message=f"{withdrawal_id} never {status}")
    assert found is not None
    return found


async def test_a_bank_withdrawal_completes_after_commit_and_webhook(
    client: httpx.AsyncClient, airtm_client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await linked_user(client, airtm_client, stack, full_key, "80.00")
    wd = await withdraw(
        airtm_client,
        full_key,
        user_id=user["id"],
        amount="40.00",
        destination_type="bank",
        destination_ref="ES9121000418450200057731",
        description="Payout January",
    )
    assert wd["status"] == "WITHDRAWAL_CREATED" and wd["committed"] is False and wd["expires_at"]
    assert wd["airtm_payout_id"] and wd["fee"] is not None
    assert (await balance_of(client, full_key, user["id"]))["reserved"] == "40.00"
    committed = await act(airtm_client, full_key, wd["id"], "commit")
    assert committed["status"] in ("WITHDRAWAL_PENDING", "WITHDRAWAL_COMPLETED"), committed
    assert committed["committed"] is True and committed["expires_at"] is None
    done = await status_is(airtm_client, full_key, wd["id"], "WITHDRAWAL_COMPLETED")
    assert done["completed_at"] is not None
    balance = await balance_of(client, full_key, user["id"])
    assert (balance["available"], balance["reserved"]) == ("40.00", "0.00")
    assert await entries(stack, wd["id"]) == {"WITHDRAWAL_HOLD": 1, "WITHDRAWAL_PAYOUT": 1}
    assert (await event_types(stack, wd["id"]))[-2:] == ["withdrawal.completed", "balance.debited"]
    assert_error(
        await airtm_client.post(f"/withdrawals/{wd['id']}/commit", headers=full_key), 409, "WITHDRAWAL_NOT_COMMITTABLE"
    )
    await all_balanced(stack)


async def test_a_failed_payout_returns_the_hold(
    client: httpx.AsyncClient,
    airtm_client: httpx.AsyncClient,
    stack: Stack,
    full_key: dict[str, str],
    manual_payouts: None,
) -> None:
    user = await linked_user(client, airtm_client, stack, full_key, "50.00")
    wd = await withdraw(
        airtm_client,
        full_key,
        user_id=user["id"],
        amount="50.00",
        destination_type="airtm_balance",
        destination_ref="airtm-wallet-1",
        commit=True,
    )
    assert wd["status"] == "WITHDRAWAL_PENDING", wd
    async with control(stack) as sandbox:
        failed = await sandbox.post(
            f"/airtm/payouts/{wd['id']}/fail",
            json={"reason_code": "415073", "reason_description": "delivery to the recipient's method failed"},
        )
        assert failed.status_code == 200, failed.text
    refreshed = await act(airtm_client, full_key, wd["id"], "refresh")
    assert refreshed["status"] == "WITHDRAWAL_FAILED" and refreshed["failure_code"] == "415073"
    balance = await balance_of(client, full_key, user["id"])
    assert (balance["available"], balance["reserved"]) == ("50.00", "0.00")
    assert await entries(stack, wd["id"]) == {"WITHDRAWAL_HOLD": 1, "WITHDRAWAL_HOLD_RELEASE": 1}
    assert "withdrawal.failed" in await event_types(stack, wd["id"])
    await all_balanced(stack)


async def test_a_payout_needing_user_action_completes_through_refresh(
    client: httpx.AsyncClient,
    airtm_client: httpx.AsyncClient,
    stack: Stack,
    full_key: dict[str, str],
    manual_payouts: None,
) -> None:
    user = await linked_user(client, airtm_client, stack, full_key, "30.00")
    wd = await withdraw(
        airtm_client,
        full_key,
        user_id=user["id"],
        amount="30.00",
        destination_type="bank",
        destination_ref="GB29NWBK60161331926819",
    )
    assert (await act(airtm_client, full_key, wd["id"], "commit"))["status"] == "WITHDRAWAL_PENDING"
    async with control(stack) as sandbox:
        needs = await sandbox.post(f"/airtm/payouts/{wd['id']}/require-user-action")
        assert needs.status_code == 200, needs.text
    waiting = await act(airtm_client, full_key, wd["id"], "refresh")
    assert waiting["status"] == "WITHDRAWAL_PENDING_USER_ACTION", waiting
    assert_error(await airtm_client.post(f"/withdrawals/{wd['id']}/cancel", headers=full_key), 409, "INVALID_STATE")
    # repeated or stale news (webhooks redelivered, a late payout.created) re-read the same state: no-op
    temporal = await Client.connect(stack.env["TEMPORAL_ADDRESS"], data_converter=data_converter(stack_settings(stack)))
    handle = temporal.get_workflow_handle(wd["id"])
    for n, kind in enumerate(("payout.created", "payout.created", "payout.committed")):
        event = ProviderEvent(provider="airtm", event_id=f"stale-{n}", type=kind, data={"code": wd["id"]})
        await handle.signal(AIRTM_PAYOUT_SIGNAL, event)
    before = await event_types(stack, wd["id"])
    assert (await act(airtm_client, full_key, wd["id"], "refresh"))["status"] == "WITHDRAWAL_PENDING_USER_ACTION"
    assert await event_types(stack, wd["id"]) == before
    async with control(stack) as sandbox:
        completed = await sandbox.post(f"/airtm/payouts/{wd['id']}/complete")
        assert completed.status_code == 200, completed.text
    final = await act(airtm_client, full_key, wd["id"], "refresh")
    assert final["status"] == "WITHDRAWAL_COMPLETED", final
    balance = await balance_of(client, full_key, user["id"])
    assert (balance["available"], balance["reserved"]) == ("0.00", "0.00")
    assert await entries(stack, wd["id"]) == {"WITHDRAWAL_HOLD": 1, "WITHDRAWAL_PAYOUT": 1}
    assert "withdrawal.pending_user_action" in await event_types(stack, wd["id"])
    await all_balanced(stack)


async def test_cancel_before_commit_cancels_the_payout_and_returns_the_hold(
    client: httpx.AsyncClient, airtm_client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await linked_user(client, airtm_client, stack, full_key, "20.00")
    wd = await withdraw(
        airtm_client, full_key, user_id=user["id"], amount="20.00", destination_type="bank", destination_ref="ref-1"
    )
    canceled = await act(airtm_client, full_key, wd["id"], "cancel")
    assert canceled["status"] == "WITHDRAWAL_CANCELED" and canceled["failure_code"] == "CANCELED"
    async with control(stack) as sandbox:
        payouts = (await sandbox.get("/airtm/payouts", params={"code": wd["id"]})).json()
    listed = payouts["data"] if isinstance(payouts, dict) else payouts
    assert [p["status"] for p in listed] == ["CANCELED"]
    assert (await balance_of(client, full_key, user["id"]))["available"] == "20.00"
    await all_balanced(stack)


async def test_airtm_mode_refuses_crypto_destinations_and_unlinked_users(
    client: httpx.AsyncClient, airtm_client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    user = await funded_user(client, stack, full_key, "20.00")
    base = {"user_id": user["id"], "amount": "10.00", "destination_type": "bank", "destination_ref": "ref-1"}
    unlinked = await airtm_client.post("/withdrawals", json=base, headers=full_key)
    assert assert_error(unlinked, 422, "AIRTM_USER_NOT_LINKED")["details"] == {"user_id": user["id"]}
    crypto = await airtm_client.post(
        "/withdrawals",
        json={**base, "destination_type": "crypto", "destination_ref": user["wallet"]["public_key"]},
        headers=full_key,
    )
    assert assert_error(crypto, 409, "PROVIDER_NOT_ENABLED")["details"] == {
        "payment_provider": "airtm",
        "required_provider": "crypto",
    }
    memo = await airtm_client.post("/withdrawals", json={**base, "memo": "x"}, headers=full_key)
    assert assert_error(memo, 422, "WITHDRAWAL_DESTINATION_INVALID")["details"] == {"reason": "memo_not_allowed"}
    await all_balanced(stack)


# recipient refusals, outages, the cached user lookup ------------------------------------------------


async def set_airtm_user(stack: Stack, email: str, **fields: Any) -> None:
    async with control(stack) as sandbox:
        changed = await sandbox.post("/airtm/users", json={"email": email, **fields})
        assert changed.status_code in (200, 201), changed.text


async def user_lookups(stack: Stack, email: str) -> int:
    """How many times the sandbox was asked for the Airtm user `email`."""
    async with control(stack) as sandbox:
        logged = (await sandbox.get("/requests", params={"target": "airtm", "limit": 1000})).json()
    return sum(1 for r in logged if r["method"] == "GET" and unquote(r["path"]).endswith("/users/" + email))


async def test_an_ineligible_airtm_account_is_refused_before_anything_is_created(
    client: httpx.AsyncClient, airtm_client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    """The API's eligibility check (the lookup, cached 5 min) refuses an inactive or unverified
    recipient with 422 AIRTM_USER_INVALID: no withdrawal, no hold, no payout at Airtm."""
    for fields, reason in (({"status": "inactive"}, "USER_INACTIVE"), ({"is_verified": False}, "USER_NOT_VERIFIED")):
        user = await linked_user(client, airtm_client, stack, full_key, "15.00")
        await set_airtm_user(stack, user["airtm_email"], **fields)
        body = {"user_id": user["id"], "amount": "10.00", "destination_type": "bank", "destination_ref": "ref-9"}
        refused = await airtm_client.post("/withdrawals", json=body, headers=full_key)
        assert assert_error(refused, 422, "AIRTM_USER_INVALID")["details"] == {"reason": reason, "user_id": user["id"]}
        listed = (await airtm_client.get("/withdrawals", params={"user_id": user["id"]}, headers=full_key)).json()
        assert listed["data"] == []
        balance = await balance_of(client, full_key, user["id"])
        assert (balance["available"], balance["reserved"]) == ("15.00", "0.00")
    await all_balanced(stack)


class RefusingRecipient(httpx.AsyncBaseTransport):
    """Airtm as it answers a payout to an account that cannot receive (providers.md §4.1:
    415059-415061); every other request goes to the sandbox. The sandbox itself creates such
    payouts and holds them PENDING after commit (providers.md §5.7), so the refusal is staged."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/payouts"):
            body = {"code": self.code, "message": "The recipient cannot receive payouts", "data": {}}
            return httpx.Response(422, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def refusing_api(stack: Stack, airtm: Any) -> Iterator[str]:
    """An airtm-mode API on a task queue served by the in-process worker below."""
    url = stack.spawn_api("api-airtm-refusing", {"PAYMENT_PROVIDER": "airtm", "TEMPORAL_TASK_QUEUE": REFUSING_QUEUE})
    process = stack.processes[-1]
    yield url
    process.stop()
    stack.processes.remove(process)


@pytest.fixture
async def refusing_worker(stack: Stack) -> AsyncIterator[None]:
    settings = stack_settings(stack).model_copy(
        update={"payment_provider": "airtm", "temporal_task_queue": REFUSING_QUEUE}
    )
    temporal = await connect_temporal(settings)
    ctx = WorkerContext.build(settings, temporal)
    activities = activities_for(ctx)
    for activity in activities:
        owner = getattr(activity, "__self__", None)
        if isinstance(owner, PayoutActivities):
            assert settings.airtm_api_key is not None and settings.airtm_api_secret is not None
            owner._airtm = AirtmClient(
                settings.airtm_url,
                settings.airtm_api_key.get_secret_value(),
                settings.airtm_api_secret.get_secret_value(),
                rate_per_second=1000,
                transport=RefusingRecipient("415060"),
            )
    worker = Worker(
        temporal,
        task_queue=REFUSING_QUEUE,
        workflows=WORKFLOWS,
        activities=activities,
        workflow_runner=WORKFLOW_RUNNER,
    )
    try:
        async with worker:
            yield
    finally:
        await ctx.close()


async def test_airtm_refusing_the_recipient_fails_the_withdrawal_with_422_and_returns_the_hold(
    client: httpx.AsyncClient,
    airtm_client: httpx.AsyncClient,
    stack: Stack,
    full_key: dict[str, str],
    refusing_api: str,
    refusing_worker: None,
) -> None:
    """A payout Airtm refuses for its recipient (415060) answers 422 AIRTM_USER_INVALID, not 502:
    the withdrawal is WITHDRAWAL_FAILED with Airtm's code and its hold is returned (domain.md
    §4.7, CREATED -> FAILED when Airtm refused to create the payout)."""
    user = await linked_user(client, airtm_client, stack, full_key, "25.00")
    body = {"user_id": user["id"], "amount": "25.00", "destination_type": "bank", "destination_ref": "ref-7"}
    async with httpx.AsyncClient(base_url=refusing_api, timeout=60) as refusing:
        refused = await refusing.post("/withdrawals", json=body, headers=full_key)
    details = assert_error(refused, 422, "AIRTM_USER_INVALID")["details"]
    assert details["reason"] == "USER_INACTIVE" and details["provider_code"] == "415060"
    wd = await get(airtm_client, full_key, details["withdrawal_id"])
    assert wd["status"] == "WITHDRAWAL_FAILED" and wd["failure_code"] == "415060", wd
    balance = await balance_of(client, full_key, user["id"])
    assert (balance["available"], balance["reserved"]) == ("25.00", "0.00")
    assert await entries(stack, wd["id"]) == {"WITHDRAWAL_HOLD": 1, "WITHDRAWAL_HOLD_RELEASE": 1}
    assert (await event_types(stack, wd["id"]))[-2:] == ["withdrawal.failed", "balance.released"]
    await all_balanced(stack)


async def test_a_refresh_while_airtm_is_down_is_502_and_changes_nothing(
    client: httpx.AsyncClient,
    airtm_client: httpx.AsyncClient,
    stack: Stack,
    full_key: dict[str, str],
    manual_payouts: None,
) -> None:
    user = await linked_user(client, airtm_client, stack, full_key, "12.00")
    wd = await withdraw(
        airtm_client,
        full_key,
        user_id=user["id"],
        amount="12.00",
        destination_type="bank",
        destination_ref="ref-5",
        commit=True,
    )
    assert wd["status"] == "WITHDRAWAL_PENDING", wd
    async with control(stack) as sandbox:
        await sandbox.post(f"/airtm/payouts/{wd['id']}/complete")
        down = {"rules": [{"id": "payout-read-503", "target": "airtm", "method": "GET", "path": "/payouts/*",
                           "action": "error", "status": 503}]}  # fmt: skip
        assert (await sandbox.put("/faults", json=down)).status_code == 200
        try:
            refused = await airtm_client.post(f"/withdrawals/{wd['id']}/refresh", headers=full_key)
        finally:
            await sandbox.delete("/faults")
    assert assert_error(refused, 502, "PROVIDER_ERROR")["details"]["withdrawal_id"] == wd["id"]
    unchanged = await get(airtm_client, full_key, wd["id"])
    assert unchanged["status"] == "WITHDRAWAL_PENDING" and unchanged["updated_at"] == wd["updated_at"]
    assert await entries(stack, wd["id"]) == {"WITHDRAWAL_HOLD": 1}
    # Airtm back: the next refresh applies what the payout became
    assert (await act(airtm_client, full_key, wd["id"], "refresh"))["status"] == "WITHDRAWAL_COMPLETED"
    assert await entries(stack, wd["id"]) == {"WITHDRAWAL_HOLD": 1, "WITHDRAWAL_PAYOUT": 1}
    await all_balanced(stack)


async def test_the_airtm_user_lookup_is_cached_for_withdrawals(
    client: httpx.AsyncClient, airtm_client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    """One lookup serves the next 5 minutes (providers.md §4.2): a second withdrawal does not ask
    Airtm, and an account deactivated meanwhile is still seen as the cache says."""
    user = await linked_user(client, airtm_client, stack, full_key, "20.00")
    body = {"user_id": user["id"], "amount": "10.00", "destination_type": "bank", "destination_ref": "ref-3"}
    before = await user_lookups(stack, user["airtm_email"])
    await withdraw(airtm_client, full_key, **body)
    assert await user_lookups(stack, user["airtm_email"]) == before + 1
    await set_airtm_user(stack, user["airtm_email"], status="inactive")
    await withdraw(airtm_client, full_key, **body)
    assert await user_lookups(stack, user["airtm_email"]) == before + 1
