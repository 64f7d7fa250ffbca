"""Disputes decided by support staff (api.md §7.14, §8): Updates on the dispute's workflow."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlmodel import col

from api.auth import EVERYONE, Audience
from api.errors import ApiJSONResponse
from api.pagination import CursorQuery, LimitQuery, narrowed, page
from api.policy import Access, ContextDep, GuardedRoute, RequestContext, Retention, ServicesDep, policy
from api.repositories import disputes as dispute_repo
from api.repositories import orders as order_repo
from api.repositories.disputes import comment_view, dispute_view
from api.schemas import WebUrl, require_web_urls, time_range
from api.services import Services
from api.workflow_calls import WorkflowGone, caller_of, run_update
from models.disputes_io import AddComment, AssignDispute, DisputeOutcome, OpenDispute, ResolveDispute
from models.errors import ErrorCode, OfferhubError
from models.ids import IdPrefix, is_id
from models.money import Money
from models.orders_io import OrderOutcome
from models.states import DISPUTE, ORDER
from models.tables import Dispute, DisputeComment

router = APIRouter(route_class=GuardedRoute, tags=["disputes"])


class DisputeOpen(BaseModel):
    model_config = ConfigDict(extra="forbid")
    opened_by: Literal["BUYER", "SELLER"]
    reason: Literal["NOT_DELIVERED", "QUALITY_ISSUE", "OTHER"]
    description: str | None = Field(default=None, max_length=2000)
    evidence: list[WebUrl] = Field(default_factory=list, max_length=20)


class DisputeAssign(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assigned_to: str = Field(min_length=1, max_length=128)
    note: str | None = Field(default=None, max_length=1000)


class DisputeResolve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["FULL_RELEASE", "FULL_REFUND", "SPLIT"]
    release_amount: Money | None = None
    refund_amount: Money | None = None
    note: str | None = Field(default=None, max_length=2000)


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    author_type: Literal["BUYER", "SELLER", "SUPPORT"]
    author_id: str | None = Field(default=None, max_length=128)
    message: str = Field(min_length=1, max_length=5000)
    evidence: list[WebUrl] = Field(default_factory=list, max_length=20)
    visibility: Literal["PUBLIC", "INTERNAL"] = "PUBLIC"


async def _load(services: Services, dispute_id: str, audience: Audience = EVERYONE) -> Dispute:
    async with services.sessions() as session:
        found = await dispute_repo.find(session, dispute_id, audience)
    if found is not None:
        return found
    raise OfferhubError(ErrorCode.DISPUTE_NOT_FOUND, f"Dispute {dispute_id} not found", {"dispute_id": dispute_id})


def _location(dispute_id: str) -> dict[str, str]:
    return {"Location": f"/api/v1/disputes/{dispute_id}"}


@router.post(
    "/orders/{order_id}/resolution/dispute",
    status_code=201,
    operation_id="orders-dispute",
    summary="Open the order's dispute (freezes the order)",
)
@policy(Access.SCOPED, "write", retention=Retention.FOREVER, creates=IdPrefix.DISPUTE)
async def open_dispute(order_id: str, body: DisputeOpen, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    async with services.sessions() as session:
        order = await order_repo.load(session, order_id)
        existing = (
            await session.execute(select(Dispute).where(col(Dispute.order_id) == order_id))
        ).scalar_one_or_none()
    if existing is not None and order.status == "DISPUTED":
        raise OfferhubError(
            ErrorCode.DISPUTE_ALREADY_OPEN,
            "The order already has an open dispute",
            {"order_id": order_id, "dispute_id": existing.id},
        )
    require_web_urls(services.settings.offerhub_environment, evidence=body.evidence)
    dispute_id = context.new_resource_id(IdPrefix.DISPUTE)
    request = OpenDispute(
        caller=caller_of(context),
        dispute_id=dispute_id,
        opened_by=body.opened_by,
        reason=body.reason,
        description=body.description,
        evidence=body.evidence,
    )
    try:
        finished = await run_update(services, context, order_id, "open_dispute", request, OrderOutcome)
    except WorkflowGone:
        async with services.sessions() as session:
            order = await order_repo.load(session, order_id)
        raise ORDER.refusal_once_ended("open_dispute", order.status, order_id) from None
    async with services.sessions() as session:
        found = await dispute_repo.find(session, dispute_id)
        if finished and found is not None:
            return ApiJSONResponse(dispute_view(found), status_code=201, headers=_location(dispute_id))
        # still running: the dispute as recorded, or the order while the opening waits for its turn
        view = dispute_view(found) if found is not None else await order_repo.view(session, order_id)
    return ApiJSONResponse(view, status_code=202, headers=_location(dispute_id))


@router.get("/disputes", operation_id="disputes-list", summary="List disputes")
@policy(Access.SCOPED, "read", user_reads=True)
async def list_disputes(
    services: ServicesDep,
    context: ContextDep,
    order_id: Annotated[str | None, Query()] = None,
    status: Annotated[Literal["OPEN", "UNDER_REVIEW", "RESOLVED"] | None, Query()] = None,
    opened_by: Annotated[Literal["BUYER", "SELLER"] | None, Query()] = None,
    reason: Annotated[Literal["NOT_DELIVERED", "QUALITY_ISSUE", "OTHER"] | None, Query()] = None,
    assigned_to: Annotated[str | None, Query()] = None,
    created_after: Annotated[str | None, Query()] = None,
    created_before: Annotated[str | None, Query()] = None,
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
) -> dict[str, Any]:
    if order_id is not None and not is_id(order_id, IdPrefix.ORDER):
        raise OfferhubError(
            ErrorCode.VALIDATION_ERROR,
            "order_id must be an ord_ ID",
            {"fields": [{"field": "order_id", "message": "wrong prefix"}]},
        )
    after, before = time_range(created_after, created_before)
    query = dispute_repo.readable(
        narrowed(
            Dispute,
            [
                (Dispute.order_id, order_id),
                (Dispute.status, status),
                (Dispute.opened_by, opened_by),
                (Dispute.reason, reason),
                (Dispute.assigned_to, assigned_to),
            ],
            after,
            before,
        ),
        context.audience,
    )
    async with services.sessions() as session:
        return await page(
            session,
            Dispute,
            query,
            limit=limit,
            cursor=cursor,
            cursor_valid=lambda c: is_id(c, IdPrefix.DISPUTE),
            render=dispute_view,
        )


@router.get("/disputes/{dispute_id}", operation_id="disputes-get", summary="Get a dispute")
@policy(Access.SCOPED, "read", user_reads=True)
async def get_dispute(dispute_id: str, services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    return dispute_view(await _load(services, dispute_id, context.audience))


async def _act(services: Services, context: RequestContext, dispute: Dispute, update: str, arg: Any) -> ApiJSONResponse:
    try:
        finished = await run_update(services, context, dispute.id, update, arg, DisputeOutcome)
    except WorkflowGone:
        ended = await _load(services, dispute.id)
        raise DISPUTE.refusal_once_ended(update, ended.status, dispute.id) from None
    view = dispute_view(await _load(services, dispute.id))
    if finished:
        return ApiJSONResponse(view)
    return ApiJSONResponse(view, status_code=202, headers=_location(dispute.id))


@router.post("/disputes/{dispute_id}/assign", operation_id="disputes-assign", summary="Assign to an agent")
@policy(Access.SCOPED, "support", retention=Retention.FOREVER)
async def assign(dispute_id: str, body: DisputeAssign, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    dispute = await _load(services, dispute_id)
    request = AssignDispute(caller=caller_of(context), assigned_to=body.assigned_to, note=body.note)
    return await _act(services, context, dispute, "assign", request)


@router.post(
    "/disputes/{dispute_id}/resolve",
    operation_id="disputes-resolve",
    summary="Decide: full release, full refund or split",
)
@policy(Access.SCOPED, "support", retention=Retention.FOREVER)
async def resolve(dispute_id: str, body: DisputeResolve, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    dispute = await _load(services, dispute_id)
    request = ResolveDispute(
        caller=caller_of(context),
        decision=body.decision,
        release_amount=body.release_amount,
        refund_amount=body.refund_amount,
        note=body.note,
        resolved_by=dispute.assigned_to,
    )
    return await _act(services, context, dispute, "resolve", request)


@router.post(
    "/disputes/{dispute_id}/comments",
    status_code=201,
    operation_id="disputes-comment",
    summary="Add a comment or evidence",
)
@policy(Access.SCOPED, "write", retention=Retention.FOREVER, creates=IdPrefix.COMMENT)
async def add_comment(
    dispute_id: str, body: CommentCreate, services: ServicesDep, context: ContextDep
) -> ApiJSONResponse:
    dispute = await _load(services, dispute_id)
    credential = context.credential
    assert credential is not None
    if (body.author_type == "SUPPORT" or body.visibility == "INTERNAL") and "support" not in credential.scopes:
        raise OfferhubError(
            ErrorCode.INSUFFICIENT_SCOPE,
            "SUPPORT and INTERNAL comments need the support scope",
            {"required_scope": "support", "current_scopes": list(credential.scopes)},
        )
    party = {"BUYER": dispute.buyer_id, "SELLER": dispute.seller_id}.get(body.author_type)
    if party is not None and body.author_id != party:
        raise OfferhubError(
            ErrorCode.VALIDATION_ERROR,
            f"author_id must be the order's {body.author_type.lower()}",
            {"fields": [{"field": "author_id", "message": "not that party"}]},
        )
    require_web_urls(services.settings.offerhub_environment, evidence=body.evidence)
    comment_id = context.new_resource_id(IdPrefix.COMMENT)
    request = AddComment(
        caller=caller_of(context),
        comment_id=comment_id,
        author_type=body.author_type,
        author_id=body.author_id,
        message=body.message,
        evidence=body.evidence,
        visibility=body.visibility,
    )
    try:
        await run_update(services, context, dispute.id, "add_comment", request, DisputeOutcome)
    except WorkflowGone:
        ended = await _load(services, dispute.id)
        raise DISPUTE.refusal_once_ended("add_comment", ended.status, dispute.id) from None
    async with services.sessions() as session:
        comment = await dispute_repo.find_comment(session, comment_id)
    if comment is not None:  # recorded: done, whether or not the Update has returned yet
        return ApiJSONResponse(comment_view(comment), status_code=201)
    # still queued behind the dispute's lock: the dispute as recorded; the comment follows in
    # GET /disputes/{id}/comments (a replay of this key answers it once recorded)
    view = dispute_view(await _load(services, dispute.id))
    return ApiJSONResponse(view, status_code=202, headers=_location(dispute.id))


@router.get("/disputes/{dispute_id}/comments", operation_id="disputes-comments", summary="List comments")
@policy(Access.SCOPED, "read", user_reads=True)
async def list_comments(
    dispute_id: str,
    services: ServicesDep,
    context: ContextDep,
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
) -> dict[str, Any]:
    await _load(services, dispute_id, context.audience)
    query = select(DisputeComment).where(col(DisputeComment.dispute_id) == dispute_id)
    credential = context.credential
    if credential is None or "support" not in credential.scopes:
        query = query.where(col(DisputeComment.visibility) == "PUBLIC")
    async with services.sessions() as session:
        return await page(
            session,
            DisputeComment,
            query,
            limit=limit,
            cursor=cursor,
            cursor_valid=lambda c: is_id(c, IdPrefix.COMMENT),
            render=comment_view,
        )
