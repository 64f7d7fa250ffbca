"""`GET /me` (who am I) and `GET /config` (what this instance offers)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.maintenance import marketplace_row
from api.policy import Access, ContextDep, GuardedRoute, ServicesDep, policy
from models.money import SUPPORTED_CURRENCIES, format_cents
from models.timefmt import iso
from settings import VERSION

router = APIRouter(route_class=GuardedRoute, tags=["instance"])


@router.get("/me", operation_id="me-get", summary="The calling credential and instance")
@policy(Access.ANY_KEY)
async def get_me(services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    settings = services.settings
    credential = context.credential
    assert credential is not None
    marketplace = await marketplace_row(services)
    state = await services.maintenance.current(services)
    shown: dict[str, Any] = {
        "type": credential.type,
        "id": credential.key_id,
        "name": credential.name,
        "scopes": list(credential.scopes),
        "expires_at": iso(credential.expires_at),
    }
    if credential.type == "token":  # the user a token is bound to, or null (absent for API keys)
        shown["user_id"] = credential.user_id
    return {
        "marketplace_id": marketplace.id,
        "credential": shown,
        "environment": settings.offerhub_environment,
        "payment_provider": settings.payment_provider,
        "maintenance": state.enabled,
        "version": VERSION,
    }


@router.get("/config", operation_id="config-get", summary="Limits, features and providers of this instance")
@policy(Access.SCOPED, "read")
async def get_config(services: ServicesDep) -> dict[str, Any]:
    s = services.settings
    airtm = s.payment_provider == "airtm"
    return {
        "version": VERSION,
        "environment": s.offerhub_environment,
        "payment_provider": s.payment_provider,
        "currencies": list(SUPPORTED_CURRENCIES),
        "limits": {
            "topup": {"min": format_cents(s.topup_min_amount), "max": format_cents(s.topup_max_amount)},
            "withdrawal": {"min": format_cents(s.withdrawal_min_amount), "max": format_cents(s.withdrawal_max_amount)},
            "order": {"min": format_cents(s.order_min_amount), "max": format_cents(s.order_max_amount)},
            "milestones_per_order": s.max_milestones_per_order,
        },
        "features": {
            "topups": airtm,
            "crypto_deposits": not airtm,
            "withdrawal_destination_types": ["bank", "airtm_balance"] if airtm else ["crypto"],
            "milestones": True,
            "disputes": True,
            "event_stream": True,
            "outbound_webhooks": True,
        },
        "providers": {
            "escrow": "trustless_work",
            "fiat": "airtm" if airtm else None,
            "stellar_network": s.stellar_network,
            "usdc_asset": {"code": s.stellar_usdc_asset_code, "issuer": s.usdc_issuer},
        },
        "timeouts": {
            "update_wait_seconds": _number(s.api_update_wait_seconds),
            "topup_expiry_seconds": s.topup_expiry_seconds,
            "withdrawal_commit_ttl_seconds": s.withdrawal_commit_ttl_seconds,
        },
        "rate_limits": {
            "per_key_per_minute": s.rate_limit_per_key_per_minute,
            "topups_per_user_per_minute": s.rate_limit_topups_per_user_per_minute,
            "withdrawals_per_user_per_minute": s.rate_limit_withdrawals_per_user_per_minute,
            "event_streams_per_key_and_user": 1,
        },
    }


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
