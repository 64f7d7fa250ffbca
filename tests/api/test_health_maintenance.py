"""Health of every dependency, and maintenance mode refusing writes while reads work."""

from __future__ import annotations

import httpx
from fastapi import APIRouter

from api.policy import Access, GuardedRoute, Retention, policy
from tests.api.test_envelope import assert_error
from tests.support import Stack, assert_eventually, bearer, create_key, in_process_api


async def test_health_is_ok_when_every_dependency_answers(client: httpx.AsyncClient) -> None:
    async def healthy() -> httpx.Response | None:
        response = await client.get("/health")
        return response if response.status_code == 200 else None

    response = await assert_eventually(healthy, timeout=20, message="health never became 200")
    assert response is not None
    report = response.json()
    assert report["status"] == "healthy" and report["payment_provider"] == "crypto"
    for name in ("database", "redis", "temporal", "stellar_horizon", "trustless_work"):
        assert report["checks"][name]["status"] == "ok", report["checks"]
    assert report["checks"]["airtm"] == {"status": "skipped", "latency_ms": None, "error": None}
    assert "x-ratelimit-limit" in response.headers
    live = await client.get("/health/live")
    assert live.status_code == 200 and live.json()["status"] == "ok"


async def test_health_is_503_when_a_dependency_fails(stack: Stack) -> None:
    url = stack.spawn_api("api-no-provider", {"STELLAR_HORIZON_URL": "http://127.0.0.1:9/horizon"})
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/health")
    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "degraded"
    assert report["checks"]["stellar_horizon"]["status"] == "error" and report["checks"]["database"]["status"] == "ok"


async def test_maintenance_refuses_writes_keeps_reads(
    client: httpx.AsyncClient, master: dict[str, str], full_key: dict[str, str]
) -> None:
    enabled = await client.post(
        "/admin/maintenance/enable", json={"message": "DB upgrade", "retry_after_seconds": 120}, headers=master
    )
    try:
        assert enabled.status_code == 200
        state = enabled.json()
        assert state["enabled"] is True and state["message"] == "DB upgrade" and state["enabled_by"] == "master_key"
        minted = await client.post("/auth/token", json={}, headers=full_key)
        # /auth is exempt: token minting keeps working for browsers
        assert minted.status_code == 201
        probe = await client.post("/health", headers=full_key)  # a write on a route that has none is still 405
        assert probe.status_code == 405
        assert (await client.get("/config", headers=full_key)).status_code == 200
        assert (await client.get("/me", headers=full_key)).json()["maintenance"] is True
        status = (await client.get("/admin/maintenance/status", headers=master)).json()
        assert status["enabled"] is True and status["retry_after_seconds"] == 120
    finally:
        disabled = await client.post("/admin/maintenance/disable", headers=master)
    assert disabled.status_code == 200
    assert disabled.json() | {"updated_at": None} == {
        "enabled": False,
        "message": None,
        "retry_after_seconds": None,
        "enabled_at": None,
        "enabled_by": None,
        "updated_at": None,
    }


async def test_maintenance_503_envelope(stack: Stack, client: httpx.AsyncClient, master: dict[str, str]) -> None:
    router = APIRouter(route_class=GuardedRoute)

    @router.post("/api/v1/_probe/writes")
    @policy(Access.SCOPED, "write", retention=Retention.SHORT)
    async def write() -> dict[str, bool]:
        return {"written": True}

    key = bearer((await create_key(client, stack.master_key, ["write"]))["key"])
    async with in_process_api(stack, router) as http:
        assert (await http.post("/_probe/writes", headers=key)).status_code == 200
        await client.post("/admin/maintenance/enable", json={"retry_after_seconds": 42}, headers=master)
        try:

            async def refused() -> httpx.Response | None:
                response = await http.post("/_probe/writes", headers=key)
                return response if response.status_code == 503 else None

            await assert_eventually(refused, timeout=3, message="maintenance not applied within 3 s")
            response = await http.post("/_probe/writes", headers={**key, "Idempotency-Key": "maint-1"})
            error = assert_error(response, 503, "MAINTENANCE")
            assert response.headers["retry-after"] == "42"
            assert error["details"]["retry_after_seconds"] == 42 and error["details"]["enabled_at"]
        finally:
            await client.post("/admin/maintenance/disable", headers=master)

        async def accepted() -> bool:
            response = await http.post("/_probe/writes", headers={**key, "Idempotency-Key": "maint-1"})
            return response.status_code == 200 and "idempotent-replayed" not in response.headers

        # a refused request never stores its key: the same key executes once maintenance ends
        await assert_eventually(accepted, timeout=3, message="the refused key was stored instead of released")
