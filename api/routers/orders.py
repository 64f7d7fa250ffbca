"""Orders, escrow, milestones, release and refund (api.md §7). Every action is an Update on
the order's (or milestone's) workflow; reads come from PostgreSQL."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy

from api.errors import ApiJSONResponse
from api.pagination import CursorQuery, LimitQuery, check_cursor, envelope, page_statement
from api.policy import Access, ContextDep, GuardedRoute, RequestContext, Retention, ServicesDep, policy
from api.repositories import orders as repo
from api.repositories.users import not_found as user_not_found
from api.schemas import ExternalId, Metadata, field_error, time_range
from api.services import Services
from api.workflow_calls import WorkflowGone, caller_of, failure, run_update, update_id
from models.audit import audit_entry
from models.errors import ErrorCode, OfferhubError
from models.ids import IdPrefix, is_id, new_id
from models.money import Currency, Money, format_cents
from models.orders_io import (
    Cancel,
    EscrowAction,
    MilestoneAction,
    MilestoneInput,
    MilestoneOutcome,
    OrderCreated,
    OrderInput,
    OrderOutcome,
    Reserve,
    Settle,
    order_start_options,
)
from models.states import MILESTONE, ORDER, OrderStatus
from models.tables import Order, User

router = APIRouter(route_class=GuardedRoute, tags=["orders"])
REF = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class MilestoneCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    milestone_ref: str
    title: str = Field(min_length=1, max_length=200)
    amount: Money

    @field_validator("milestone_ref")
    @classmethod
    def _ref(cls, value: str) -> str:
        if not REF.fullmatch(value) or value.startswith("ms_"):
            raise ValueError("1-64 of [A-Za-z0-9_-], not starting with ms_")
        return value


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buyer_id: str
    seller_id: str
    amount: Money
    currency: Currency = "USD"
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    client_order_ref: ExternalId | None = None
    milestones: list[MilestoneCreate] = Field(default_factory=list, max_length=50)
    metadata: Metadata


class ReserveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Money | None = None


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=500)


class RefundBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=1000)


async def _validate(services: Services, body: OrderCreate) -> None:
    settings = services.settings
    if body.buyer_id == body.seller_id:
        raise field_error("seller_id", "buyer and seller must be different users")
    refs = [m.milestone_ref for m in body.milestones]
    if len(set(refs)) != len(refs):
        raise field_error("milestones", "milestone_ref values must be unique in the order")
    if len(body.milestones) > settings.max_milestones_per_order:
        raise field_error("milestones", f"at most {settings.max_milestones_per_order} milestones")
    amount = body.amount
    if not settings.order_min_amount <= amount <= settings.order_max_amount:
        raise OfferhubError(
            ErrorCode.INVALID_AMOUNT,
            "amount is outside the order limits",
            {"min": format_cents(settings.order_min_amount), "max": format_cents(settings.order_max_amount)},
        )
    if body.milestones and sum(m.amount for m in body.milestones) != amount:
        raise OfferhubError(
            ErrorCode.INVALID_AMOUNT,
            "milestone amounts must sum to the order amount",
            {
                "amount": format_cents(amount),
                "milestones_sum": format_cents(sum(m.amount for m in body.milestones)),
            },
        )
    async with services.sessions() as session:
        for field in ("buyer_id", "seller_id"):
            user_id = getattr(body, field)
            if not is_id(user_id, IdPrefix.USER) or await session.get(User, user_id) is None:
                raise user_not_found(user_id, field)


def _same_terms(order: Order, milestones: list[Any], body: OrderCreate) -> bool:
    mine = sorted((m.milestone_ref, m.amount) for m in milestones)
    theirs = sorted((m.milestone_ref, m.amount) for m in body.milestones)
    return (order.buyer_id, order.seller_id, order.amount, order.currency, mine) == (
        body.buyer_id,
        body.seller_id,
        body.amount,
        body.currency,
        theirs,
    )


@router.post("/orders", status_code=201, operation_id="orders-create", summary="Create an order")
@policy(Access.SCOPED, "write", retention=Retention.LONG, creates=IdPrefix.ORDER)
async def create_order(body: OrderCreate, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    """One order per `client_order_ref`: creates of one ref take turns (a transaction-level
    advisory lock held across the check and the update-with-start), so a later one finds the
    order the earlier one committed and answers 200 or 409 ORDER_ALREADY_EXISTS."""
    await _validate(services, body)
    order_id = context.new_resource_id(IdPrefix.ORDER)
    order = OrderInput(
        id=order_id,
        buyer_id=body.buyer_id,
        seller_id=body.seller_id,
        title=body.title,
        description=body.description,
        amount=body.amount,
        client_order_ref=body.client_order_ref,
        metadata=body.metadata,
        milestones=[
            MilestoneInput(
                id=new_id(IdPrefix.MILESTONE),
                milestone_ref=m.milestone_ref,
                position=i,
                title=m.title,
                amount=m.amount,
            )
            for i, m in enumerate(body.milestones)
        ],
    )
    settings = services.settings
    client = await services.temporal()
    start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        "OrderWorkflow",
        order,
        id=order_id,
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        **order_start_options(order),
    )

    async def existing_answer(session: AsyncSession, ref: str) -> ApiJSONResponse | None:
        existing = await repo.by_client_order_ref(session, ref)
        if existing is None or existing.id == order_id:  # none, or this request's own earlier attempt
            return None
        if not _same_terms(existing, await repo.milestones_of(session, existing.id), body):
            raise OfferhubError(
                ErrorCode.ORDER_ALREADY_EXISTS, "client_order_ref is used by another order", {"order_id": existing.id}
            )
        return ApiJSONResponse(await repo.view(session, existing.id), status_code=200)

    async def created() -> None:
        try:
            await client.execute_update_with_start_workflow(
                "created",
                OrderCreated(caller=caller_of(context)),
                start_workflow_operation=start,
                id=update_id(context, order_id, "created"),
                result_type=OrderOutcome,
            )
        except WorkflowUpdateFailedError as exc:
            raise failure(exc, context.request_id) from None

    ref = body.client_order_ref
    if ref is None:
        await created()
    else:
        async with services.sessions() as session, session.begin():
            await repo.claim_client_order_ref(session, ref)
            answer = await existing_answer(session, ref)
            if answer is not None:
                return answer
            try:
                await created()
            except OfferhubError as exc:
                # the workflow found the ref taken after all (claimed outside this lock)
                answer = await existing_answer(session, ref) if exc.code is ErrorCode.ORDER_ALREADY_EXISTS else None
                if answer is None:
                    raise
                return answer
    async with services.sessions() as session:
        view = await repo.view(session, order_id)
    return ApiJSONResponse(view, status_code=201, headers={"Location": f"/api/v1/orders/{order_id}"})


@router.get("/orders", operation_id="orders-list", summary="List orders")
@policy(Access.SCOPED, "read", user_reads=True)
async def list_orders(
    services: ServicesDep,
    context: ContextDep,
    status: Annotated[OrderStatus | None, Query()] = None,
    buyer_id: Annotated[str | None, Query()] = None,
    seller_id: Annotated[str | None, Query()] = None,
    user_id: Annotated[str | None, Query()] = None,
    client_order_ref: Annotated[str | None, Query()] = None,
    created_after: Annotated[str | None, Query()] = None,
    created_before: Annotated[str | None, Query()] = None,
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
) -> ApiJSONResponse:
    for name, value in (("buyer_id", buyer_id), ("seller_id", seller_id), ("user_id", user_id)):
        if value is not None and not is_id(value, IdPrefix.USER):
            raise field_error(name, "must be a usr_ ID")
    after, before = time_range(created_after, created_before)
    query = repo.list_query(
        status=status.value if status else None,
        buyer_id=buyer_id,
        seller_id=seller_id,
        user_id=context.audience.user_filter(user_id),  # a user-bound token: its orders as buyer or seller
        client_order_ref=client_order_ref,
        created_after=after,
        created_before=before,
    )
    page = page_statement(Order, query, limit=limit, cursor=cursor, cursor_valid=lambda c: is_id(c, IdPrefix.ORDER))
    # one statement (the page joined to its relations) is its own snapshot: no transaction needed
    async with services.engine.connect() as connection:
        reading = await connection.execution_options(isolation_level="AUTOCOMMIT")
        views, has_more = await repo.page_views(reading, page, limit)
        if not views:
            await check_cursor(reading, Order, cursor)
    return ApiJSONResponse(envelope(views, views, has_more))


@router.get("/orders/{order_id}", operation_id="orders-get", summary="Get an order")
@policy(Access.SCOPED, "read", user_reads=True)
async def get_order(order_id: str, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    # a response, not a dict: FastAPI would re-encode a dict field by field (jsonable_encoder)
    return ApiJSONResponse(await repo.read(services.reads, order_id, context.audience))


async def _act(
    services: Services, context: RequestContext, order_id: str, update: str, arg: Any, workflow_id: str | None = None
) -> ApiJSONResponse:
    """Run an order action: 200 with the order when done, 202 while it continues, or the refusal."""
    async with services.sessions() as session:
        await repo.load(session, order_id)
    try:
        try:
            finished = await run_update(services, context, workflow_id or order_id, update, arg, OrderOutcome)
        except WorkflowGone:
            async with services.sessions() as session:
                order = await repo.load(session, order_id)
            raise ORDER.refusal_once_ended(update, order.status, order_id) from None
    except OfferhubError as exc:
        if exc.status in (409, 422):
            await _audit_refusal(services, context, order_id, update, exc)
        raise
    async with services.sessions() as session:
        view = await repo.view(session, order_id)
    if finished:
        return ApiJSONResponse(view)
    return ApiJSONResponse(view, status_code=202, headers={"Location": f"/api/v1/orders/{order_id}"})


async def _audit_refusal(
    services: Services, context: RequestContext, order_id: str, action: str, error: OfferhubError
) -> None:
    """Rejected attempts that reached the domain are audited as FAILURE (domain.md §6.1)."""
    async with services.sessions() as session, session.begin():
        order = await session.get(Order, order_id)
        session.add(
            audit_entry(
                action=action.upper(),
                resource_type="order",
                resource_id=order_id,
                user_id=order.buyer_id if order else None,
                actor=context.actor,
                result="FAILURE",
                error={"code": error.code.value, "message": error.message},
                request_id=context.request_id,
                idempotency_key=context.idempotency_key,
                correlation_id=order_id,
                ip=context.ip,
                user_agent=context.user_agent,
            )
        )


@router.post("/orders/{order_id}/reserve", operation_id="orders-reserve", summary="Reserve the buyer's funds")
@policy(Access.SCOPED, "write", retention=Retention.LONG)
async def reserve(
    order_id: str, services: ServicesDep, context: ContextDep, body: ReserveBody | None = None
) -> ApiJSONResponse:
    amount = body.amount if body and body.amount is not None else None
    return await _act(services, context, order_id, "reserve", Reserve(caller=caller_of(context), amount=amount))


@router.post("/orders/{order_id}/cancel", operation_id="orders-cancel", summary="Cancel before escrow")
@policy(Access.SCOPED, "write", retention=Retention.LONG)
async def cancel(
    order_id: str, services: ServicesDep, context: ContextDep, body: ReasonBody | None = None
) -> ApiJSONResponse:
    return await _act(
        services, context, order_id, "cancel", Cancel(caller=caller_of(context), reason=body.reason if body else None)
    )


@router.post("/orders/{order_id}/escrow", operation_id="orders-escrow-create", summary="Deploy the escrow contract")
@policy(Access.SCOPED, "write", retention=Retention.LONG)
async def create_escrow(order_id: str, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    return await _act(services, context, order_id, "create_escrow", EscrowAction(caller=caller_of(context)))


@router.post("/orders/{order_id}/escrow/fund", operation_id="orders-escrow-fund", summary="Fund the escrow")
@policy(Access.SCOPED, "write", retention=Retention.LONG)
async def fund_escrow(order_id: str, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    return await _act(services, context, order_id, "fund_escrow", EscrowAction(caller=caller_of(context)))


@router.post(
    "/orders/{order_id}/resolution/release",
    operation_id="orders-release",
    summary="Pay everything in escrow to the seller",
)
@policy(Access.SCOPED, "write", retention=Retention.LONG)
async def release(
    order_id: str, services: ServicesDep, context: ContextDep, body: ReasonBody | None = None
) -> ApiJSONResponse:
    return await _act(
        services, context, order_id, "release", Settle(caller=caller_of(context), reason=body.reason if body else None)
    )


@router.post(
    "/orders/{order_id}/resolution/refund",
    operation_id="orders-refund",
    summary="Return everything in escrow to the buyer",
)
@policy(Access.SCOPED, "write", retention=Retention.LONG)
async def refund(order_id: str, body: RefundBody, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    return await _act(services, context, order_id, "refund", Settle(caller=caller_of(context), reason=body.reason))


@router.get("/orders/{order_id}/milestones", operation_id="milestones-list", summary="Milestones by position")
@policy(Access.SCOPED, "read", user_reads=True)
async def list_milestones(order_id: str, services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    async with services.sessions() as session:
        view = await repo.view(session, order_id, context.audience)
    return {"data": view["milestones"], "pagination": {"has_more": False, "next_cursor": None}}


@router.get("/orders/{order_id}/milestones/{milestone}", operation_id="milestones-get", summary="One milestone")
@policy(Access.SCOPED, "read", user_reads=True)
async def get_milestone(order_id: str, milestone: str, services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    async with services.sessions() as session:
        return repo.milestone_view(await repo.milestone(session, order_id, milestone, context.audience))


async def _milestone_action(
    services: Services, context: RequestContext, order_id: str, ref: str, update: str, note: str | None
) -> ApiJSONResponse:
    async with services.sessions() as session:
        order = await repo.load(session, order_id)
        milestone = await repo.milestone(session, order_id, ref)
    if order.status != "IN_PROGRESS" and milestone.status not in ("RELEASED", "CANCELED"):
        error = OfferhubError(
            ErrorCode.INVALID_STATE,
            f"the order is {order.status}: milestones cannot change",
            {
                "order_id": order_id,
                "milestone_id": milestone.id,
                "current_state": order.status,
                "allowed_states": ["IN_PROGRESS"],
            },
        )
        await _audit_refusal(services, context, order_id, f"milestone_{update}", error)
        raise error
    action = MilestoneAction(caller=caller_of(context), note=note)
    try:
        try:
            finished = await run_update(services, context, milestone.id, update, action, MilestoneOutcome)
        except WorkflowGone:
            async with services.sessions() as session:
                milestone = await repo.milestone(session, order_id, milestone.id)
            raise MILESTONE.refusal_once_ended(update, milestone.status, milestone.id) from None
    except OfferhubError as exc:
        if exc.status in (409, 422):
            await _audit_refusal(services, context, order_id, f"milestone_{update}", exc)
        raise
    async with services.sessions() as session:
        view = repo.milestone_view(await repo.milestone(session, order_id, milestone.id))
    if finished:
        return ApiJSONResponse(view)
    location = f"/api/v1/orders/{order_id}/milestones/{milestone.id}"
    return ApiJSONResponse(view, status_code=202, headers={"Location": location})


@router.post(
    "/orders/{order_id}/milestones/{milestone}/complete",
    operation_id="milestones-complete",
    summary="The seller marks a milestone done",
)
@policy(Access.SCOPED, "write", retention=Retention.LONG)
async def complete_milestone(
    order_id: str, milestone: str, services: ServicesDep, context: ContextDep, body: NoteBody | None = None
) -> ApiJSONResponse:
    return await _milestone_action(services, context, order_id, milestone, "complete", body.note if body else None)


@router.post(
    "/orders/{order_id}/milestones/{milestone}/approve",
    operation_id="milestones-approve",
    summary="The buyer approves: the milestone is paid",
)
@policy(Access.SCOPED, "write", retention=Retention.LONG)
async def approve_milestone(
    order_id: str, milestone: str, services: ServicesDep, context: ContextDep
) -> ApiJSONResponse:
    return await _milestone_action(services, context, order_id, milestone, "approve", None)
