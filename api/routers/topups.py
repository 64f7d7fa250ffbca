"""Top-up reads (api.md §6.2, §6.3): crypto deposits and Airtm pay-ins, from PostgreSQL."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api.pagination import CursorQuery, LimitQuery, narrowed, page
from api.policy import Access, GuardedRoute, ServicesDep, policy
from api.schemas import field_error, time_range
from models.errors import ErrorCode, OfferhubError
from models.ids import IdPrefix, is_id
from models.money import format_cents
from models.states import TopupStatus
from models.tables import Topup
from models.timefmt import iso

router = APIRouter(route_class=GuardedRoute, tags=["topups"])


def topup_view(t: Topup) -> dict[str, Any]:
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


@router.get("/topups", operation_id="topups-list", summary="List top-ups (crypto deposits and Airtm pay-ins)")
@policy(Access.SCOPED, "read")
async def list_topups(
    services: ServicesDep,
    user_id: Annotated[str | None, Query()] = None,
    status: Annotated[TopupStatus | None, Query()] = None,
    provider: Annotated[Literal["airtm", "crypto"] | None, Query()] = None,
    created_after: Annotated[str | None, Query()] = None,
    created_before: Annotated[str | None, Query()] = None,
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
) -> dict[str, Any]:
    if user_id is not None and not is_id(user_id, IdPrefix.USER):
        raise field_error("user_id", "must be a usr_ ID")
    after, before = time_range(created_after, created_before)
    query = narrowed(
        Topup,
        [(Topup.user_id, user_id), (Topup.status, status.value if status else None), (Topup.provider, provider)],
        after,
        before,
    )
    async with services.sessions() as session:
        return await page(
            session,
            Topup,
            query,
            limit=limit,
            cursor=cursor,
            cursor_valid=lambda c: is_id(c, IdPrefix.TOPUP),
            render=topup_view,
        )


@router.get("/topups/{topup_id}", operation_id="topups-get", summary="Get a top-up")
@policy(Access.SCOPED, "read")
async def get_topup(topup_id: str, services: ServicesDep) -> dict[str, Any]:
    if is_id(topup_id, IdPrefix.TOPUP):
        async with services.sessions() as session:
            found = await session.get(Topup, topup_id)
        if found is not None:
            return topup_view(found)
    raise OfferhubError(ErrorCode.TOPUP_NOT_FOUND, f"Top-up {topup_id} not found", {"topup_id": topup_id})
