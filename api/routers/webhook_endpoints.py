"""`/webhook-endpoints` (api.md §11.1-11.5): where the outbox relay delivers events.

Plain PostgreSQL writes with their audit entries (no events, api.md §1.4). The secret is
shown in the `201` of creation and the `200` of rotation only (the stored idempotent replay
blanks it), and kept sealed under WALLET_ENCRYPTION_KEY (associated data `whe:<id>`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlmodel import col
from temporalio.service import RPCError

from api.errors import ApiJSONResponse
from api.pagination import CursorQuery, LimitQuery, page
from api.policy import Access, ContextDep, GuardedRoute, RequestContext, Retention, ServicesDep, policy
from api.repositories import webhook_endpoints as repo
from api.schemas import field_error
from api.services import Services
from models.hostile_input import MAX_URL_LENGTH, has_control
from models.ids import IdPrefix, is_id
from models.tables import WebhookDelivery, WebhookEndpoint
from models.webhook_delivery import EndpointStatus, pattern_problem, url_problem

log = logging.getLogger("offerhub.webhooks")
router = APIRouter(route_class=GuardedRoute, tags=["webhook-endpoints"])


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    event_types: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=255)

    @field_validator("event_types")
    @classmethod
    def _catalog(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            problem = pattern_problem(pattern)
            if problem is not None:
                raise ValueError(problem)
        return list(dict.fromkeys(patterns))  # a repeated pattern is kept once

    @field_validator("description")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and has_control(value):
            raise ValueError("must not contain control characters")
        return value


def _who(context: RequestContext) -> repo.Actor:
    return repo.Actor(context.actor, context.request_id, context.idempotency_key, context.ip, context.user_agent)


@router.post(
    "/webhook-endpoints",
    status_code=201,
    operation_id="webhook-endpoints-create",
    summary="Register a webhook endpoint",
)
@policy(Access.SCOPED, "write", retention=Retention.SHORT, creates=IdPrefix.WEBHOOK_ENDPOINT, secret_fields=("secret",))
async def create_endpoint(body: WebhookEndpointCreate, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    settings = services.settings
    problem = url_problem(body.url, settings.offerhub_environment)
    if problem is not None:
        raise field_error("url", problem)
    async with services.sessions() as session, session.begin():
        endpoint, secret = await repo.create(
            session,
            services.vault,
            _who(context),
            endpoint_id=context.new_resource_id(IdPrefix.WEBHOOK_ENDPOINT),
            url=body.url,
            event_types=body.event_types,
            description=body.description,
            limit=settings.webhook_max_endpoints,
        )
    return ApiJSONResponse(
        repo.endpoint_view(endpoint, secret),
        status_code=201,
        headers={"Location": f"/api/v1/webhook-endpoints/{endpoint.id}"},
    )


@router.get("/webhook-endpoints", operation_id="webhook-endpoints-list", summary="List active webhook endpoints")
@policy(Access.SCOPED, "read")
async def list_endpoints(
    services: ServicesDep, limit: int = LimitQuery, cursor: str | None = CursorQuery
) -> dict[str, Any]:
    query = select(WebhookEndpoint).where(col(WebhookEndpoint.status) == EndpointStatus.ACTIVE)
    async with services.sessions() as session:
        return await page(
            session,
            WebhookEndpoint,
            query,
            limit=limit,
            cursor=cursor,
            cursor_valid=lambda c: is_id(c, IdPrefix.WEBHOOK_ENDPOINT),
            render=repo.endpoint_view,
        )


@router.get("/webhook-endpoints/{endpoint_id}", operation_id="webhook-endpoints-get", summary="A webhook endpoint")
@policy(Access.SCOPED, "read")
async def get_endpoint(endpoint_id: str, services: ServicesDep) -> dict[str, Any]:
    async with services.sessions() as session:
        return repo.endpoint_view(await repo.active(session, endpoint_id))


@router.delete(
    "/webhook-endpoints/{endpoint_id}",
    operation_id="webhook-endpoints-delete",
    summary="Delete a webhook endpoint; its pending deliveries are canceled",
)
@policy(Access.SCOPED, "write", retention=Retention.SHORT)
async def delete_endpoint(endpoint_id: str, services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    async with services.sessions() as session, session.begin():
        endpoint, pending = await repo.delete(session, _who(context), endpoint_id)
    await _cancel_deliveries(services, pending)
    return repo.endpoint_view(endpoint)


async def _cancel_deliveries(services: Services, delivery_ids: list[str]) -> None:
    """Cancel the delivery workflows still waiting (best effort: a delivery that wakes up finds its
    endpoint deleted and sends nothing, so a Temporal outage here loses nothing)."""
    if not delivery_ids:
        return
    try:
        client = await services.temporal()
    except Exception as exc:
        log.warning("webhook deliveries not canceled (Temporal unreachable): %s", type(exc).__name__)
        return
    gate = asyncio.Semaphore(20)

    async def cancel(delivery_id: str) -> None:
        async with gate:
            with contextlib.suppress(RPCError):  # already finished, or never started
                await client.get_workflow_handle(delivery_id).cancel()

    await asyncio.gather(*(cancel(d) for d in delivery_ids))


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret",
    operation_id="webhook-endpoints-rotate-secret",
    summary="Rotate a webhook endpoint's signing secret",
)
@policy(Access.SCOPED, "write", retention=Retention.SHORT, secret_fields=("secret",))
async def rotate_secret(endpoint_id: str, services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    async with services.sessions() as session, session.begin():
        endpoint, secret = await repo.rotate_secret(
            session,
            services.vault,
            _who(context),
            endpoint_id,
            services.settings.webhook_secret_rotation_overlap_seconds,
        )
    return repo.endpoint_view(endpoint, secret)


@router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries",
    operation_id="webhook-endpoints-deliveries",
    summary="Deliveries of events to a webhook endpoint",
)
@policy(Access.SCOPED, "read")
async def list_deliveries(
    endpoint_id: str,
    services: ServicesDep,
    status: Annotated[Literal["PENDING", "SUCCEEDED", "FAILED"] | None, Query()] = None,
    event_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
) -> dict[str, Any]:
    if event_id is not None and not is_id(event_id, IdPrefix.EVENT):
        raise field_error("event_id", "must be an evt_ ID")
    async with services.sessions() as session:
        await repo.active(session, endpoint_id)
        query = select(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == endpoint_id)
        if status is not None:
            query = query.where(col(WebhookDelivery.status) == status)
        if event_id is not None:
            query = query.where(col(WebhookDelivery.event_id) == event_id)
        return await page(
            session,
            WebhookDelivery,
            query,
            limit=limit,
            cursor=cursor,
            cursor_valid=lambda c: is_id(c, IdPrefix.WEBHOOK_DELIVERY),
            render=repo.delivery_view,
        )
