"""Session fixtures: one embedded stack (PostgreSQL, Redis, Temporal, sandbox, worker, API)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.support import AirtmStack, Stack, bearer, create_key, start_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    # every payload of the session is encrypted (api/payload_codec.py): each test's client
    # must use the shared data converter, as the API, worker and CLI do
    running = start_stack({"TEMPORAL_PAYLOAD_ENCRYPTION_KEY": secrets.token_hex(32)})
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def airtm(stack: Stack) -> AirtmStack:
    """The airtm-mode worker and API, started the first time a test asks for them."""
    return stack.start_airtm()


@pytest.fixture
async def airtm_client(airtm: AirtmStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=airtm.api_url, timeout=30) as http:
        yield http


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as http:
        yield http


@pytest.fixture
def master(stack: Stack) -> dict[str, str]:
    return bearer(stack.master_key)


@pytest.fixture
async def full_key(client: httpx.AsyncClient, stack: Stack) -> dict[str, str]:
    """Headers of a fresh API key holding every scope."""
    key = await create_key(client, stack.master_key, ["read", "write", "support"])
    return bearer(key["key"])
