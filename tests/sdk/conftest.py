"""SDK fixtures: clients of `offerhub_sdk` on the session stack, each test with its own API key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from offerhub_sdk import AsyncOfferHub, OfferHub
from tests.support import AirtmStack, Stack, bearer


def new_key(stack: Stack, scopes: list[str], name: str = "sdk-test") -> str:
    response = httpx.post(
        stack.api_url + "/auth/api-keys", json={"name": name, "scopes": scopes}, headers=bearer(stack.master_key)
    )
    assert response.status_code == 201, response.text
    secret: str = response.json()["key"]
    return secret


@pytest.fixture
def api_key(stack: Stack) -> str:
    """A fresh API key holding every scope."""
    return new_key(stack, ["read", "write", "support"])


@pytest.fixture
def sync_client(stack: Stack, api_key: str) -> Iterator[OfferHub]:
    with OfferHub(api_key=api_key, base_url=stack.api_url) as client:
        yield client


@pytest.fixture
async def async_client(stack: Stack, api_key: str) -> AsyncIterator[AsyncOfferHub]:
    async with AsyncOfferHub(api_key=api_key, base_url=stack.api_url) as client:
        yield client


@pytest.fixture
async def master_client(stack: Stack) -> AsyncIterator[AsyncOfferHub]:
    async with AsyncOfferHub(api_key=stack.master_key, base_url=stack.api_url) as client:
        yield client


@pytest.fixture
async def airtm_async_client(airtm: AirtmStack, api_key: str) -> AsyncIterator[AsyncOfferHub]:
    """A client of the session's airtm-mode API (same database, so the same keys)."""
    async with AsyncOfferHub(api_key=api_key, base_url=airtm.api_url) as client:
        yield client


@pytest.fixture
def airtm_sync_client(airtm: AirtmStack, api_key: str) -> Iterator[OfferHub]:
    """The blocking client on the airtm-mode API."""
    with OfferHub(api_key=api_key, base_url=airtm.api_url) as client:
        yield client
