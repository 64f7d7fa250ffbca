"""The airtm-mode worker and API run beside the crypto ones in the test session."""

from __future__ import annotations

import httpx


async def test_the_airtm_mode_api_serves_its_config_and_health(
    airtm_client: httpx.AsyncClient, full_key: dict[str, str]
) -> None:
    config = (await airtm_client.get("/config", headers=full_key)).json()
    assert config["payment_provider"] == "airtm", config
    health = await airtm_client.get("/health")
    assert health.status_code == 200, health.text
