"""Who is calling: API key, token or master key, resolved from `Authorization: Bearer`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.sql import func
from sqlmodel import col

from api import credentials
from api.key_cache import MAX_ENTRIES, REVOKED_CHANNEL, ActiveKey
from api.services import Services
from models.errors import ErrorCode, OfferhubError
from models.tables import ApiKey
from models.timefmt import utcnow

log = logging.getLogger("offerhub.auth")

CredentialType = Literal["api_key", "token", "master_key"]
MASTER_NAMESPACE = "master"
TOUCH_SECONDS = 60
# key ID -> when this process last asked Redis whether to write its `last_used_at`
_touched: dict[str, float] = {}


@dataclass(frozen=True)
class Audience:
    """Whose data a credential reads: everyone's, or one user's (a user-bound token, api.md §4).

    Routers and repositories ask it, never the credential, so the narrowing rules live here:
    a resource is visible when it involves the user; a list is narrowed to the user."""

    user_id: str | None = None

    @property
    def bound(self) -> bool:
        return self.user_id is not None

    def sees(self, *involved: str | None) -> bool:
        """May it read a resource involving these users (a user itself, a buyer and a seller, ...)?"""
        return self.user_id is None or self.user_id in involved

    def user_filter(self, requested: str | None) -> str | None:
        """The `user_id` a list or stream keeps: the bound user whatever was asked. An explicit
        filter for another user is `404 USER_NOT_FOUND`, never a hint that it exists."""
        if self.user_id is None:
            return requested
        if requested is not None and requested != self.user_id:
            raise OfferhubError(ErrorCode.USER_NOT_FOUND, f"User {requested} not found", {"user_id": requested})
        return self.user_id


EVERYONE = Audience()


@dataclass(frozen=True)
class Credential:
    type: CredentialType
    key_id: str | None  # the API key (a token's parent); None for the master key
    name: str | None
    scopes: tuple[str, ...]
    expires_at: datetime | None = None
    user_id: str | None = None  # a user-bound token's user

    @property
    def audience(self) -> Audience:
        return Audience(self.user_id) if self.user_id is not None else EVERYONE

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @property
    def namespace(self) -> str:
        """Idempotency and rate-limit namespace: tokens share their parent key's."""
        return self.key_id or MASTER_NAMESPACE

    @property
    def is_master(self) -> bool:
        return self.type == "master_key"

    @property
    def actor(self) -> tuple[str, str | None]:
        return self.type, self.key_id


def bearer_secret(authorization: str | None) -> str:
    if not authorization or not authorization.strip():
        raise OfferhubError(ErrorCode.UNAUTHORIZED, "Authorization: Bearer <secret> is required")
    scheme, _, secret = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise OfferhubError(ErrorCode.INVALID_API_KEY, "The Authorization header must be `Bearer <secret>`")
    return secret.strip()


def invalid_key() -> OfferhubError:
    return OfferhubError(ErrorCode.INVALID_API_KEY, "The credential is unknown, revoked or expired")


async def resolve(services: Services, secret: str) -> Credential:
    """Any valid credential, or 401 INVALID_API_KEY."""
    settings = services.settings
    if credentials.constant_time_equals(secret, settings.offerhub_master_key.get_secret_value()):
        return Credential("master_key", None, None, ())
    if secret.startswith(credentials.TOKEN_PREFIX):
        claims = credentials.read_token(secret, settings.token_secret, utcnow())
        if claims is None:
            raise invalid_key()
        parent = await _active_key(services, claims.api_key_id)
        if parent is None:
            raise invalid_key()
        scopes = tuple(s for s in claims.scopes if s in parent.scopes)
        return Credential("token", parent.id, parent.name, scopes, claims.expires_at, claims.user_id)
    cache = services.keys
    cache.listen(services.redis)
    known = cache.owner(secret)  # verified before: only its status can have changed
    key = await _active_key(services, known) if known is not None else await _verify(services, secret)
    if key is None:
        raise invalid_key()
    await _touch(services, key.id)
    return Credential("api_key", key.id, key.name, key.scopes)


async def _verify(services: Services, secret: str) -> ActiveKey | None:
    """The ACTIVE key whose salted hash the secret matches (remembered by this process)."""
    parts = credentials.split_api_key(secret)
    if parts is None:
        return None
    key_prefix, lookup_prefix = parts
    lookup = services.keys.begin()
    async with services.sessions() as session:
        candidates = (
            (
                await session.execute(
                    select(ApiKey).where(
                        col(ApiKey.lookup_prefix) == lookup_prefix, col(ApiKey.key_prefix) == key_prefix
                    )
                )
            )
            .scalars()
            .all()
        )
    for row in candidates:
        if credentials.verify_api_key(secret, row.salt, row.secret_hash):
            key = _active(row)
            services.keys.remember_owner(secret, row.id)
            services.keys.put(row.id, key, lookup)
            return key
    return None


async def still_valid(services: Services, credential: Credential) -> bool:
    """Whether a credential accepted earlier still would be: not expired, its key not revoked
    (a long-lived event stream asks this every SSE_CREDENTIAL_CHECK_SECONDS)."""
    if credential.expired(utcnow()):
        return False
    if credential.key_id is None:
        return True
    return await _active_key(services, credential.key_id) is not None


async def key_revoked(services: Services, key_id: str) -> None:
    """Forget a revoked key here at once, and in every other API process (Redis pub/sub);
    without Redis they forget it within KEY_CACHE_SECONDS anyway."""
    services.keys.evict(key_id)
    try:
        await services.redis.publish(REVOKED_CHANNEL, key_id)
    except Exception as exc:
        log.warning("key revocation not published: %s", type(exc).__name__)


def _active(row: ApiKey) -> ActiveKey | None:
    return ActiveKey(row.id, row.name, tuple(row.scopes)) if row.status == "ACTIVE" else None


async def _active_key(services: Services, key_id: str) -> ActiveKey | None:
    """The key while ACTIVE, as PostgreSQL had it less than KEY_CACHE_SECONDS ago."""
    cache = services.keys
    cache.listen(services.redis)
    cached = cache.get(key_id)
    if cached is not None:
        return cached[0]
    lookup = cache.begin()
    async with services.sessions() as session:
        row = await session.get(ApiKey, key_id)
    key = _active(row) if row is not None else None
    cache.put(key_id, key, lookup)
    return key


async def _touch(services: Services, key_id: str) -> None:
    """`last_used_at`, written at most once a minute per key (Redis decides who writes; each
    process asks it at most once a minute per key)."""
    now = time.monotonic()
    if now - _touched.get(key_id, -TOUCH_SECONDS) < TOUCH_SECONDS:
        return
    if len(_touched) >= MAX_ENTRIES:
        _touched.clear()
    _touched[key_id] = now
    try:
        first = await services.redis.set(f"offerhub:key-touched:{key_id}", b"1", nx=True, ex=TOUCH_SECONDS)
    except Exception:  # Redis down: skip the bookkeeping, never the request
        return
    if first:
        async with services.sessions() as session, session.begin():
            await session.execute(update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=func.now()))
