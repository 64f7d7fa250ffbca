"""Top-ups: the SQL and the representation behind the top-up endpoints (api.md §2.2, §6)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import EVERYONE, Audience
from models.errors import ErrorCode, OfferhubError
from models.ids import IdPrefix, is_id
from models.money import format_cents
from models.states import TOPUP, TopupStatus
from models.tables import Topup
from models.timefmt import iso


def view(t: Topup) -> dict[str, Any]:
    """The Top-up representation of api.md §2.2."""
    return {
        "id": t.id,
        "user_id": t.user_id,
        "provider": t.provider,
        "status": t.status,
        "amount": format_cents(t.amount),
        "currency": t.currency,
        "description": t.description,
        "metadata": t.metadata_,
        "confirmation_uri": t.confirmation_uri,
        "return_url": t.return_url,
        "cancel_url": t.cancel_url,
        "expires_at": iso(t.expires_at),
        "airtm_payin_id": t.airtm_payin_id,
        "stellar_transaction_hash": t.stellar_transaction_hash,
        "stellar_operation_id": t.stellar_operation_id,
        "source_address": t.source_address,
        "failure_code": t.failure_code,
        "failure_reason": t.failure_reason,
        "completed_at": iso(t.completed_at),
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
    }


def not_found(topup_id: str) -> OfferhubError:
    return OfferhubError(ErrorCode.TOPUP_NOT_FOUND, f"Top-up {topup_id} not found", {"topup_id": topup_id})


async def find(session: AsyncSession, topup_id: str) -> Topup | None:
    """The top-up, or None (a wrongly prefixed ID included)."""
    if not is_id(topup_id, IdPrefix.TOPUP):
        return None
    return await session.get(Topup, topup_id, populate_existing=True)


async def load(session: AsyncSession, topup_id: str, audience: Audience = EVERYONE) -> Topup:
    """The top-up, or 404 TOPUP_NOT_FOUND (wrong prefix, or another user's for a user-bound audience)."""
    found = await find(session, topup_id)
    if found is None or not audience.sees(found.user_id):
        raise not_found(topup_id)
    return found


def settled(topup: Topup) -> bool:
    return topup.status in TOPUP.terminal


def in_flight(topup: Topup) -> bool:
    """A create still waiting for its pay-in (the `202` of POST /topups)."""
    return topup.status == TopupStatus.TOPUP_CREATED
