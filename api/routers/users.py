"""Users, balances and wallets (api.md §5)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import IntegrityError
from temporalio.client import WorkflowUpdateFailedError

from api.errors import ApiJSONResponse, provider_failure
from api.pagination import CursorQuery, LimitQuery, envelope, fetch_page
from api.policy import Access, ContextDep, GuardedRoute, RequestContext, Retention, ServicesDep, policy
from api.repositories import users as repo
from api.schemas import Email, ExternalId, Metadata, time_range
from api.services import Services
from api.starts import start_wallet_setup
from models.audit import audit_entry
from models.errors import ErrorCode, OfferhubError
from models.events import new_event
from models.ids import IdPrefix, is_id
from models.money import format_cents, stroops_to_cents_floor
from models.tables import Balance, User, Wallet
from models.timefmt import iso, utcnow
from models.workflow_io import ScanResult, ScanWallet
from providers.errors import ProviderError
from providers.stellar.horizon import usdc_balance_stroops
from providers.stellar.wallets import new_wallet_row

log = logging.getLogger("offerhub.api.users")
router = APIRouter(route_class=GuardedRoute, tags=["users"])
UserType = Literal["BUYER", "SELLER", "BOTH"]
UserStatus = Literal["ACTIVE", "SUSPENDED", "PENDING_VERIFICATION"]
DEPOSIT_MONITOR = "deposit-monitor"


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    external_user_id: ExternalId
    email: Email | None = None
    type: UserType = "BOTH"
    metadata: Metadata


class AirtmLink(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email


async def _wallet_setup(services: Services, wallet: Wallet) -> None:
    """Start the wallet's setup workflow (idempotent: workflow ID = wallet ID)."""
    try:
        await start_wallet_setup(await services.temporal(), services.settings, wallet)
    except Exception as exc:  # the worker re-starts pending setups; the user is created regardless
        log.warning("wallet setup not started yet", extra={"wallet_id": wallet.id, "error": type(exc).__name__})


