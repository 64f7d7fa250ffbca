"""The audit trail (api.md §13): append-only entries written with the change they record."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.pagination import CursorQuery, LimitQuery, narrowed, page
from api.policy import Access, GuardedRoute, ServicesDep, policy
from api.schemas import field_error, time_range
from models.ids import IdPrefix, is_id
from models.tables import AuditLog
from models.tables.records import ACTOR_TYPES, RESOURCE_TYPES
from models.timefmt import iso

router = APIRouter(route_class=GuardedRoute, tags=["audit"])
AUDITED_RESOURCES = (*RESOURCE_TYPES, "api_key", "webhook_endpoint", "maintenance")
SHOWN_PRECISION = timedelta(milliseconds=1)


def audit_view(a: AuditLog) -> dict[str, Any]:
    """The Audit entry representation of api.md §2.7 (payloads were redacted when written)."""
    return {
        "id": a.id,
        "occurred_at": iso(a.occurred_at),
        "action": a.action,
        "resource_type": a.resource_type,
        "resource_id": a.resource_id,
        "user_id": a.user_id,
        "actor_type": a.actor_type,
        "actor_id": a.actor_id,
        "result": a.result,
        "payload_before": a.payload_before,
        "payload_after": a.payload_after,
        "error": a.error,
        "request_id": a.request_id,
        "idempotency_key": a.idempotency_key,
        "correlation_id": a.correlation_id,
        "ip": a.ip,
        "user_agent": a.user_agent,
        "created_at": iso(a.created_at),
        "updated_at": iso(a.updated_at),
    }


@router.get("/audit/logs", operation_id="audit-logs-list", summary="The audit trail, newest first (support scope)")
@policy(Access.SCOPED, "support")
async def list_audit_logs(
    services: ServicesDep,
    resource_type: Annotated[str | None, Query()] = None,
    resource_id: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    user_id: Annotated[str | None, Query()] = None,
    actor_type: Annotated[str | None, Query()] = None,
    request_id: Annotated[str | None, Query(max_length=128)] = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
) -> dict[str, Any]:
    for name, value, allowed in (
        ("resource_type", resource_type, AUDITED_RESOURCES),
        ("actor_type", actor_type, ACTOR_TYPES),
    ):
        if value is not None and value not in allowed:
            raise field_error(name, f"must be one of {', '.join(allowed)}")
    if user_id is not None and not is_id(user_id, IdPrefix.USER):
        raise field_error("user_id", "must be a usr_ ID")
    start, end = time_range(from_, to, names=("from", "to"))
    query = narrowed(
        AuditLog,
        [
            (AuditLog.resource_type, resource_type),
            (AuditLog.resource_id, resource_id),
            (AuditLog.action, action),
            (AuditLog.user_id, user_id),
            (AuditLog.actor_type, actor_type),
            (AuditLog.request_id, request_id),
        ],
        start,
        # inclusive at the millisecond the API shows: `to` copied from an entry keeps that entry
        end + SHOWN_PRECISION if end is not None else None,
        moment="occurred_at",
    )
    async with services.sessions() as session:
        return await page(
            session,
            AuditLog,
            query,
            limit=limit,
            cursor=cursor,
            cursor_valid=lambda c: is_id(c, IdPrefix.AUDIT),
            render=audit_view,
            newest="occurred_at",
        )
