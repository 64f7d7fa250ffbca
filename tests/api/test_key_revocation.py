"""Each API process remembers the keys it verified (api/key_cache.py); a revocation through one
process still reaches every other within a second: at once through Redis pub/sub, and by
the entries' age when Redis cannot tell it."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.api.test_envelope import assert_error
from tests.support import Stack, bearer, create_key


@pytest.mark.parametrize(
    "replica",
    [
        pytest.param({}, id="told-by-redis"),
        pytest.param({"REDIS_URL": "redis://127.0.0.1:1/0"}, id="without-redis"),
    ],
)
async def test_a_revocation_reaches_another_api_process_within_a_second(
    client: httpx.AsyncClient, stack: Stack, master: dict[str, str], replica: dict[str, str]
) -> None:
    other_url = await asyncio.to_thread(
        stack.spawn_api, f"api-replica-{len(stack.processes)}", {"LOG_LEVEL": "INFO", **replica}
    )
    key = await create_key(client, stack.master_key, ["read"])
    token = (await client.post("/auth/token", json={}, headers=bearer(key["key"]))).json()["token"]
    async with httpx.AsyncClient(base_url=other_url, timeout=10) as other:
        for secret in (key["key"], token):  # both processes now hold the key as verified
            assert (await client.get("/config", headers=bearer(secret))).status_code == 200
            assert (await other.get("/config", headers=bearer(secret))).status_code == 200
        revoked = await client.delete(f"/auth/api-keys/{key['id']}", headers=master)
        revoked_at = time.monotonic()
        assert revoked.status_code == 200, revoked.text
        # the revoking process forgets it at once
        assert_error(await client.get("/config", headers=bearer(key["key"])), 401, "INVALID_API_KEY")
        refused_after: dict[str, float] = {}
        while len(refused_after) < 2 and time.monotonic() - revoked_at < 3:
            for secret in {key["key"], token} - set(refused_after):
                if (await other.get("/config", headers=bearer(secret))).status_code == 401:
                    refused_after[secret] = time.monotonic() - revoked_at
            await asyncio.sleep(0.02)
        assert len(refused_after) == 2, "the other process still accepts the revoked key after 3 s"
        assert max(refused_after.values()) < 1.0, refused_after
        assert_error(await other.get("/config", headers=bearer(token)), 401, "INVALID_API_KEY")