@router.post("/users", status_code=201, operation_id="users-create", summary="Create a user (and its wallet)")
@policy(Access.SCOPED, "write", retention=Retention.SHORT, creates=IdPrefix.USER)
async def create_user(body: UserCreate, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    async with services.sessions() as session:
        existing = await repo.by_external_id(session, body.external_user_id)
    if existing is not None:
        return await _existing(services, existing)
    settings = services.settings
    now = utcnow()
    user = User(
        id=context.new_resource_id(IdPrefix.USER),
        external_user_id=body.external_user_id,
        email=body.email,
        type=body.type,
        status="ACTIVE",
        metadata_=body.metadata,
        created_at=now,
        updated_at=now,
    )
    wallet = None
    if settings.payment_provider == "crypto":
        wallet = new_wallet_row(services.vault, purpose="USER", network=settings.stellar_network, user_id=user.id)
    try:
        async with services.sessions() as session, session.begin():
            session.add(user)
            await session.flush()
            session.add(
                Balance(user_id=user.id, currency="USD", available=0, reserved=0, created_at=now, updated_at=now)
            )
            if wallet is not None:
                session.add(wallet)
            _record_created(session, user, wallet, context)
    except IntegrityError:  # a concurrent create with the same external_user_id won
        async with services.sessions() as session:
            existing = await repo.by_external_id(session, body.external_user_id)
        if existing is None:
            raise
        return await _existing(services, existing)
    if wallet is not None:
        await _wallet_setup(services, wallet)
    record = repo.UserRecord(user, Balance(user_id=user.id, available=0, reserved=0), wallet)
    return ApiJSONResponse(record.view(), status_code=201, headers={"Location": f"/api/v1/users/{user.id}"})


async def _existing(services: Services, record: repo.UserRecord) -> ApiJSONResponse:
    """A repeated external_user_id: the existing user, 200, nothing else (its wallet setup ensured)."""
    if record.wallet is not None and record.wallet.status == "PENDING":
        await _wallet_setup(services, record.wallet)
    return ApiJSONResponse(record.view(), status_code=200)


def _record_created(session: Any, user: User, wallet: Wallet | None, context: RequestContext) -> None:
    session.add(
        new_event(
            type="user.created",
            resource=("user", user.id),
            user_ids=[user.id],
            actor=context.actor,
            correlation_id=user.id,
            request_id=context.request_id,
            payload={
                "user_id": user.id,
                "external_user_id": user.external_user_id,
                "type": user.type,
                "status": user.status,
            },
        )
    )
    session.add(
        audit_entry(
            action="USER_CREATED",
            resource_type="user",
            resource_id=user.id,
            user_id=user.id,
            actor=context.actor,
            after={
                "external_user_id": user.external_user_id,
                "email": user.email,
                "type": user.type,
                "status": user.status,
            },
            request_id=context.request_id,
            idempotency_key=context.idempotency_key,
            correlation_id=user.id,
            ip=context.ip,
            user_agent=context.user_agent,
        )
    )
    if wallet is not None:
        session.add(
            audit_entry(
                action="WALLET_CREATED",
                resource_type="wallet",
                resource_id=wallet.id,
                user_id=user.id,
                actor=context.actor,
                after={"public_key": wallet.public_key, "status": "PENDING"},
                request_id=context.request_id,
                correlation_id=user.id,
            )
        )


@router.get("/users", operation_id="users-list", summary="List users")
@policy(Access.SCOPED, "read", user_reads=True)
async def list_users(
    services: ServicesDep,
    context: ContextDep,
    type: Annotated[UserType | None, Query()] = None,
    status: Annotated[UserStatus | None, Query()] = None,
    external_user_id: Annotated[str | None, Query()] = None,
    email: Annotated[str | None, Query()] = None,
    created_after: Annotated[str | None, Query()] = None,
    created_before: Annotated[str | None, Query()] = None,
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
) -> dict[str, Any]:
    after, before = time_range(created_after, created_before)
    query = repo.list_query(
        audience=context.audience,
        type=type,
        status=status,
        external_user_id=external_user_id,
        email=email,
        created_after=after,
        created_before=before,
    )
    async with services.sessions() as session:
        rows, has_more = await fetch_page(
            session, User, query, limit=limit, cursor=cursor, cursor_valid=lambda c: is_id(c, IdPrefix.USER)
        )
        records = await repo.complete(session, rows)
    return envelope([r.view() for r in records], rows, has_more)


@router.get("/users/{user_id}", operation_id="users-get", summary="Get a user")
@policy(Access.SCOPED, "read", user_reads=True)
async def get_user(user_id: str, services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    async with services.sessions() as session:
        return (await repo.load(session, user_id, context.audience)).view()


@router.get("/users/{user_id}/balance", operation_id="users-balance", summary="Available and reserved balance")
@policy(Access.SCOPED, "read", user_reads=True)
async def get_balance(user_id: str, services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    async with services.sessions() as session:
        return _balance_view(await repo.load(session, user_id, context.audience))


def _balance_view(record: repo.UserRecord) -> dict[str, Any]:
    balance = record.balance
    available = balance.available if balance else 0
    reserved = balance.reserved if balance else 0
    return {
        "user_id": record.user.id,
        "currency": "USD",
        "available": format_cents(available),
        "reserved": format_cents(reserved),
        "total": format_cents(available + reserved),
        "updated_at": iso(balance.updated_at if balance else record.user.updated_at),
    }


def _crypto_wallet(record: repo.UserRecord) -> Wallet:
    if record.wallet is None:
        raise OfferhubError(
            ErrorCode.WALLET_NOT_READY,
            "The user has no wallet",
            {"user_id": record.user.id, "wallet_id": None, "status": None},
        )
    return record.wallet


async def _onchain(services: Services, wallet: Wallet) -> dict[str, Any] | None:
    try:
        return await services.horizon.account(wallet.public_key)
    except ProviderError as exc:
        raise provider_failure(exc) from None


@router.get("/users/{user_id}/wallet", operation_id="users-wallet", summary="The user's invisible Stellar wallet")
@policy(Access.SCOPED, "read", mode="crypto", user_reads=True)
async def get_wallet(user_id: str, services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    async with services.sessions() as session:
        record = await repo.load(session, user_id, context.audience)
    wallet = _crypto_wallet(record)
    account = await _onchain(services, wallet)
    settings = services.settings
    balances = None
    trustline = False
    if account is not None:
        usdc = usdc_balance_stroops(account, settings.stellar_usdc_asset_code, settings.usdc_issuer)
        trustline = usdc is not None
        native = next((b["balance"] for b in account.get("balances", []) if b.get("asset_type") == "native"), "0")
        balances = {"usdc": f"{(usdc or 0) // 10_000_000}.{(usdc or 0) % 10_000_000:07d}", "xlm": str(native)}
    return {
        "id": wallet.id,
        "user_id": wallet.user_id,
        "public_key": wallet.public_key,
        "type": wallet.type,
        "provider": wallet.provider,
        "network": wallet.network,
        "status": wallet.status,
        "is_primary": wallet.is_primary,
        "is_active": wallet.is_active,
        "usdc_trustline": trustline,
        "onchain_balances": balances,
        "created_at": iso(wallet.created_at),
        "updated_at": iso(wallet.updated_at),
    }


@router.get("/users/{user_id}/wallet/deposit", operation_id="users-deposit", summary="How to add money")
@policy(Access.SCOPED, "read", user_reads=True)
async def get_deposit(user_id: str, services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    async with services.sessions() as session:
        record = await repo.load(session, user_id, context.audience)
    settings = services.settings
    if settings.payment_provider == "airtm":
        return {
            "user_id": user_id,
            "provider": "airtm",
            "method": "redirect_uri",
            "address": None,
            "memo": None,
            "asset": None,
            "network": None,
            "ready": record.user.airtm_user_id is not None,
            "instructions": "Create a top-up with POST /api/v1/topups and send the user to its confirmation_uri.",
        }
    wallet = _crypto_wallet(record)
    return {
        "user_id": user_id,
        "provider": "crypto",
        "method": "stellar_address",
        "address": wallet.public_key,
        "memo": None,
        "asset": {"code": settings.stellar_usdc_asset_code, "issuer": settings.usdc_issuer},
        "network": wallet.network,
        "ready": wallet.status == "READY",
        "instructions": "Send USDC on Stellar to this address. Deposits are credited automatically after confirmation.",
    }


@router.get(
    "/users/{user_id}/wallet/transactions",
    operation_id="users-wallet-transactions",
    summary="On-chain payments of the wallet, newest first",
)
@policy(Access.SCOPED, "read", mode="crypto", user_reads=True)
async def get_wallet_transactions(
    user_id: str,
    services: ServicesDep,
    context: ContextDep,
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
) -> dict[str, Any]:
    from api.pagination import check_limit

    check_limit(limit)
    if cursor is not None and not cursor.isdigit():
        raise OfferhubError(
            ErrorCode.VALIDATION_ERROR,
            "cursor must be the id of a listed record",
            {"fields": [{"field": "cursor", "message": "invalid cursor"}]},
        )
    async with services.sessions() as session:
        wallet = _crypto_wallet(await repo.load(session, user_id, context.audience))
    try:
        records = await services.horizon.payments(wallet.public_key, cursor=cursor, order="desc", limit=limit + 1)
    except ProviderError as exc:
        raise provider_failure(exc) from None
    page = records[:limit]
    data = [_chain_record(r, wallet.public_key) for r in page]
    more = len(records) > limit
    return {"data": data, "pagination": {"has_more": more, "next_cursor": page[-1]["id"] if more else None}}


def _chain_record(record: dict[str, Any], address: str) -> dict[str, Any]:
    kind = record.get("type")
    code: str | None
    issuer: str | None
    if kind == "create_account":
        source, target, amount = record.get("funder"), record.get("account"), record.get("starting_balance")
        code, issuer = "XLM", None
    elif kind == "invoke_host_function":
        changes: list[dict[str, Any]] = record.get("asset_balance_changes", [])
        change = next((c for c in changes if address in (c["from"], c["to"])), {})
        source, target, amount = change.get("from"), change.get("to"), change.get("amount")
        code, issuer = change.get("asset_code"), change.get("asset_issuer")
        kind = "payment"  # contract transfers are shown as payments with the contract as counterparty
    else:
        source, target, amount = record.get("from"), record.get("to"), record.get("amount")
        native = record.get("asset_type") == "native"
        code, issuer = ("XLM", None) if native else (record.get("asset_code"), record.get("asset_issuer"))
    return {
        "id": record["id"],
        "type": kind,
        "direction": "in" if target == address else "out",
        "from": source,
        "to": target,
        "amount": amount,
        "asset_code": code,
        "asset_issuer": issuer,
        "transaction_hash": record.get("transaction_hash"),
        "memo": (record.get("transaction") or {}).get("memo"),
        "successful": record.get("transaction_successful", True),
        "created_at": _chain_time(record.get("created_at")),
    }


def _chain_time(value: Any) -> str | None:
    if not value:
        return None
    from datetime import datetime

    return iso(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


async def _verification(services: Services, record: repo.UserRecord) -> dict[str, Any]:
    wallet = _crypto_wallet(record)
    if wallet.status != "READY":
        raise OfferhubError(
            ErrorCode.WALLET_NOT_READY,
            "The wallet is not ready yet",
            {"user_id": record.user.id, "wallet_id": wallet.id, "status": wallet.status},
        )
    account = await _onchain(services, wallet)
    settings = services.settings
    stroops = usdc_balance_stroops(account or {}, settings.stellar_usdc_asset_code, settings.usdc_issuer) or 0
    provider_cents = stroops_to_cents_floor(stroops).cents
    view = _balance_view(record)
    total = (record.balance.available + record.balance.reserved) if record.balance else 0
    discrepancy = provider_cents - total
    sign = "-" if discrepancy < 0 else ""
    return {
        **view,
        "provider_balance": format_cents(provider_cents),
        "discrepancy": sign + format_cents(abs(discrepancy)),
        "provider_verified": discrepancy == 0,
        "checked_at": iso(utcnow()),
    }


@router.get(
    "/users/{user_id}/balance/verify",
    operation_id="users-balance-verify",
    summary="Compare the ledger with the wallet's on-chain USDC",
)
@policy(Access.SCOPED, "read", mode="crypto", user_reads=True)
async def verify_balance(user_id: str, services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    async with services.sessions() as session:
        record = await repo.load(session, user_id, context.audience)
    return await _verification(services, record)


@router.post(
    "/users/{user_id}/balance/sync",
    operation_id="users-balance-sync",
    summary="Scan the wallet for deposits now, then verify",
)
@policy(Access.SCOPED, "write", retention=Retention.SHORT, mode="crypto")
async def sync_balance(user_id: str, services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    async with services.sessions() as session:
        record = await repo.load(session, user_id)
    wallet = _crypto_wallet(record)
    if wallet.status != "READY":
        raise OfferhubError(
            ErrorCode.WALLET_NOT_READY,
            "The wallet is not ready yet",
            {"user_id": user_id, "wallet_id": wallet.id, "status": wallet.status},
        )
    client = await services.temporal()
    wait = services.settings.api_update_wait_seconds
    try:
        result = await client.get_workflow_handle(DEPOSIT_MONITOR).execute_update(
            "scan_wallet", ScanWallet(wallet_id=wallet.id), result_type=ScanResult
        )
        credits = [client.get_workflow_handle(topup_id).result() for topup_id in result.topup_ids]
        await asyncio.wait_for(asyncio.gather(*credits), timeout=wait)
    except (WorkflowUpdateFailedError, TimeoutError) as exc:
        log.warning("balance sync incomplete", extra={"user_id": user_id, "error": type(exc).__name__})
        result = ScanResult(deposits_found=0, topup_ids=[])
    async with services.sessions() as session:
        record = await repo.load(session, user_id)
    body = {**await _verification(services, record), "deposits_found": result.deposits_found}
    if not body["provider_verified"]:
        async with services.sessions() as session, session.begin():
            session.add(
                audit_entry(
                    action="BALANCE_DISCREPANCY",
                    resource_type="balance",
                    resource_id=user_id,
                    user_id=user_id,
                    actor=context.actor,
                    result="FAILURE",
                    request_id=context.request_id,
                    correlation_id=user_id,
                    error={"code": "BALANCE_DISCREPANCY", "message": "ledger and wallet differ"},
                    after={
                        "total": body["total"],
                        "provider_balance": body["provider_balance"],
                        "discrepancy": body["discrepancy"],
                    },
                )
            )
    return body


@router.post("/users/{user_id}/airtm/link", operation_id="users-airtm-link", summary="Link an Airtm account")
@policy(Access.SCOPED, "write", retention=Retention.SHORT, mode="airtm")
async def link_airtm(user_id: str, body: AirtmLink, services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    async with services.sessions() as session:
        record = await repo.load(session, user_id)
    assert services.airtm is not None
    try:
        found = await services.airtm.user_by_email(body.email)
    except ProviderError as exc:
        raise provider_failure(exc) from None
    reason = None
    if found is None:
        reason = "USER_NOT_FOUND"
    elif str(found.get("status", "")).lower() != "active":
        reason = "USER_INACTIVE"
    elif not found.get("isVerified"):
        reason = "USER_NOT_VERIFIED"
    if reason is not None or found is None:
        raise OfferhubError(ErrorCode.AIRTM_USER_INVALID, "The Airtm account cannot be linked", {"reason": reason})
    airtm_id = str(found["id"])
    user = record.user
    if user.airtm_user_id == airtm_id:
        return record.view()
    if user.airtm_user_id is not None:
        raise OfferhubError(
            ErrorCode.AIRTM_USER_ALREADY_LINKED, "The user is linked to another Airtm account", {"user_id": user_id}
        )
    now = utcnow()
    try:
        async with services.sessions() as session, session.begin():
            row = await session.get(User, user_id, with_for_update=True)
            assert row is not None
            row.airtm_user_id, row.airtm_email, row.airtm_linked_at, row.updated_at = airtm_id, body.email, now, now
            session.add(
                new_event(
                    type="user.airtm_linked",
                    resource=("user", user_id),
                    user_ids=[user_id],
                    actor=context.actor,
                    correlation_id=user_id,
                    request_id=context.request_id,
                    payload={"user_id": user_id, "airtm_user_id": airtm_id, "linked_at": iso(now)},
                )
            )
            session.add(
                audit_entry(
                    action="USER_AIRTM_LINKED",
                    resource_type="user",
                    resource_id=user_id,
                    user_id=user_id,
                    actor=context.actor,
                    after={"airtm_user_id": airtm_id, "email": body.email},
                    request_id=context.request_id,
                    idempotency_key=context.idempotency_key,
                    correlation_id=user_id,
                )
            )
    except IntegrityError:
        raise OfferhubError(
            ErrorCode.AIRTM_USER_ALREADY_LINKED, "That Airtm account is linked to another user", {"user_id": user_id}
        ) from None
    async with services.sessions() as session:
        return (await repo.load(session, user_id)).view()
