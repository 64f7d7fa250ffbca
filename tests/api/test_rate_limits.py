"""Per-key and per-IP limits: headers on every answer, 429 with Retry-After beyond."""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx
import pytest
import redis.asyncio as aioredis

from api.ratelimit import WINDOW_SECONDS, RateLimits
from models.errors import ErrorCode, OfferhubError
from models.rate_allowance import BLOCK_MAX
from tests.api.test_envelope import assert_error
from tests.support import Stack, bearer, create_key


@pytest.fixture(scope="module")
def limited_api(stack: Stack) -> str:
    # its own Redis database: counters are shared by every replica on one Redis, and the
    # session's other tests already spent this IP's and these keys' budgets there
    redis_url = stack.env["REDIS_URL"].rsplit("/", 1)[0] + "/1"
    return stack.spawn_api(
        "api-limited",
        {
            "RATE_LIMIT_PER_KEY_PER_MINUTE": "5",
            "RATE_LIMIT_UNAUTHENTICATED_PER_IP_PER_MINUTE": "4",
            "REDIS_URL": redis_url,
        },
    )


async def test_per_key_limit(limited_api: str, client: httpx.AsyncClient, stack: Stack) -> None:
    key = await create_key(client, stack.master_key, ["read"])
    token = (await client.post("/auth/token", json={}, headers=bearer(key["key"]))).json()["token"]
    async with httpx.AsyncClient(base_url=limited_api) as http:
        answers = [await http.get("/config", headers=bearer(key["key"])) for _ in range(3)]
        answers += [await http.get("/config", headers=bearer(token)) for _ in range(2)]  # tokens count on the parent
        assert [r.status_code for r in answers] == [200] * 5
        assert [int(r.headers["x-ratelimit-remaining"]) for r in answers] == [4, 3, 2, 1, 0]
        assert all(r.headers["x-ratelimit-limit"] == "5" for r in answers)
        refused = await http.get("/config", headers=bearer(key["key"]))
        error = assert_error(refused, 429, "RATE_LIMITED")
        assert int(refused.headers["retry-after"]) >= 1 and refused.headers["x-ratelimit-remaining"] == "0"
        assert error["details"]["scope"] == "api_key" and error["details"]["limit"] == 5
        assert error["details"]["window_seconds"] == 60
        other = await create_key(client, stack.master_key, ["read"])
        assert (await http.get("/config", headers=bearer(other["key"]))).status_code == 200


async def test_unauthenticated_limit_per_ip(limited_api: str) -> None:
    async with httpx.AsyncClient(base_url=limited_api) as http:
        statuses = [(await http.get("/health/live")).status_code for _ in range(6)]
        assert statuses[:4] == [200] * 4 and statuses[-1] == 429
        refused = await http.get("/health/live")
        assert refused.json()["error"]["details"]["scope"] == "ip"


async def test_replicas_claiming_blocks_admit_the_limit_and_no_more(stack: Stack) -> None:
    """Three replicas (each its own RateLimits on one Redis) spend one key's window at once:
    exactly the limit is admitted, the unspent tokens a replica holds excepted (models/rate_allowance.py)."""
    redis = aioredis.from_url(stack.env["REDIS_URL"].rsplit("/", 1)[0] + "/4")
    await redis.flushdb()
    replicas = [RateLimits(redis) for _ in range(3)]
    identity, limit = f"key_{secrets.token_hex(4)}", 1000

    async def spend(limits: RateLimits) -> list[int]:
        remaining = []
        for _ in range(500):
            try:
                remaining.append((await limits.hit(scope="api_key", identity=identity, limit=limit)).remaining)
            except OfferhubError as exc:
                assert exc.code is ErrorCode.RATE_LIMITED
        return remaining

    if WINDOW_SECONDS - time.time() % WINDOW_SECONDS < 5:  # the whole test in one window
        await asyncio.sleep(5)
    try:
        answers = await asyncio.gather(*(spend(r) for r in replicas))
        unspent = sum(a.left for r in replicas for a in r._held.values())
        admitted = sum(len(a) for a in answers)
        assert admitted == limit - unspent and unspent < 3 * BLOCK_MAX
        assert all(0 <= n < limit for a in answers for n in a) and all(a == sorted(a, reverse=True) for a in answers)
        # one replica alone counts exactly: each answer one less, then refused
        alone = RateLimits(redis)
        counted = [(await alone.hit(scope="api_key", identity="alone", limit=100)).remaining for _ in range(100)]
        assert counted == list(range(99, -1, -1))
        try:
            await alone.hit(scope="api_key", identity="alone", limit=100)
            raise AssertionError("the 101st request was admitted")
        except OfferhubError as exc:
            assert exc.code is ErrorCode.RATE_LIMITED and exc.headers["X-RateLimit-Remaining"] == "0"
    finally:
        await redis.aclose()
