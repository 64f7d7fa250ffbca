"""Credentials: API keys (hashed, scoped, revocable), tokens, the master key's reach."""

from __future__ import annotations

import httpx

from tests.api.test_envelope import assert_error
from tests.support import Stack, bearer, create_key


async def test_missing_and_unknown_credentials(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/me"), 401, "UNAUTHORIZED")
    assert_error(await client.get("/me", headers=bearer("ohk_test_" + "a" * 43)), 401, "INVALID_API_KEY")
    assert_error(await client.get("/me", headers={"Authorization": "Basic abc"}), 401, "INVALID_API_KEY")
    assert_error(await client.get("/me", headers=bearer("ohk_tok_forged.sig")), 401, "INVALID_API_KEY")


async def test_master_key_only_on_auth_and_admin(
    client: httpx.AsyncClient, master: dict[str, str], full_key: dict[str, str]
) -> None:
    assert_error(await client.get("/me", headers=master), 401, "INVALID_API_KEY")
    assert_error(await client.get("/config", headers=master), 401, "INVALID_API_KEY")
    assert_error(await client.get("/auth/api-keys", headers=full_key), 401, "INVALID_API_KEY")
    assert_error(await client.get("/admin/maintenance/status", headers=full_key), 401, "INVALID_API_KEY")


async def test_create_key_shows_secret_once(client: httpx.AsyncClient, stack: Stack, master: dict[str, str]) -> None:
    response = await client.post(
        "/auth/api-keys", json={"name": "backend", "scopes": ["read", "write"]}, headers=master
    )
    assert response.status_code == 201
    key = response.json()
    assert response.headers["location"] == f"/api/v1/auth/api-keys/{key['id']}"
    assert key["id"].startswith("key_") and key["key"].startswith("ohk_test_") and len(key["key"]) == 52
    assert key["key_hint"] == f"ohk_test_…{key['key'][-4:]}"
    assert set(key) == {
        "id",
        "name",
        "scopes",
        "status",
        "key",
        "key_hint",
        "last_used_at",
        "revoked_at",
        "created_at",
        "updated_at",
    }
    assert key["created_at"].endswith("Z") and len(key["created_at"]) == 24
    listed = (await client.get("/auth/api-keys?limit=100", headers=master)).json()
    mine = next(item for item in listed["data"] if item["id"] == key["id"])
    assert mine["key"] is None and mine["status"] == "ACTIVE"

    me = await client.get("/me", headers=bearer(key["key"]))
    assert me.status_code == 200
    body = me.json()
    assert body["credential"] == {
        "type": "api_key",
        "id": key["id"],
        "name": "backend",
        "scopes": ["read", "write"],
        "expires_at": None,
    }
    assert body["marketplace_id"].startswith("mkt_") and body["environment"] == "test"


async def test_bad_key_requests(client: httpx.AsyncClient, master: dict[str, str]) -> None:
    for body in (
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["admin"]},
        {"name": "", "scopes": ["read"]},
        {"name": "x", "scopes": ["read", "read"]},
        {"name": "x" * 101, "scopes": ["read"]},
    ):
        assert_error(await client.post("/auth/api-keys", json=body, headers=master), 400, "VALIDATION_ERROR")


async def test_list_pages_newest_first(client: httpx.AsyncClient, stack: Stack, master: dict[str, str]) -> None:
    created = [(await create_key(client, stack.master_key, ["read"], name=f"page-{i}"))["id"] for i in range(3)]
    first = (await client.get("/auth/api-keys?limit=2", headers=master)).json()
    assert [item["id"] for item in first["data"]] == created[::-1][:2]
    assert first["pagination"] == {"has_more": True, "next_cursor": created[1]}
    second = (await client.get(f"/auth/api-keys?limit=1&cursor={created[1]}", headers=master)).json()
    assert [item["id"] for item in second["data"]] == [created[0]]


async def test_revoke_makes_key_and_tokens_invalid(
    client: httpx.AsyncClient, stack: Stack, master: dict[str, str]
) -> None:
    key = await create_key(client, stack.master_key, ["read", "write"])
    token = (await client.post("/auth/token", json={"scopes": ["read"]}, headers=bearer(key["key"]))).json()["token"]
    assert (await client.get("/config", headers=bearer(token))).status_code == 200
    revoked = await client.delete(f"/auth/api-keys/{key['id']}", headers=master)
    assert revoked.status_code == 200 and revoked.json()["status"] == "REVOKED" and revoked.json()["revoked_at"]
    again = await client.delete(f"/auth/api-keys/{key['id']}", headers=master)
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert_error(await client.get("/config", headers=bearer(key["key"])), 401, "INVALID_API_KEY")
    assert_error(await client.get("/config", headers=bearer(token)), 401, "INVALID_API_KEY")
    minted = await client.post("/auth/token", json={"api_key_id": key["id"]}, headers=master)
    assert_error(minted, 409, "INVALID_STATE")
    assert_error(
        await client.delete("/auth/api-keys/key_unknown1234567890123", headers=master), 404, "API_KEY_NOT_FOUND"
    )
    assert_error(await client.delete("/auth/api-keys/usr_wrongprefix", headers=master), 404, "API_KEY_NOT_FOUND")


async def test_tokens_are_scoped_subsets_and_cannot_mint(
    client: httpx.AsyncClient, stack: Stack, master: dict[str, str]
) -> None:
    key = await create_key(client, stack.master_key, ["read"])
    other = await create_key(client, stack.master_key, ["read"])
    response = await client.post("/auth/token", json={"ttl_seconds": 120}, headers=bearer(key["key"]))
    assert response.status_code == 201
    token = response.json()
    assert token["token"].startswith("ohk_tok_") and token["scopes"] == ["read"] and token["api_key_id"] == key["id"]
    me = (await client.get("/me", headers=bearer(token["token"]))).json()
    assert me["credential"]["type"] == "token" and me["credential"]["expires_at"] == token["expires_at"]
    assert_error(await client.post("/auth/token", json={}, headers=bearer(token["token"])), 401, "INVALID_API_KEY")
    assert_error(
        await client.post("/auth/token", json={"scopes": ["write"]}, headers=bearer(key["key"])),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(
        await client.post("/auth/token", json={"api_key_id": other["id"]}, headers=bearer(key["key"])),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(
        await client.post("/auth/token", json={"ttl_seconds": 30}, headers=bearer(key["key"])), 400, "VALIDATION_ERROR"
    )
    assert_error(await client.post("/auth/token", json={}, headers=master), 400, "VALIDATION_ERROR")
    by_master = await client.post("/auth/token", json={"api_key_id": key["id"]}, headers=master)
    assert by_master.status_code == 201 and by_master.json()["api_key_id"] == key["id"]
    # the write-less token cannot write, the read token can read
    assert (await client.get("/config", headers=bearer(token["token"]))).status_code == 200


async def test_config_reports_limits_and_features(client: httpx.AsyncClient, full_key: dict[str, str]) -> None:
    config = (await client.get("/config", headers=full_key)).json()
    assert config["limits"]["order"] == {"min": "1.00", "max": "50000.00"}
    assert config["features"]["crypto_deposits"] is True and config["features"]["topups"] is False
    assert config["providers"]["escrow"] == "trustless_work" and config["currencies"] == ["USD"]
    assert config["timeouts"]["update_wait_seconds"] == 25
