"""`GET /health` compares the chain with PostgreSQL: recorded platform wallets must be on it."""

from __future__ import annotations

from typing import Any

import httpx

from cli.stack import LOOPBACK, free_port
from tests.support import Stack, assert_eventually


async def test_health_is_degraded_when_a_platform_wallet_is_not_on_the_chain(stack: Stack) -> None:
    # a sandbox from genesis (same seed, so the same USDC issuer) beside the session's
    # database: what a restarted dev sandbox without its snapshot looked like
    port = free_port()
    names = ("sandbox-genesis", "api-genesis-chain")
    try:
        stack.spawn(names[0], ["sandbox", "run", "--port", str(port)], port=port)
        url = stack.spawn_api(names[1], {"STELLAR_HORIZON_URL": f"http://{LOOPBACK}:{port}/horizon"})
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def degraded() -> dict[str, Any] | None:
                # the session's platform wallets are counted once the worker has activated them
                response = await http.get("/health")
                report: dict[str, Any] = response.json()
                error = report["checks"]["stellar_horizon"]["error"] or ""
                return report if response.status_code == 503 and "platform wallets" in error else None

            report = await assert_eventually(degraded, timeout=20, interval=0.5, message="never reported degraded")
        assert report is not None and report["status"] == "degraded"
        horizon = report["checks"]["stellar_horizon"]
        assert (horizon["status"], horizon["latency_ms"]) == ("error", None)
        # the airtm-mode worker of the session (when a test started it) adds its agent wallets
        missing = horizon["error"].removeprefix("platform wallets not on the chain: ").split(", ")
        assert {"RESOLVER", "TREASURY"} <= set(missing) <= {"RESOLVER", "TREASURY", "BUYER_AGENT", "SELLER_AGENT"}
        assert all(report["checks"][name]["status"] == "ok" for name in ("database", "redis", "temporal"))
    finally:
        for process in [p for p in stack.processes if p.name in names]:
            process.stop()
            stack.processes.remove(process)

    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as http:
        response = await http.get("/health")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["stellar_horizon"]["status"] == "ok"
