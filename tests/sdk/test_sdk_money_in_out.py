"""Users, wallets, deposits (crypto top-ups) and withdrawals through the SDK."""

from __future__ import annotations

import secrets

import pytest

from offerhub_sdk import AsyncOfferHub, ConflictError, UnprocessableError
from tests.api.withdrawals_support import external_account, usdc_at
from tests.sdk.support import sdk_user
from tests.support import Stack, assert_books_balanced


async def test_user_wallet_and_deposit_views(async_client: AsyncOfferHub, stack: Stack) -> None:
    client = async_client
    external = f"sdk-{secrets.token_hex(6)}"
    created = await client.users.create(external_user_id=external, email="ana@example.com", type="BUYER")
    assert (created.type, created.wallet is not None and created.wallet.status) == ("BUYER", "PENDING")
    again = await client.users.create(external_user_id=external)
    assert again.id == created.id and not again.accepted
    assert [u.id for u in (await client.users.list(external_user_id=external)).data] == [created.id]
    assert (await client.users.retrieve(created.id)).email == "ana@example.com"

    user = await sdk_user(client, stack, "25.00")
    wallet = await client.users.wallet(user.id)
    assert (wallet.status, wallet.usdc_trustline) == ("READY", True)
    assert wallet.onchain_balances is not None and wallet.onchain_balances["usdc"] == "25.0000000"
    deposit = await client.users.deposit_instructions(user.id)
    assert (deposit.method, deposit.address, deposit.ready) == ("stellar_address", wallet.public_key, True)
    first = await client.users.wallet_transactions(user.id, limit=1)
    assert len(first.data) == 1 and first.has_more
    transactions = [t async for t in first.auto_paging_iter()]
    assert {"create_account", "payment"} <= {t.type for t in transactions}
    assert any(t.type == "payment" and t.direction == "in" and t.amount == "25.0000000" for t in transactions)
    verified = await client.users.verify_balance(user.id)
    assert (verified.total, verified.provider_balance, verified.provider_verified) == ("25.00", "25.00", True)
    synced = await client.users.sync_balance(user.id)
    assert (synced.deposits_found, synced.discrepancy) == (0, "0.00")

    topups = await client.topups.list(user_id=user.id, provider="crypto")
    [topup] = topups.data
    assert (topup.status, topup.amount) == ("TOPUP_SUCCEEDED", "25.00")
    assert topup.stellar_transaction_hash is not None
    assert (await client.topups.retrieve(topup.id)).id == topup.id
    assert (await client.topups.refresh(topup.id)).status == "TOPUP_SUCCEEDED"  # crypto: returned as stored
    assert (await client.topups.wait(topup.id)).status == "TOPUP_SUCCEEDED"
    with pytest.raises(ConflictError) as canceled:
        await client.topups.cancel(topup.id, reason="too late")
    assert canceled.value.code == "INVALID_STATE"
    # crypto mode: no Airtm pay-ins, no Airtm link
    with pytest.raises(ConflictError) as created_topup:
        await client.topups.create(user_id=user.id, amount="10.00")
    assert created_topup.value.code == "PROVIDER_NOT_ENABLED"
    assert created_topup.value.details["payment_provider"] == "crypto"
    with pytest.raises(ConflictError) as linked:
        await client.users.link_airtm(user.id, email="ana@example.com")
    assert linked.value.code == "PROVIDER_NOT_ENABLED"
    await assert_books_balanced(stack)


async def test_withdrawal_to_an_outside_account_and_a_canceled_one(async_client: AsyncOfferHub, stack: Stack) -> None:
    client = async_client
    user = await sdk_user(client, stack, "50.00")
    outside = await external_account(stack)

    with pytest.raises(UnprocessableError) as own:
        assert user.wallet is not None and user.wallet.public_key is not None
        await client.withdrawals.create(
            user_id=user.id, amount="10.00", destination_type="crypto", destination_ref=user.wallet.public_key
        )
    assert (own.value.code, own.value.details["reason"]) == ("WITHDRAWAL_DESTINATION_INVALID", "own_wallet")

    created = await client.withdrawals.create(
        user_id=user.id,
        amount="20.00",
        destination_type="crypto",
        destination_ref=outside,
        memo="acct-1",
        commit=False,
        description="payout",
        metadata={"batch": "7"},
    )
    assert (created.status, created.committed, created.expires_at is not None) == ("WITHDRAWAL_CREATED", False, True)
    assert (await client.users.balance(user.id)).reserved == "20.00"
    committed = await client.withdrawals.commit(created.id)
    done = await client.withdrawals.wait(committed.id, "WITHDRAWAL_COMPLETED", timeout=30)
    assert done.stellar_transaction_hash is not None
    assert (await client.withdrawals.refresh(done.id)).status == "WITHDRAWAL_COMPLETED"
    assert await usdc_at(stack, outside) == 20

    held = await client.withdrawals.create(
        user_id=user.id, amount="10.00", destination_type="crypto", destination_ref=outside, commit=False
    )
    canceled = await client.withdrawals.cancel(held.id, reason="wrong account")
    assert canceled.status == "WITHDRAWAL_CANCELED"
    listed = [w.id async for w in await client.withdrawals.list(user_id=user.id, limit=1)]
    assert listed == [held.id, created.id]
    assert (await client.withdrawals.retrieve(created.id)).metadata == {"batch": "7"}
    balance = await client.users.balance(user.id)
    assert (balance.available, balance.reserved) == ("30.00", "0.00")
    await assert_books_balanced(stack)
