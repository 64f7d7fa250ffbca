"""Idempotency-Key: one effect per key, replays marked, reuse and races refused."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from api.idempotency import Execute, IdempotencyStore, StoredResponse
from api.services import Services
from models.errors import OfferhubError
from tests.api.test_envelope import assert_error
from tests.support import Stack, create_key, stack_settings


def pg_dsn(stack: Stack) -> str:
    return stack.database_url.replace("postgresql+asyncpg://", "postgresql://")


async def count_keys_named(stack: Stack, name: str) -> int:
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM api_keys WHERE name = $1", name))
    finally:
        await conn.close()


async def test_replay_returns_the_stored_answer_without_the_secret(
    client: httpx.AsyncClient, stack: Stack, master: dict[str, str]
) -> None:
    name, key = f"idem-{uuid.uuid4()}", str(uuid.uuid4())
    headers = {**master, "Idempotency-Key": key}
    first = await client.post("/auth/api-keys", json={"name": name, "scopes": ["read"]}, headers=headers)
    assert first.status_code == 201 and first.headers["x-idempotency-key"] == key
    assert "idempotent-replayed" not in first.headers
    replay = await client.post("/auth/api-keys", json={"scopes": ["read"], "name": name}, headers=headers)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["location"] == first.headers["location"]
    assert replay.json() == {**first.json(), "key": None}
    assert replay.headers["x-request-id"] != first.headers["x-request-id"]
    assert await count_keys_named(stack, name) == 1
    reused = await client.post("/auth/api-keys", json={"name": name + "-other", "scopes": ["read"]}, headers=headers)
    error = assert_error(reused, 409, "IDEMPOTENCY_KEY_REUSED")
    assert error["details"] == {"idempotency_key": key}
    assert reused.headers["x-idempotency-key"] == key


async def test_fifty_concurrent_identical_posts_apply_once(
    client: httpx.AsyncClient, stack: Stack, master: dict[str, str]
) -> None:
    name, key = f"race-{uuid.uuid4()}", str(uuid.uuid4())
    headers = {**master, "Idempotency-Key": key}
    responses = await asyncio.gather(
        *[client.post("/auth/api-keys", json={"name": name, "scopes": ["read"]}, headers=headers) for _ in range(50)]
    )
    created = [r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    replayed = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
    in_progress = [r for r in responses if r.status_code == 409]
    assert len(created) == 1
    assert len(replayed) + len(in_progress) == 49
    for response in in_progress:
        assert response.json()["error"]["code"] == "IDEMPOTENCY_KEY_IN_PROGRESS"
        assert response.headers["retry-after"] == "1"
    assert all(r.headers["x-idempotency-key"] == key for r in responses)
    assert {r.json()["id"] for r in replayed} <= {created[0].json()["id"]}
    assert await count_keys_named(stack, name) == 1


async def test_same_key_under_two_credentials_is_two_records(
    client: httpx.AsyncClient, stack: Stack, master: dict[str, str], full_key: dict[str, str]
) -> None:
    key = str(uuid.uuid4())
    by_master = await client.post(
        "/auth/token", json={"api_key_id": None} | {}, headers={**master, "Idempotency-Key": key}
    )
    assert by_master.status_code == 400  # master needs api_key_id; stored as the answer for (master, key)
    by_key = await client.post("/auth/token", json={}, headers={**full_key, "Idempotency-Key": key})
    assert by_key.status_code == 201 and "idempotent-replayed" not in by_key.headers
    replay = await client.post("/auth/token", json={}, headers={**full_key, "Idempotency-Key": key})
    assert replay.headers["idempotent-replayed"] == "true" and replay.json()["token"] is None


async def test_a_released_key_re_executes_with_the_same_resource_id(stack: Stack) -> None:
    services = Services.build(stack_settings(stack))
    store = IdempotencyStore(services)
    record = {"namespace": "key_test", "key": str(uuid.uuid4()), "fingerprint": "f" * 64}

    async def begin(new_id: str) -> Execute | StoredResponse:
        return await store.begin(**record, method="POST", path="/orders", retention_seconds=60, new_resource_id=new_id)

    async def finish(response: StoredResponse) -> None:
        await store.finish(**record, response=response, retention_seconds=60)

    try:
        assert await begin("ord_first") == Execute("ord_first")
        with pytest.raises(OfferhubError) as held:
            await begin("ord_second")
        assert held.value.code == "IDEMPOTENCY_KEY_IN_PROGRESS"
        # a 5xx answer releases the key: the retry executes at once, under the ID allocated first
        await finish(StoredResponse(503, {"error": {}}, None))
        assert await begin("ord_third") == Execute("ord_first")
        created = StoredResponse(201, {"id": "ord_first"}, "/api/v1/orders/ord_first", "ord_first")
        await finish(created)
        assert await begin("ord_fourth") == created
    finally:
        await services.close()


async def test_every_answer_to_a_keyed_request_echoes_the_key(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    def with_key(headers: dict[str, str]) -> tuple[str, dict[str, str]]:
        key = str(uuid.uuid4())
        return key, {**headers, "Idempotency-Key": key}

    key, headers = with_key({"Authorization": "Bearer ohk_not_a_key"})
    response = await client.post("/orders/ord_missing/reserve", headers=headers)
    assert_error(response, 401, "INVALID_API_KEY")
    assert response.headers["x-idempotency-key"] == key
    read_only = {"Authorization": f"Bearer {(await create_key(client, stack.master_key, ['read']))['key']}"}
    key, headers = with_key(read_only)
    response = await client.post("/orders/ord_missing/reserve", headers=headers)
    assert_error(response, 403, "INSUFFICIENT_SCOPE")
    assert response.headers["x-idempotency-key"] == key
    key, headers = with_key(full_key)
    response = await client.post("/orders/ord_missing/reserve", headers=headers)
    assert_error(response, 404, "ORDER_NOT_FOUND")
    assert response.headers["x-idempotency-key"] == key
    replay = await client.post("/orders/ord_missing/reserve", headers=headers)
    assert_error(replay, 404, "ORDER_NOT_FOUND")
    assert replay.headers["x-idempotency-key"] == key and replay.headers["idempotent-replayed"] == "true"
    key, headers = with_key(full_key)
    response = await client.post("/orders", json={"title": "no parties"}, headers=headers)
    assert_error(response, 400, "VALIDATION_ERROR")
    assert response.headers["x-idempotency-key"] == key
    response = await client.post("/orders", json={}, headers={**full_key, "Idempotency-Key": "bad key"})
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["details"] == {"header": "Idempotency-Key"} and "x-idempotency-key" not in response.headers
