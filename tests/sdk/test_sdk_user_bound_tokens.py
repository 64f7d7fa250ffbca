"""The SDK with a user-bound token (`tokens.create(user_id=...)`): what a browser would hold."""

from __future__ import annotations

import secrets

import pytest

from offerhub_sdk import AsyncOfferHub, NotFoundError, PermissionDeniedError
from tests.support import Stack


async def test_a_user_bound_token_reads_its_user_only(stack: Stack, async_client: AsyncOfferHub) -> None:
    user = await async_client.users.create(external_user_id=f"sdk-bound-{secrets.token_hex(6)}")
    other = await async_client.users.create(external_user_id=f"sdk-other-{secrets.token_hex(6)}")
    token = await async_client.tokens.create(scopes=["read"], user_id=user.id, ttl_seconds=300)
    assert token.user_id == user.id and token.scopes == ["read"]
    async with AsyncOfferHub(api_key=token.token, base_url=stack.api_url, max_retries=0) as browser:
        assert (await browser.me()).credential.user_id == user.id
        assert [u.id async for u in await browser.users.list()] == [user.id]
        assert (await browser.users.retrieve(user.id)).id == user.id
        with pytest.raises(NotFoundError):
            await browser.users.retrieve(other.id)
        with pytest.raises(PermissionDeniedError):
            await browser.config()
