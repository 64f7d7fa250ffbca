"""Airtm mode through the SDK: a linked user tops up (pay-in confirmed on the sandbox's Airtm) and
withdraws (payouts committed, completed, failed, canceled), with the async and the sync client."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest

from offerhub_sdk import AsyncOfferHub, ConflictError, OfferHub
from offerhub_sdk.models import User
from tests.api.withdrawals_support import control
from tests.support import Stack, assert_books_balanced

RETURN_URL = "https://market.example/wallet/ok"
CANCEL_URL = "https://market.example/wallet/cancel"
IBAN = "ES9121000418450200057731"


async def linked_user(client: AsyncOfferHub, stack: Stack, balance: str = "500.00") -> tuple[User, str]:
    """A user linked through the SDK to an active, verified sandbox Airtm account; and its e-mail."""
    email = f"sdk-{secrets.token_hex(5)}@example.com"
    async with control(stack) as sandbox:
        made = await sandbox.post("/airtm/users", json={"email": email, "balance": balance})
        assert made.status_code == 201, made.text
    user = await client.users.create(external_user_id=f"sdk-{secrets.token_hex(6)}")
    assert user.airtm_user_id is None
    linked = await client.users.link_airtm(user.id, email=email)
    assert linked.id == user.id and linked.airtm_user_id and linked.airtm_linked_at is not None
    assert (await client.users.retrieve(user.id)).airtm_user_id == linked.airtm_user_id
    return linked, email


async def confirm_payin(stack: Stack, topup_id: str, email: str) -> None:
    async with control(stack) as sandbox:
        confirmed = await sandbox.post(f"/airtm/payins/{topup_id}/confirm", json={"email": email})
        assert confirmed.status_code == 200, confirmed.text


async def funded_user(client: AsyncOfferHub, stack: Stack, amount: str) -> User:
    """A linked user whose `available` is `amount`, credited by an Airtm top-up."""
    user, email = await linked_user(client, stack)
    topup = await client.topups.create(user_id=user.id, amount=amount, return_url=RETURN_URL, cancel_url=CANCEL_URL)
    await confirm_payin(stack, topup.id, email)
    assert (await client.topups.wait(topup.id, timeout=30)).status == "TOPUP_SUCCEEDED"
    return user


async def test_an_airtm_topup_is_created_confirmed_and_credited_once(
    airtm_async_client: AsyncOfferHub, stack: Stack
) -> None:
    client = airtm_async_client
    user, email = await linked_user(client, stack)
    topup = await client.topups.create(
        user_id=user.id,
        amount="25.00",
        return_url=RETURN_URL,
        cancel_url=CANCEL_URL,
        description="Wallet top-up",
        metadata={"cart": "42"},
    )
    assert (topup.provider, topup.status, topup.amount, topup.currency) == (
        "airtm",
        "TOPUP_AWAITING_USER_CONFIRMATION",
        "25.00",
        "USD",
    )
    assert topup.airtm_payin_id and topup.confirmation_uri and topup.confirmation_uri.endswith(topup.airtm_payin_id)
    assert (topup.return_url, topup.cancel_url, topup.metadata) == (RETURN_URL, CANCEL_URL, {"cart": "42"})
    assert topup.expires_at is not None and topup.completed_at is None
    assert (await client.topups.retrieve(topup.id)).status == "TOPUP_AWAITING_USER_CONFIRMATION"
    waiting = await client.topups.wait(topup.id, "TOPUP_AWAITING_USER_CONFIRMATION", timeout=5)
    assert waiting.id == topup.id
    with pytest.raises(TimeoutError):
        await client.topups.wait(topup.id, timeout=1, interval=0.2)  # not terminal before the user pays
    assert (await client.topups.refresh(topup.id)).status == "TOPUP_AWAITING_USER_CONFIRMATION"

    await confirm_payin(stack, topup.id, email)
    done = await client.topups.wait(topup.id, timeout=30)
    assert done.status == "TOPUP_SUCCEEDED" and done.completed_at is not None
    assert await client.topups.refresh(topup.id) == done  # terminal: answered as stored
    balance = await client.users.balance(user.id)
    assert (balance.available, balance.reserved) == ("25.00", "0.00")

    second = await client.topups.create(user_id=user.id, amount="10.00", return_url=RETURN_URL, cancel_url=CANCEL_URL)
    canceled = await client.topups.cancel(second.id, reason="changed my mind")
    assert canceled.status == "TOPUP_CANCELED"
    async with control(stack) as sandbox:
        [payin] = (await sandbox.get("/airtm/payins", params={"code": second.id})).json()
    assert payin["status"] == "CANCELED"
    with pytest.raises(ConflictError) as again:
        await client.topups.cancel(second.id)
    assert again.value.code == "INVALID_STATE"
    assert again.value.details["current_state"] == "TOPUP_CANCELED"

    first_page = await client.topups.list(user_id=user.id, provider="airtm", limit=1)
    assert len(first_page.data) == 1 and first_page.has_more
    assert [t.id async for t in first_page] == [second.id, topup.id]
    succeeded = await client.topups.list(user_id=user.id, status="TOPUP_SUCCEEDED")
    assert [t.id for t in succeeded.data] == [topup.id]
    assert (await client.users.balance(user.id)).available == "25.00"
    await assert_books_balanced(stack)


async def test_airtm_withdrawals_are_committed_paid_failed_and_canceled(
    airtm_async_client: AsyncOfferHub, stack: Stack
) -> None:
    client = airtm_async_client
    user = await funded_user(client, stack, "100.00")

    bank = await client.withdrawals.create(
        user_id=user.id,
        amount="40.00",
        destination_type="bank",
        destination_ref=IBAN,
        description="Payout January",
        metadata={"batch": "1"},
    )
    assert (bank.status, bank.committed, bank.expires_at is not None) == ("WITHDRAWAL_CREATED", False, True)
    assert bank.airtm_payout_id and bank.fee is not None
    assert (await client.users.balance(user.id)).reserved == "40.00"
    committed = await client.withdrawals.commit(bank.id)
    assert committed.committed and committed.status in ("WITHDRAWAL_PENDING", "WITHDRAWAL_COMPLETED")
    paid = await client.withdrawals.wait(bank.id, timeout=30)
    assert paid.status == "WITHDRAWAL_COMPLETED" and paid.completed_at is not None
    assert await client.withdrawals.refresh(bank.id) == paid  # terminal: answered as stored
    with pytest.raises(ConflictError) as recommit:
        await client.withdrawals.commit(bank.id)
    assert recommit.value.code == "WITHDRAWAL_NOT_COMMITTABLE"

    held = await client.withdrawals.create(
        user_id=user.id, amount="15.00", destination_type="airtm_balance", destination_ref="airtm-wallet-1"
    )
    canceled = await client.withdrawals.cancel(held.id, reason="wrong account")
    assert canceled.status == "WITHDRAWAL_CANCELED"

    async with control(stack) as sandbox:
        await sandbox.put("/airtm/settings", json={"payout_completion": "manual"})
        try:
            failing = await client.withdrawals.create(
                user_id=user.id, amount="20.00", destination_type="bank", destination_ref=IBAN, commit=True
            )
            assert failing.status == "WITHDRAWAL_PENDING" and failing.committed
            assert (await client.withdrawals.refresh(failing.id)).status == "WITHDRAWAL_PENDING"
            failed = await sandbox.post(f"/airtm/payouts/{failing.id}/fail", json={"reason_code": "415073"})
            assert failed.status_code == 200, failed.text
        finally:
            await sandbox.put("/airtm/settings", json={"payout_completion": "auto"})
    refreshed = await client.withdrawals.refresh(failing.id)
    assert (refreshed.status, refreshed.failure_code) == ("WITHDRAWAL_FAILED", "415073")

    listed = [w.id async for w in await client.withdrawals.list(user_id=user.id, limit=1)]
    assert listed == [failing.id, held.id, bank.id]
    banks = await client.withdrawals.list(user_id=user.id, destination_type="bank", status="WITHDRAWAL_COMPLETED")
    assert [w.id for w in banks.data] == [bank.id]
    assert (await client.withdrawals.retrieve(bank.id)).metadata == {"batch": "1"}
    balance = await client.users.balance(user.id)
    assert (balance.available, balance.reserved) == ("60.00", "0.00")
    await assert_books_balanced(stack)


def test_the_sync_client_tops_up_and_withdraws_in_airtm_mode(airtm_sync_client: OfferHub, stack: Stack) -> None:
    client = airtm_sync_client
    email = f"sdk-{secrets.token_hex(5)}@example.com"
    sandbox = f"http://127.0.0.1:{stack.sandbox_port}/_sandbox"
    assert httpx.post(f"{sandbox}/airtm/users", json={"email": email, "balance": "100.00"}).status_code == 201
    user = client.users.create(external_user_id=f"sdk-{secrets.token_hex(6)}")
    assert client.users.link_airtm(user.id, email=email).airtm_user_id

    topup = client.topups.create(user_id=user.id, amount="30.00", return_url=RETURN_URL, cancel_url=CANCEL_URL)
    assert topup.status == "TOPUP_AWAITING_USER_CONFIRMATION"
    confirmed = httpx.post(f"{sandbox}/airtm/payins/{topup.id}/confirm", json={"email": email})
    assert confirmed.status_code == 200, confirmed.text
    assert client.topups.wait(topup.id, timeout=30).status == "TOPUP_SUCCEEDED"
    assert client.topups.refresh(topup.id).status == "TOPUP_SUCCEEDED"
    assert [t.id for t in client.topups.list(user_id=user.id, limit=1)] == [topup.id]

    wd = client.withdrawals.create(
        user_id=user.id, amount="12.50", destination_type="airtm_balance", destination_ref="airtm-wallet-2", commit=True
    )
    assert client.withdrawals.wait(wd.id, "WITHDRAWAL_COMPLETED", timeout=30).completed_at is not None
    assert [w.id for w in client.withdrawals.list(user_id=user.id)] == [wd.id]
    balance = client.users.balance(user.id)
    assert (balance.available, balance.reserved) == ("17.50", "0.00")
    asyncio.run(assert_books_balanced(stack))
