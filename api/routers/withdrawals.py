"""Withdrawals (api.md §9): create holds the amount, commit pays it out (a Stellar USDC
payment in crypto mode, an Airtm payout in airtm mode). Every money step is the
WithdrawalWorkflow's (update-with-start, then Updates); reads come from PostgreSQL."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from stellar_sdk import StrKey

from api.errors import ApiJSONResponse
from api.pagination import CursorQuery, LimitQuery, narrowed, page
from api.policy import Access, ContextDep, GuardedRoute, RequestContext, Retention, ServicesDep, policy
from api.repositories import users as users_repo
from api.repositories import withdrawals as repo
from api.routers.topups import airtm_user_problem
from api.schemas import Metadata, field_error, time_range
from api.services import Services
from api.workflow_calls import WorkflowGone, caller_of, run_create, run_update
from models.audit import audit_entry
from models.errors import ErrorCode, OfferhubError
from models.ids import IdPrefix, is_id
from models.money import Currency, Money, format_cents
from models.states import WITHDRAWAL, WithdrawalStatus
from models.tables import Withdrawal
from models.timefmt import iso, utcnow
from models.withdrawals_io import (
    WithdrawalAction,
    WithdrawalCreated,
    WithdrawalInput,
    WithdrawalOutcome,
    withdrawal_start_options,
)

router = APIRouter(route_class=GuardedRoute, tags=["withdrawals"])
DestinationType = Literal["crypto", "bank", "airtm_balance"]
RAIL_OF: dict[str, str] = {"crypto": "crypto", "bank": "airtm", "airtm_balance": "airtm"}
MEMO_BYTES = 28


class WithdrawalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str
    amount: Money
    currency: Currency = "USD"
    destination_type: DestinationType
    destination_ref: str
    memo: str | None = None
    commit: bool | None = None
    description: str | None = Field(default=None, max_length=255)
    metadata: Metadata


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=500)


def _destination_invalid(reason: str) -> OfferhubError:
    return OfferhubError(
        ErrorCode.WITHDRAWAL_DESTINATION_INVALID, f"The destination is not usable: {reason}", {"reason": reason}
    )


async def _validate(services: Services, body: WithdrawalCreate) -> None:
    """Every rule the API can check from PostgreSQL and the Airtm user lookup (cached); the
    destination account on Stellar is checked by the workflow's first step."""
    settings = services.settings
    mode = settings.payment_provider
    if RAIL_OF[body.destination_type] != mode:
        raise OfferhubError(
            ErrorCode.PROVIDER_NOT_ENABLED,
            f"destination_type {body.destination_type} needs PAYMENT_PROVIDER={RAIL_OF[body.destination_type]}",
            {"payment_provider": mode, "required_provider": RAIL_OF[body.destination_type]},
        )
    if not settings.withdrawal_min_amount <= body.amount <= settings.withdrawal_max_amount:
        raise OfferhubError(
            ErrorCode.INVALID_AMOUNT,
            "amount is outside the withdrawal limits",
            {"min": format_cents(settings.withdrawal_min_amount), "max": format_cents(settings.withdrawal_max_amount)},
        )
    async with services.sessions() as session:
        if not is_id(body.user_id, IdPrefix.USER):
            raise users_repo.not_found(body.user_id, "user_id")
        try:
            record = await users_repo.load(session, body.user_id)
        except OfferhubError:
            raise users_repo.not_found(body.user_id, "user_id") from None
    if body.destination_type == "crypto":
        if body.memo is not None and len(body.memo.encode()) > MEMO_BYTES:
            raise _destination_invalid("memo_not_allowed")
        if not StrKey.is_valid_ed25519_public_key(body.destination_ref):
            raise _destination_invalid("invalid_stellar_address")
        wallet = record.wallet
        if wallet is None or wallet.status != "READY":
            raise OfferhubError(
                ErrorCode.WALLET_NOT_READY,
                "The user's wallet is not ready yet",
                {"user_id": body.user_id, "wallet_id": wallet.id if wallet else None, "status": "PENDING"},
            )
        if wallet.public_key == body.destination_ref:
            raise _destination_invalid("own_wallet")
    else:
        if body.memo is not None:
            raise _destination_invalid("memo_not_allowed")
        if not 1 <= len(body.destination_ref) <= 128:
            raise _destination_invalid("invalid_reference")
        if record.user.airtm_user_id is None or record.user.airtm_email is None:
            raise OfferhubError(
                ErrorCode.AIRTM_USER_NOT_LINKED, "The user is not linked to Airtm", {"user_id": body.user_id}
            )
        # eligible (providers.md §3 user_readiness): the one provider read of the API, cached 5 min
        reason = await airtm_user_problem(services, record.user.airtm_email)
        if reason is not None:
            raise OfferhubError(
                ErrorCode.AIRTM_USER_INVALID,
                "The linked Airtm account cannot receive a payout",
                {"reason": reason, "user_id": body.user_id},
            )


