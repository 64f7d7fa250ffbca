"""Helpers of the SDK tests: users made and funded through the SDK."""

from __future__ import annotations

import secrets

from offerhub_sdk import AsyncOfferHub
from offerhub_sdk.models import User
from tests.api.test_users import faucet
from tests.support import Stack, assert_eventually


async def sdk_user(client: AsyncOfferHub, stack: Stack, amount: str = "0") -> User:
    """A user whose wallet is READY and whose `available` is `amount` (sandbox faucet deposit)."""
    user = await client.users.create(external_user_id=f"sdk-{secrets.token_hex(6)}")
    user = await client.users.wait_for_wallet(user.id, timeout=20)
    if amount != "0":
        assert user.wallet is not None and user.wallet.public_key is not None
        await faucet(stack, user.wallet.public_key, amount)

        async def credited() -> bool:
            return (await client.users.balance(user.id)).available == amount

        await assert_eventually(credited, timeout=15, message="deposit not credited")
    return user
