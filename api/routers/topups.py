"""Top-ups (api.md §6): crypto deposits and Airtm pay-ins read from PostgreSQL; Airtm top-ups
created, refreshed and canceled as Updates on their TopUpWorkflow; the unauthenticated
callback that brings the user back from Airtm's checkout."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Annotated, Any, Literal
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import (
    WorkflowUpdateStage,
)

from api.errors import ApiJSONResponse, provider_failure
from api.pagination import CursorQuery, LimitQuery, narrowed, page
from api.policy import Access, ContextDep, GuardedRoute, RequestContext, Retention, ServicesDep, policy
from api.repositories import topups as repo
from api.repositories import users as users_repo
from api.schemas import Metadata, field_error, require_web_urls, time_range
from api.services import Services
from api.workflow_calls import WorkflowGone, caller_of, run_create, run_update
from models.audit import audit_entry
from models.errors import ErrorCode, OfferhubError
from models.ids import IdPrefix, is_id
from models.money import Currency, Money, format_cents
from models.orders_io import Caller
from models.states import TOPUP, TopupStatus
from models.tables import Topup, User
from models.topups_io import TopUpCancel, TopUpCreated, TopUpOutcome, TopUpRefresh, TopUpStart, topup_start_options
from providers.errors import ProviderError

log = logging.getLogger("offerhub.api.topups")
router = APIRouter(route_class=GuardedRoute, tags=["topups"])
topup_view = repo.view  # the representation (api.md §2.2), shared with other modules
CALLBACK_WAIT_SECONDS = 3.0
AIRTM_USER_CACHE_SECONDS = 300  # providers.md §4.2
RETURNED = (TopupStatus.TOPUP_PROCESSING, TopupStatus.TOPUP_SUCCEEDED)  # the callback sends these to return_url


class TopUpCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str
    amount: Money
    currency: Currency = "USD"
    return_url: str | None = Field(default=None, max_length=2048)
    cancel_url: str | None = Field(default=None, max_length=2048)
    description: str | None = Field(default=None, max_length=255)
    metadata: Metadata


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=500)


def _location(topup_id: str) -> dict[str, str]:
    return {"Location": f"/api/v1/topups/{topup_id}"}


# create ---------------------------------------------------------------------------------------


@router.post("/topups", status_code=201, operation_id="topups-create", summary="Create an Airtm top-up")
@policy(Access.SCOPED, "write", retention=Retention.SHORT, creates=IdPrefix.TOPUP, mode="airtm")
async def create_topup(body: TopUpCreate, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    """The pay-in is created by the workflow (code = top-up ID): `201` with its checkout URL,
    `202` in TOPUP_CREATED while Airtm is slow, `502` when Airtm refused (the top-up is FAILED)."""
    settings = services.settings
    await services.rate_limits.hit(
        scope="user_topups",
        identity=body.user_id,
        limit=settings.rate_limit_topups_per_user_per_minute,
    )
    topup_id = context.new_resource_id(IdPrefix.TOPUP)
    await _validate(services, context, topup_id, body)
    async with services.sessions() as session:
        earlier = await repo.find(session, topup_id)  # this request's own earlier attempt
    if earlier is not None and repo.settled(earlier):
        return _created_answer(earlier, finished=True)
    topup = TopUpStart(
        topup_id=topup_id,
        provider="airtm",
        user_id=body.user_id,
        amount=body.amount,
        description=body.description,
        metadata=body.metadata,
        return_url=body.return_url or settings.topup_default_return_url,
        cancel_url=body.cancel_url or settings.topup_default_cancel_url,
    )
    finished = await run_create(
        services,
        context,
        "TopUpWorkflow",
        topup,
        topup_id,
        topup_start_options(topup),
        TopUpCreated(caller=caller_of(context)),
        TopUpOutcome,
    )
    async with services.sessions() as session:
        recorded = await repo.find(session, topup_id)
    if recorded is None:  # not even recorded yet (the worker is down): the resource as requested
        return ApiJSONResponse(_requested_view(topup), status_code=202, headers=_location(topup_id))
    return _created_answer(recorded, finished=finished)


def _created_answer(topup: Topup, *, finished: bool) -> ApiJSONResponse:
    if topup.status == TopupStatus.TOPUP_FAILED and topup.failure_code == "PROVIDER_REJECTED":
        raise OfferhubError(
            ErrorCode.PROVIDER_ERROR,
            "Airtm refused the pay-in",
            {"provider": "airtm", "provider_message": topup.failure_reason or "", "topup_id": topup.id},
        )
    status = 201 if finished and not repo.in_flight(topup) else 202
    return ApiJSONResponse(repo.view(topup), status_code=status, headers=_location(topup.id))


def _requested_view(topup: TopUpStart) -> dict[str, Any]:
    assert topup.amount is not None
    return {
        "id": topup.topup_id,
        "user_id": topup.user_id,
        "provider": "airtm",
        "status": TopupStatus.TOPUP_CREATED.value,
        "amount": format_cents(topup.amount),
        "currency": "USD",
        "description": topup.description,
        "metadata": topup.metadata,
        "confirmation_uri": None,
        "return_url": topup.return_url,
        "cancel_url": topup.cancel_url,
        "expires_at": None,
        "airtm_payin_id": None,
        "stellar_transaction_hash": None,
        "stellar_operation_id": None,
        "source_address": None,
        "failure_code": None,
        "failure_reason": None,
        "completed_at": None,
        "created_at": None,
        "updated_at": None,
    }


async def _validate(services: Services, context: RequestContext, topup_id: str, body: TopUpCreate) -> None:
    """400 (URLs, limits) -> 404 (user) -> 422 (Airtm link and eligibility) -> 502/504 (lookup)."""
    settings = services.settings
    require_web_urls(settings.offerhub_environment, return_url=body.return_url, cancel_url=body.cancel_url)
    if not settings.topup_min_amount <= body.amount <= settings.topup_max_amount:
        raise OfferhubError(
            ErrorCode.INVALID_AMOUNT,
            "amount is outside the top-up limits",
            {"min": format_cents(settings.topup_min_amount), "max": format_cents(settings.topup_max_amount)},
        )
    async with services.sessions() as session:
        user = await session.get(User, body.user_id) if is_id(body.user_id, IdPrefix.USER) else None
    if user is None:
        raise users_repo.not_found(body.user_id, "user_id")
    if user.airtm_user_id is None or user.airtm_email is None:
        error = OfferhubError(
            ErrorCode.AIRTM_USER_NOT_LINKED, "The user is not linked to Airtm", {"user_id": body.user_id}
        )
        await _audit_refusal(services, context, topup_id, body.user_id, "TOPUP_CREATED", error)
        raise error
    reason = await airtm_user_problem(services, user.airtm_email)
    if reason is not None:
        error = OfferhubError(ErrorCode.AIRTM_USER_INVALID, "The linked Airtm account cannot pay", {"reason": reason})
        await _audit_refusal(services, context, topup_id, body.user_id, "TOPUP_CREATED", error)
        raise error


def _airtm_user_key(email: str) -> str:
    return "offerhub:airtm:user:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()


async def airtm_user_problem(services: Services, email: str) -> str | None:
    """Why the Airtm account behind `email` cannot pay or be paid (`USER_NOT_FOUND`,
    `USER_INACTIVE`, `USER_NOT_VERIFIED`), or None. The lookup's result is cached in Redis for
    5 minutes under the SHA-256 of the lower-cased e-mail (providers.md §4.2): only `id`,
    `status` and `isVerified` are kept. Without Redis the lookup goes to Airtm every time;
    an Airtm failure is 502/504."""
    key = _airtm_user_key(email)
    found: dict[str, Any] | None
    try:
        raw = await services.redis.get(key)
    except Exception as exc:
        log.warning("airtm user cache skipped: redis unavailable (%s)", type(exc).__name__)
        raw = None
    if raw is not None:
        found = json.loads(raw).get("user")
    else:
        assert services.airtm is not None
        try:
            user = await services.airtm.user_by_email(email)
        except ProviderError as exc:
            raise provider_failure(exc) from None
        found = None if user is None else {k: user.get(k) for k in ("id", "status", "isVerified")}
        try:
            await services.redis.set(key, json.dumps({"user": found}), ex=AIRTM_USER_CACHE_SECONDS)
        except Exception as exc:
            log.warning("airtm user not cached: redis unavailable (%s)", type(exc).__name__)
    if found is None:
        return "USER_NOT_FOUND"
    if str(found.get("status", "")).lower() != "active":
        return "USER_INACTIVE"
    if not found.get("isVerified"):
        return "USER_NOT_VERIFIED"
    return None


# reads ----------------------------------------------------------------------------------------


@router.get("/topups", operation_id="topups-list", summary="List top-ups (crypto deposits and Airtm pay-ins)")
@policy(Access.SCOPED, "read", user_reads=True)
async def list_topups(
    services: ServicesDep,
    context: ContextDep,
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
        [
            (Topup.user_id, context.audience.user_filter(user_id)),
            (Topup.status, status.value if status else None),
            (Topup.provider, provider),
        ],
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
            render=repo.view,
        )


@router.get("/topups/{topup_id}", operation_id="topups-get", summary="Get a top-up")
@policy(Access.SCOPED, "read", user_reads=True)
async def get_topup(topup_id: str, services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    async with services.sessions() as session:
        return repo.view(await repo.load(session, topup_id, context.audience))


# actions --------------------------------------------------------------------------------------


@router.post("/topups/{topup_id}/refresh", operation_id="topups-refresh", summary="Re-read the Airtm pay-in")
@policy(Access.SCOPED, "write", retention=Retention.SHORT)
async def refresh_topup(topup_id: str, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    return await _act(services, context, topup_id, "refresh", TopUpRefresh(caller=caller_of(context)))


@router.post("/topups/{topup_id}/cancel", operation_id="topups-cancel", summary="Cancel before the user confirms")
@policy(Access.SCOPED, "write", retention=Retention.SHORT)
async def cancel_topup(
    topup_id: str, services: ServicesDep, context: ContextDep, body: CancelBody | None = None
) -> ApiJSONResponse:
    reason = body.reason if body else None
    return await _act(services, context, topup_id, "cancel", TopUpCancel(caller=caller_of(context), reason=reason))


async def _act(services: Services, context: RequestContext, topup_id: str, update: str, arg: Any) -> ApiJSONResponse:
    """200 with the top-up when done, 202 while Airtm is slow, or the refusal (audited)."""
    async with services.sessions() as session:
        topup = await repo.load(session, topup_id)
    try:
        if update == "refresh" and (topup.provider != "airtm" or repo.settled(topup)):
            return ApiJSONResponse(repo.view(topup))  # as stored, without a provider call
        if update == "cancel" and topup.provider != "airtm":
            raise _invalid_state(topup, "crypto top-ups cannot be canceled")
        try:
            finished = await run_update(services, context, topup_id, update, arg, TopUpOutcome)
        except WorkflowGone:
            async with services.sessions() as session:
                topup = await repo.load(session, topup_id)
            if update == "refresh":
                return ApiJSONResponse(repo.view(topup))
            raise TOPUP.refusal_once_ended(update, topup.status, topup_id) from None
    except OfferhubError as exc:
        if exc.status in (409, 422):
            await _audit_refusal(services, context, topup_id, topup.user_id, f"TOPUP_{update.upper()}", exc)
        raise
    async with services.sessions() as session:
        view = repo.view(await repo.load(session, topup_id))
    if finished:
        return ApiJSONResponse(view)
    return ApiJSONResponse(view, status_code=202, headers=_location(topup_id))


def _invalid_state(topup: Topup, reason: str) -> OfferhubError:
    return OfferhubError(
        ErrorCode.INVALID_STATE,
        f"cannot cancel topup {topup.id}: {reason}",
        {"topup_id": topup.id, "current_state": topup.status, "allowed_states": [], "reason": reason},
    )


async def _audit_refusal(
    services: Services, context: RequestContext, topup_id: str, user_id: str, action: str, error: OfferhubError
) -> None:
    """Rejected attempts that reached the domain are audited as FAILURE (domain.md §6.1)."""
    async with services.sessions() as session, session.begin():
        session.add(
            audit_entry(
                action=action,
                resource_type="topup",
                resource_id=topup_id,
                user_id=user_id,
                actor=context.actor,
                result="FAILURE",
                error={"code": error.code.value, "message": error.message},
                request_id=context.request_id,
                idempotency_key=context.idempotency_key,
                correlation_id=topup_id,
                ip=context.ip,
                user_agent=context.user_agent,
            )
        )


# the way back from Airtm's checkout ------------------------------------------------------------


@router.get(
    "/topups/{topup_id}/callback",
    operation_id="topups-callback",
    summary="Where Airtm sends the user back (redirects to the marketplace)",
    status_code=302,
    response_class=RedirectResponse,
)
@policy(Access.PUBLIC)
async def topup_callback(
    topup_id: str,
    services: ServicesDep,
    context: ContextDep,
    status: Annotated[str | None, Query(max_length=64)] = None,
    code: Annotated[str | None, Query(max_length=128)] = None,
) -> RedirectResponse:
    """`status` and `code` are never trusted: the workflow re-reads the pay-in (bounded to 3 s,
    skipped in maintenance), then the recorded state picks the marketplace URL."""
    settings = services.settings
    async with services.sessions() as session:
        topup = await repo.find(session, topup_id)
    if topup is None:
        return RedirectResponse(_with_query(settings.topup_default_cancel_url, {"topup_id": topup_id}), 302)
    if (
        topup.provider == "airtm"
        and not repo.settled(topup)
        and not (await services.maintenance.current(services)).enabled
    ):
        await _refresh_briefly(services, context, topup_id)
        async with services.sessions() as session:
            topup = await repo.load(session, topup_id)
    if topup.status in RETURNED:
        target = topup.return_url or settings.topup_default_return_url
    else:
        target = topup.cancel_url or settings.topup_default_cancel_url
    return RedirectResponse(_with_query(target, {"topup_id": topup.id, "status": topup.status}), 302)


async def _refresh_briefly(services: Services, context: RequestContext, topup_id: str) -> None:
    caller = Caller(actor_type="system", actor_id=topup_id, request_id=context.request_id)

    async def refresh() -> None:
        client = await services.temporal()
        running = await client.get_workflow_handle(topup_id).start_update(
            "refresh",
            TopUpRefresh(caller=caller, source="callback"),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            result_type=TopUpOutcome,
        )
        await running.result()

    try:
        await asyncio.wait_for(refresh(), timeout=CALLBACK_WAIT_SECONDS)
    except Exception as exc:  # the redirect never fails: the recorded state decides
        log.info("callback refresh skipped", extra={"topup_id": topup_id, "error": type(exc).__name__})


def _with_query(url: str, params: dict[str, str]) -> str:
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}{urlencode(params)}"