@router.post("/withdrawals", status_code=201, operation_id="withdrawals-create", summary="Create a withdrawal")
@policy(Access.SCOPED, "write", retention=Retention.SHORT, creates=IdPrefix.WITHDRAWAL)
async def create_withdrawal(body: WithdrawalCreate, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    settings = services.settings
    await services.rate_limits.hit(
        scope="user_withdrawals",
        identity=body.user_id,
        limit=settings.rate_limit_withdrawals_per_user_per_minute,
    )
    await _validate(services, body)
    withdrawal_id = context.new_resource_id(IdPrefix.WITHDRAWAL)
    wd = WithdrawalInput(
        id=withdrawal_id,
        user_id=body.user_id,
        amount=body.amount,
        destination_type=body.destination_type,
        destination_ref=body.destination_ref,
        memo=body.memo,
        commit=body.commit if body.commit is not None else body.destination_type == "crypto",
        description=body.description,
        metadata=body.metadata,
        commit_ttl_seconds=settings.withdrawal_commit_ttl_seconds,
        poll_interval_seconds=settings.withdrawal_poll_interval_seconds,
    )
    finished = await run_create(
        services,
        context,
        "WithdrawalWorkflow",
        wd,
        withdrawal_id,
        withdrawal_start_options(wd),
        WithdrawalCreated(caller=caller_of(context)),
        WithdrawalOutcome,
    )
    location = {"Location": f"/api/v1/withdrawals/{withdrawal_id}"}
    async with services.sessions() as session:
        found = await repo.find(session, withdrawal_id)
    if found is None:  # not even the hold recorded yet: the resource as it is going to be created
        return ApiJSONResponse(_planned(wd), status_code=202, headers=location)
    return ApiJSONResponse(repo.view(found), status_code=201 if finished else 202, headers=location)


def _planned(wd: WithdrawalInput) -> dict[str, Any]:
    now = iso(utcnow())
    return {
        "id": wd.id,
        "user_id": wd.user_id,
        "amount": format_cents(wd.amount),
        "currency": "USD",
        "fee": None,
        "destination_type": wd.destination_type,
        "destination_ref": wd.destination_ref,
        "memo": wd.memo,
        "status": WithdrawalStatus.WITHDRAWAL_CREATED.value,
        "committed": False,
        "description": wd.description,
        "metadata": wd.metadata,
        "airtm_payout_id": None,
        "stellar_transaction_hash": None,
        "failure_code": None,
        "failure_reason": None,
        "expires_at": None,
        "committed_at": None,
        "completed_at": None,
        "created_at": now,
        "updated_at": now,
    }


@router.get("/withdrawals", operation_id="withdrawals-list", summary="List withdrawals")
@policy(Access.SCOPED, "read", user_reads=True)
async def list_withdrawals(
    services: ServicesDep,
    context: ContextDep,
    user_id: Annotated[str | None, Query()] = None,
    status: Annotated[WithdrawalStatus | None, Query()] = None,
    destination_type: Annotated[DestinationType | None, Query()] = None,
    created_after: Annotated[str | None, Query()] = None,
    created_before: Annotated[str | None, Query()] = None,
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
) -> dict[str, Any]:
    if user_id is not None and not is_id(user_id, IdPrefix.USER):
        raise field_error("user_id", "must be a usr_ ID")
    after, before = time_range(created_after, created_before)
    query = narrowed(
        Withdrawal,
        [
            (Withdrawal.user_id, context.audience.user_filter(user_id)),
            (Withdrawal.status, status.value if status else None),
            (Withdrawal.destination_type, destination_type),
        ],
        after,
        before,
    )
    async with services.sessions() as session:
        return await page(
            session,
            Withdrawal,
            query,
            limit=limit,
            cursor=cursor,
            cursor_valid=lambda c: is_id(c, IdPrefix.WITHDRAWAL),
            render=repo.view,
        )


@router.get("/withdrawals/{withdrawal_id}", operation_id="withdrawals-get", summary="Get a withdrawal")
@policy(Access.SCOPED, "read", user_reads=True)
async def get_withdrawal(withdrawal_id: str, services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    async with services.sessions() as session:
        return repo.view(await repo.load(session, withdrawal_id, context.audience))


async def _act(
    services: Services, context: RequestContext, withdrawal_id: str, update: str, arg: WithdrawalAction
) -> ApiJSONResponse:
    """Run a withdrawal action: 200 when done, 202 while it continues, or the refusal."""
    async with services.sessions() as session:
        await repo.load(session, withdrawal_id)
    try:
        try:
            finished = await run_update(services, context, withdrawal_id, update, arg, WithdrawalOutcome)
        except WorkflowGone:
            # the workflow ended: the record is final (terminal), every action but refresh is refused
            async with services.sessions() as session:
                wd = await repo.load(session, withdrawal_id)
            if update == "refresh":
                return ApiJSONResponse(repo.view(wd))
            if update == "commit":
                raise OfferhubError(
                    ErrorCode.WITHDRAWAL_NOT_COMMITTABLE,
                    f"withdrawal {withdrawal_id} is {wd.status}: only WITHDRAWAL_CREATED can be committed",
                    {"withdrawal_id": withdrawal_id, "current_status": wd.status},
                ) from None
            raise WITHDRAWAL.refusal_once_ended(update, wd.status, withdrawal_id) from None
    except OfferhubError as exc:
        if exc.status in (409, 422):
            await _audit_refusal(services, context, withdrawal_id, update, exc)
        raise
    async with services.sessions() as session:
        found = await repo.load(session, withdrawal_id)
    location = {"Location": f"/api/v1/withdrawals/{withdrawal_id}"}
    return ApiJSONResponse(repo.view(found), status_code=200 if finished else 202, headers={} if finished else location)


async def _audit_refusal(
    services: Services, context: RequestContext, withdrawal_id: str, action: str, error: OfferhubError
) -> None:
    """Rejected attempts that reached the domain are audited as FAILURE (domain.md §6.1)."""
    async with services.sessions() as session, session.begin():
        wd = await session.get(Withdrawal, withdrawal_id)
        session.add(
            audit_entry(
                action=f"WITHDRAWAL_{action.upper()}",
                resource_type="withdrawal",
                resource_id=withdrawal_id,
                user_id=wd.user_id if wd else None,
                actor=context.actor,
                result="FAILURE",
                error={"code": error.code.value, "message": error.message},
                request_id=context.request_id,
                idempotency_key=context.idempotency_key,
                correlation_id=withdrawal_id,
                ip=context.ip,
                user_agent=context.user_agent,
            )
        )


@router.post(
    "/withdrawals/{withdrawal_id}/commit", operation_id="withdrawals-commit", summary="Pay out a created withdrawal"
)
@policy(Access.SCOPED, "write", retention=Retention.SHORT)
async def commit_withdrawal(withdrawal_id: str, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    return await _act(services, context, withdrawal_id, "commit", WithdrawalAction(caller=caller_of(context)))


@router.post(
    "/withdrawals/{withdrawal_id}/refresh",
    operation_id="withdrawals-refresh",
    summary="Re-read the payout and apply what it reveals",
)
@policy(Access.SCOPED, "write", retention=Retention.SHORT)
async def refresh_withdrawal(withdrawal_id: str, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    return await _act(services, context, withdrawal_id, "refresh", WithdrawalAction(caller=caller_of(context)))


@router.post(
    "/withdrawals/{withdrawal_id}/cancel",
    operation_id="withdrawals-cancel",
    summary="Cancel before commit: the hold is returned",
)
@policy(Access.SCOPED, "write", retention=Retention.SHORT)
async def cancel_withdrawal(
    withdrawal_id: str, services: ServicesDep, context: ContextDep, body: CancelBody | None = None
) -> ApiJSONResponse:
    action = WithdrawalAction(caller=caller_of(context), reason=body.reason if body else None)
    return await _act(services, context, withdrawal_id, "cancel", action)
