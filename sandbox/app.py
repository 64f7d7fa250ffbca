"""The local provider sandbox (providers.md §5): one FastAPI server speaking Horizon,
Trustless Work and Airtm, plus its control API.

This first slice answers the reachability reads the orchestrator's health checks use and
publishes its genesis (`/_sandbox/info`); the ledger, transaction engine, escrow
contracts, Airtm resources and fault injection come with the provider issue.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from stellar_sdk import Keypair

DEFAULT_SEED = "offerhub-sandbox"
DEFAULT_PASSPHRASE = "OfferHub Local Sandbox ; 2026"
DEFAULT_TW_API_KEY = "sandbox.twkey"
DEFAULT_AIRTM_KEY, DEFAULT_AIRTM_SECRET = "sandbox-key", "sandbox-secret"


def derived_keypair(seed: str, name: str) -> Keypair:
    return Keypair.from_raw_ed25519_seed(hashlib.sha256(f"{seed}/{name}".encode()).digest())


def create_sandbox_app() -> FastAPI:
    seed = os.environ.get("SANDBOX_SEED", DEFAULT_SEED)
    passphrase = os.environ.get("SANDBOX_NETWORK_PASSPHRASE", DEFAULT_PASSPHRASE)
    tw_key = os.environ.get("SANDBOX_TW_API_KEY", DEFAULT_TW_API_KEY)
    airtm_pair = (
        os.environ.get("SANDBOX_AIRTM_API_KEY", DEFAULT_AIRTM_KEY),
        os.environ.get("SANDBOX_AIRTM_API_SECRET", DEFAULT_AIRTM_SECRET),
    )
    issuer = derived_keypair(seed, "usdc-issuer").public_key
    app = FastAPI(title="OFFER-HUB provider sandbox", docs_url="/_sandbox/docs", openapi_url="/_sandbox/openapi.json")

    @app.get("/_sandbox/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_sandbox/info")
    async def info() -> dict[str, Any]:
        return {
            "network_passphrase": passphrase,
            "usdc_asset": {"code": "USDC", "issuer": issuer},
            "accounts": {
                name: derived_keypair(seed, name).public_key for name in ("root", "usdc-issuer", "faucet", "tw-fee")
            },
            "seed": seed,
        }

    @app.get("/horizon/")
    async def horizon_root() -> dict[str, Any]:
        return {
            "network_passphrase": passphrase,
            "history_latest_ledger": 1,
            "core_latest_ledger": 1,
            "horizon_version": "sandbox-1",
            "current_protocol_version": 22,
        }

    @app.get("/tw/helper/get-escrows-by-signer")
    async def escrows_by_signer(signer: str, x_api_key: str | None = Header(default=None)) -> Any:
        if x_api_key != tw_key:
            return JSONResponse({"statusCode": 401, "message": "Unauthorized"}, status_code=401)
        return []

    @app.get("/airtm/v2/me")
    async def airtm_me(request: Request) -> Any:
        import base64

        expected = "Basic " + base64.b64encode(f"{airtm_pair[0]}:{airtm_pair[1]}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"code": "415904", "message": "Unauthorized"}, status_code=401)
        return {"id": "sandbox-enterprise", "name": "OFFER-HUB Sandbox Enterprise"}

    return app
