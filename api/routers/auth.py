"""API keys (master key) and short-lived tokens: `/auth/api-keys`, `/auth/token`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select, update
from sqlmodel import col

from api import auth, credentials
from api.errors import ApiJSONResponse
from api.pagination import CursorQuery, LimitQuery, page
from api.policy import Access, ContextDep, GuardedRoute, RequestContext, Retention, ServicesDep, policy
from api.repositories import users as users_repo
from api.services import Services
from models.audit import audit_entry
from models.errors import ErrorCode, OfferhubError
from models.ids import IdPrefix, is_id
from models.tables import ApiKey
from models.timefmt import iso, utcnow

router = APIRouter(route_class=GuardedRoute, tags=["auth"])
Scope = Literal["read", "write", "support"]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(min_length=1)

    @field_validator("scopes")
    @classmethod
    def _distinct(cls, scopes: list[str]) -> list[str]:
        if len(set(scopes)) != len(scopes):
            raise ValueError("scopes must not repeat")
        return scopes


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key_id: str | None = None
    scopes: list[Scope] | None = Field(default=None, min_length=1)
    ttl_seconds: int | None = Field(default=None, ge=60, le=86400)
    user_id: str | None = Field(default=None, description='bind the token to this user (scopes must be ["read"])')


def api_key_view(key: ApiKey, secret: str | None = None) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "scopes": list(key.scopes),
        "status": key.status,
        "key": secret,
        "key_hint": key.key_hint,
        "last_used_at": iso(key.last_used_at),
        "revoked_at": iso(key.revoked_at),
        "created_at": iso(key.created_at),
        "updated_at": iso(key.updated_at),
    }


def _audit(context: RequestContext, action: str, key_id: str, **payload: Any) -> Any:
    return audit_entry(
        action=action,
        resource_type="api_key",
        resource_id=key_id,
        actor=context.actor,
        request_id=context.request_id,
        idempotency_key=context.idempotency_key,
        ip=context.ip,
        user_agent=context.user_agent,
        **payload,
    )


def _not_found(key_id: str) -> OfferhubError:
    return OfferhubError(ErrorCode.API_KEY_NOT_FOUND, f"API key {key_id} not found", {"api_key_id": key_id})


@router.post("/auth/api-keys", status_code=201, operation_id="api-keys-create", summary="Create an API key")
@policy(
    Access.MASTER, retention=Retention.SHORT, creates=IdPrefix.API_KEY, secret_fields=("key",), maintenance_exempt=True
)
async def create_api_key(body: ApiKeyCreate, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    new = credentials.generate_api_key(services.settings.api_key_prefix)
    now = utcnow()
    key = ApiKey(
        id=context.new_resource_id(IdPrefix.API_KEY),
        name=body.name,
        scopes=list(body.scopes),
        status="ACTIVE",
        key_prefix=new.key_prefix,
        lookup_prefix=new.lookup_prefix,
        salt=new.salt,
        secret_hash=new.secret_hash,
        key_hint=new.key_hint,
        created_at=now,
        updated_at=now,
    )
    async with services.sessions() as session, session.begin():
        session.add(key)
        await session.flush()
        session.add(
            _audit(
                context,
                "API_KEY_CREATED",
                key.id,
                after={"name": key.name, "scopes": key.scopes, "key_hint": key.key_hint},
            )
        )
    return ApiJSONResponse(
        api_key_view(key, new.secret), status_code=201, headers={"Location": f"/api/v1/auth/api-keys/{key.id}"}
    )


@router.get("/auth/api-keys", operation_id="api-keys-list", summary="List API keys (never their secrets)")
@policy(Access.MASTER)
async def list_api_keys(
    services: ServicesDep,
    status: Annotated[Literal["ACTIVE", "REVOKED"] | None, Query()] = None,
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
) -> dict[str, Any]:
    query = select(ApiKey)
    if status is not None:
        query = query.where(col(ApiKey.status) == status)
    async with services.sessions() as session:
        return await page(
            session,
            ApiKey,
            query,
            limit=limit,
            cursor=cursor,
            cursor_valid=lambda c: is_id(c, IdPrefix.API_KEY),
            render=api_key_view,
        )


@router.delete("/auth/api-keys/{key_id}", operation_id="api-keys-revoke", summary="Revoke an API key and its tokens")
@policy(Access.MASTER, retention=Retention.SHORT, maintenance_exempt=True)
async def revoke_api_key(key_id: str, services: ServicesDep, context: ContextDep) -> dict[str, Any]:
    if not is_id(key_id, IdPrefix.API_KEY):
        raise _not_found(key_id)
    async with services.sessions() as session, session.begin():
        key = (
            await session.execute(select(ApiKey).where(col(ApiKey.id) == key_id).with_for_update())
        ).scalar_one_or_none()
        if key is None:
            raise _not_found(key_id)
        if key.status == "ACTIVE":
            now = utcnow()
            await session.execute(
                update(ApiKey).where(col(ApiKey.id) == key_id).values(status="REVOKED", revoked_at=now, updated_at=now)
            )
            key.status, key.revoked_at, key.updated_at = "REVOKED", now, now
            session.add(
                _audit(context, "API_KEY_REVOKED", key_id, before={"status": "ACTIVE"}, after={"status": "REVOKED"})
            )
    await auth.key_revoked(services, key_id)  # every API process stops accepting it (<= 1 s)
    return api_key_view(key)


@router.post("/auth/token", status_code=201, operation_id="tokens-create", summary="Issue a short-lived token")
@policy(Access.MASTER_OR_KEY, retention=Retention.SHORT, secret_fields=("token",), maintenance_exempt=True)
async def create_token(services: ServicesDep, context: ContextDep, body: TokenCreate | None = None) -> ApiJSONResponse:
    body = body or TokenCreate()
    settings = services.settings
    caller = context.credential
    assert caller is not None
    key_id = body.api_key_id
    if caller.is_master:
        if key_id is None:
            raise _field_error("api_key_id", "required with the master key")
    elif key_id is not None and key_id != caller.key_id:
        raise _field_error("api_key_id", "an API key can only mint tokens for itself")
    else:
        key_id = caller.key_id
    assert key_id is not None
    if not is_id(key_id, IdPrefix.API_KEY):
        raise _not_found(key_id)
    async with services.sessions() as session:
        key = await session.get(ApiKey, key_id)
    if key is None:
        raise _not_found(key_id)
    if key.status != "ACTIVE":
        raise OfferhubError(
            ErrorCode.INVALID_STATE,
            f"API key {key_id} is revoked",
            {"api_key_id": key_id, "current_state": key.status, "allowed_states": ["ACTIVE"]},
        )
    scopes: list[str] = list(body.scopes) if body.scopes else list(key.scopes)
    if not set(scopes) <= set(key.scopes):
        raise _field_error("scopes", f"must be a subset of the key's scopes {list(key.scopes)}")
    ttl = body.ttl_seconds or settings.token_default_ttl_seconds
    if ttl > settings.token_max_ttl_seconds:
        raise _field_error("ttl_seconds", f"must be at most {settings.token_max_ttl_seconds}")
    if body.user_id is not None:
        await _bindable(services, body.user_id, scopes)
    now = utcnow()
    # tokens carry whole seconds; the answer shows exactly what the token holds
    expires_at = (now + timedelta(seconds=ttl)).replace(microsecond=0)
    claims = credentials.TokenClaims(key_id, tuple(scopes), expires_at, body.user_id)
    token = credentials.sign_token(claims, settings.token_secret)
    async with services.sessions() as session, session.begin():
        issued = {"scopes": scopes, "ttl_seconds": ttl, "user_id": body.user_id}
        session.add(_audit(context, "TOKEN_ISSUED", key_id, user_id=body.user_id, after=issued))
    return ApiJSONResponse(
        {
            "token": token,
            "token_type": "Bearer",
            "api_key_id": key_id,
            "scopes": scopes,
            "user_id": body.user_id,
            "expires_at": iso(claims.expires_at),
            "created_at": iso(now),
        },
        status_code=201,
    )


async def _bindable(services: Services, user_id: str, scopes: list[str]) -> None:
    """A user-bound token only reads (api.md §4), and only an existing user."""
    if scopes != ["read"]:
        raise _field_error("user_id", 'a user-bound token takes scopes ["read"] only')
    async with services.sessions() as session:
        await users_repo.load(session, user_id, field="user_id")


def _field_error(field: str, message: str) -> OfferhubError:
    return OfferhubError(
        ErrorCode.VALIDATION_ERROR, f"{field} {message}", {"fields": [{"field": field, "message": message}]}
    )
