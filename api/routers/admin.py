"""Master-key administration: maintenance mode (`/admin/maintenance/{status,enable,disable}`)
and reconciliation runs (`/admin/reconciliation/...`, operations.md §2)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update
from sqlmodel import col

from api import reconciliation
from api.errors import ApiJSONResponse
from api.maintenance import MaintenanceState, marketplace_row
from api.pagination import CursorQuery, LimitQuery
from api.policy import Access, ContextDep, GuardedRoute, RequestContext, Retention, ServicesDep, policy
from api.schemas import field_error
from api.services import Services
from models.audit import audit_entry
from models.reconciliation_io import RUN_STATUSES
from models.tables import Marketplace
from models.timefmt import utcnow

router = APIRouter(route_class=GuardedRoute, tags=["admin"])


class MaintenanceEnable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(default="System maintenance in progress", min_length=1, max_length=500)
    retry_after_seconds: int = Field(default=300, ge=1, le=86400)


async def _apply(services: Services, context: RequestContext, values: dict[str, Any], action: str) -> dict[str, Any]:
    row = await marketplace_row(services)
    before = MaintenanceState.of(row)
    async with services.sessions() as session, session.begin():
        updated = (
            await session.execute(
                update(Marketplace)
                .where(col(Marketplace.id) == row.id)
                .values(**values, updated_at=utcnow())
                .returning(Marketplace)
            )
        ).scalar_one()
        state = MaintenanceState.of(updated)
        session.add(
            audit_entry(
                action=action,
                resource_type="maintenance",
                resource_id=row.id,
                actor=context.actor,
                before={"enabled": before.enabled, "message": before.message},
                after={
                    "enabled": state.enabled,
                    "message": state.message,
                    "retry_after_seconds": state.retry_after_seconds,
                },
                request_id=context.request_id,
                idempotency_key=context.idempotency_key,
                ip=context.ip,
                user_agent=context.user_agent,
            )
        )
    await services.maintenance.publish(services, state)
    return state.view()


@router.get("/admin/maintenance/status", operation_id="maintenance-status", summary="Maintenance mode status")
@policy(Access.MASTER)
async def maintenance_status(services: ServicesDep) -> dict[str, Any]:
    return MaintenanceState.of(await marketplace_row(services)).view()


@router.post("/admin/maintenance/enable", operation_id="maintenance-enable", summary="Refuse writes with 503")
@policy(Access.MASTER, retention=Retention.SHORT, maintenance_exempt=True)
async def maintenance_enable(
    services: ServicesDep, context: ContextDep, body: MaintenanceEnable | None = None
) -> dict[str, Any]:
    body = body or MaintenanceEnable()
    values = {
        "maintenance_enabled": True,
        "maintenance_message": body.message,
        "maintenance_retry_after_seconds": body.retry_after_seconds,
        "maintenance_enabled_at": utcnow(),
        "maintenance_enabled_by": "master_key",
    }
    return await _apply(services, context, values, "MAINTENANCE_ENABLED")


@router.post("/admin/maintenance/disable", operation_id="maintenance-disable", summary="Accept writes again")
@policy(Access.MASTER, retention=Retention.SHORT, maintenance_exempt=True)
async def maintenance_disable(services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    values = {
        "maintenance_enabled": False,
        "maintenance_message": None,
        "maintenance_retry_after_seconds": None,
        "maintenance_enabled_at": None,
        "maintenance_enabled_by": None,
    }
    return await _apply(services, context, values, "MAINTENANCE_DISABLED")


# reconciliation (operations.md §2) --------------------------------------------------------------


@router.post(
    "/admin/reconciliation/run",
    operation_id="reconciliation-run",
    summary="Trigger a reconciliation run now (the run in progress, if any)",
    status_code=202,
)
@policy(Access.MASTER, retention=Retention.SHORT, maintenance_exempt=True)
async def reconciliation_run(services: ServicesDep) -> ApiJSONResponse:
    run = await reconciliation.trigger_run(services)
    return ApiJSONResponse(
        reconciliation.run_view(run),
        status_code=202,
        headers={"Location": f"/api/v1/admin/reconciliation/runs/{run.id}"},
    )


@router.get("/admin/reconciliation/runs", operation_id="reconciliation-runs-list", summary="Reconciliation runs")
@policy(Access.MASTER)
async def reconciliation_runs(
    services: ServicesDep,
    status: Annotated[str | None, Query()] = None,
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
) -> dict[str, Any]:
    if status is not None and status not in RUN_STATUSES:
        raise field_error("status", f"must be one of {', '.join(RUN_STATUSES)}")
    async with services.sessions() as session:
        rows, has_more = await reconciliation.list_runs(session, status=status, limit=limit, cursor=cursor)
    return {
        "data": [reconciliation.run_view(run) for run in rows],
        "pagination": {"has_more": has_more, "next_cursor": str(rows[-1].id) if has_more else None},
    }


@router.get(
    "/admin/reconciliation/runs/{run_id}", operation_id="reconciliation-runs-get", summary="One reconciliation run"
)
@policy(Access.MASTER)
async def reconciliation_run_get(run_id: str, services: ServicesDep) -> dict[str, Any]:
    async with services.sessions() as session:
        return reconciliation.run_view(await reconciliation.load_run(session, run_id))
