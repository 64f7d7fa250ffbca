"""Reachability probes of each provider, for `GET /health`. Plain httpx, no retries."""

from __future__ import annotations

import base64

import httpx

from settings import VERSION, Settings

USER_AGENT = f"offerhub-orchestrator/{VERSION}"


class ProbeFailed(Exception):
    """A short, secret-free reason shown in the health report."""


async def probe_horizon(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await client.get(f"{settings.horizon_url}/")
    if response.status_code != 200:
        raise ProbeFailed(f"HTTP {response.status_code}")
    passphrase = response.json().get("network_passphrase")
    if passphrase != settings.network_passphrase:
        raise ProbeFailed("network passphrase does not match STELLAR_NETWORK_PASSPHRASE")


async def probe_trustless_work(client: httpx.AsyncClient, settings: Settings) -> None:
    # Trustless Work has no health route: a keyed read that must not be refused proves URL and key.
    response = await client.get(
        f"{settings.trustless_work_url}/helper/get-escrows-by-signer",
        params={"signer": "health-check"},
        headers={"x-api-key": settings.trustless_work_api_key.get_secret_value()},
    )
    if response.status_code in (401, 403):
        raise ProbeFailed("API key refused")
    if response.status_code >= 500 or response.status_code == 404:
        raise ProbeFailed(f"HTTP {response.status_code}")


async def probe_airtm(client: httpx.AsyncClient, settings: Settings) -> None:
    assert settings.airtm_api_key is not None and settings.airtm_api_secret is not None
    pair = f"{settings.airtm_api_key.get_secret_value()}:{settings.airtm_api_secret.get_secret_value()}"
    response = await client.get(
        f"{settings.airtm_url}/me", headers={"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    )
    if response.status_code in (401, 403):
        raise ProbeFailed("credentials refused")
    if response.status_code != 200:
        raise ProbeFailed(f"HTTP {response.status_code}")


def probe_client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=timeout, headers={"User-Agent": USER_AGENT})
