"""The idempotency layer of domain.md §7: a Redis fast path over a durable Postgres record.

`begin` decides whether a keyed request executes, replays or is refused; `finish` stores
a storable response or releases the key so a retry re-executes. While a request runs its
lease is renewed, so a crashed holder's key becomes free after the lease lapses.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from api.services import Services
from models.errors import ErrorCode, OfferhubError
from models.tables import IdempotencyRecord
from models.timefmt import utcnow

log = logging.getLogger("offerhub.idempotency")

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
LEASE_RENEWAL_SECONDS = 20
REDIS_MAX_SECONDS = 86400
NOT_STORED_STATUSES = frozenset({401, 403, 429})


def validate_key(value: str) -> str:
    if not KEY_PATTERN.fullmatch(value):
        raise OfferhubError(
            ErrorCode.VALIDATION_ERROR,
            "Idempotency-Key must be 1-255 visible ASCII characters (send a UUID v4)",
            {"header": "Idempotency-Key"},
        )
    return value


def canonical_body(raw: bytes) -> bytes:
    if not raw.strip():
        return b"{}"
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):  # refused later (api.md §1.2); its bytes identify it
        return raw
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint(namespace: str, method: str, path: str, raw_body: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(f"{namespace}\n{method}\n{path}\n".encode())
    digest.update(canonical_body(raw_body))
    return digest.hexdigest()


def is_storable(status: int, body: Any) -> bool:
    if status >= 500 or status in NOT_STORED_STATUSES:
        return False
    # a resource may carry an `error` field of its own (a reconciliation run: null)
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code not in (ErrorCode.IDEMPOTENCY_KEY_REUSED, ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any
    location: str | None
    resource_id: str | None = None  # the ID the request allocated (a create's), for re-reading a `202`


@dataclass(frozen=True)
class Execute:
    """This request holds the key; `resource_id` is the ID a create must use."""

    resource_id: str | None


def _reused(key: str) -> OfferhubError:
    return OfferhubError(
        ErrorCode.IDEMPOTENCY_KEY_REUSED,
        "This Idempotency-Key was used with a different request",
        {"idempotency_key": key},
    )


def _in_progress(key: str) -> OfferhubError:
    return OfferhubError(
        ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS,
        "A request with this Idempotency-Key is still being processed",
        {"idempotency_key": key},
        headers={"Retry-After": "1"},
    )


def _redis_key(namespace: str, key: str) -> str:
    digest = hashlib.sha256(namespace.encode() + b"\n" + key.encode()).hexdigest()
    return f"offerhub:idem:{digest}"


class IdempotencyStore:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.lock_seconds = services.settings.idempotency_lock_seconds

    async def begin(
        self,
        *,
        namespace: str,
        key: str,
        fingerprint: str,
        method: str,
        path: str,
        retention_seconds: int | None,
        new_resource_id: str | None,
    ) -> Execute | StoredResponse:
        cached = await self._cached(namespace, key)
        if cached is not None:
            if cached["fingerprint"] != fingerprint:
                raise _reused(key)
            return StoredResponse(cached["status"], cached["body"], cached["location"], cached.get("resource_id"))

        now = utcnow()
        expires_at = now + timedelta(seconds=retention_seconds) if retention_seconds is not None else None
        lease = now + timedelta(seconds=self.lock_seconds)
        async with self.services.sessions() as session, session.begin():
            inserted = await session.execute(
                insert(IdempotencyRecord)
                .values(
                    namespace=namespace,
                    key=key,
                    fingerprint=fingerprint,
                    method=method,
                    path=path,
                    status="IN_PROGRESS",
                    resource_id=new_resource_id,
                    locked_until=lease,
                    expires_at=expires_at,
                )
                .on_conflict_do_nothing()
                .returning(col(IdempotencyRecord.resource_id))
            )
            row = inserted.first()
            if row is not None:
                return Execute(row.resource_id)

            record = (
                await session.execute(
                    select(IdempotencyRecord)
                    .where(col(IdempotencyRecord.namespace) == namespace, col(IdempotencyRecord.key) == key)
                    .with_for_update()
                )
            ).scalar_one()
            if record.expires_at is not None and record.expires_at <= now:
                # past retention: the key is new again
                record.fingerprint, record.method, record.path = fingerprint, method, path
                record.status, record.resource_id = "IN_PROGRESS", new_resource_id
                record.response_status = record.response_body = record.response_location = None
                record.completed_at, record.locked_until, record.expires_at = None, lease, expires_at
                record.updated_at = now
                return Execute(new_resource_id)
            if record.fingerprint != fingerprint:
                raise _reused(key)
            if record.status == "COMPLETED":
                assert record.response_status is not None
                return StoredResponse(
                    record.response_status, record.response_body, record.response_location, record.resource_id
                )
            if record.locked_until is not None and record.locked_until > now:
                raise _in_progress(key)
            # the holder crashed or released the key: take it, reusing the allocated ID
            record.locked_until, record.updated_at = lease, now
            if record.resource_id is None:
                record.resource_id = new_resource_id
            return Execute(record.resource_id)

    @contextlib.asynccontextmanager
    async def lease(self, namespace: str, key: str) -> Any:
        """Renew the lease every 20 s while the request executes."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(LEASE_RENEWAL_SECONDS)
                async with self.services.sessions() as session, session.begin():
                    await session.execute(
                        update(IdempotencyRecord)
                        .where(
                            col(IdempotencyRecord.namespace) == namespace,
                            col(IdempotencyRecord.key) == key,
                            col(IdempotencyRecord.status) == "IN_PROGRESS",
                        )
                        .values(locked_until=text(f"now() + interval '{self.lock_seconds} seconds'"))
                    )

        task = asyncio.create_task(renew())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def finish(
        self, *, namespace: str, key: str, fingerprint: str, response: StoredResponse, retention_seconds: int | None
    ) -> None:
        where = (col(IdempotencyRecord.namespace) == namespace, col(IdempotencyRecord.key) == key)
        async with self.services.sessions() as session, session.begin():
            if is_storable(response.status, response.body):
                await session.execute(
                    update(IdempotencyRecord)
                    .where(*where)
                    .values(
                        status="COMPLETED",
                        response_status=response.status,
                        response_body=response.body,
                        response_location=response.location,
                        completed_at=utcnow(),
                        locked_until=None,
                        updated_at=utcnow(),
                    )
                )
            else:
                # release: a retry may execute at once; fingerprint and allocated ID are kept
                await session.execute(
                    update(IdempotencyRecord).where(*where).values(locked_until=utcnow(), updated_at=utcnow())
                )
                return
        await self._cache(namespace, key, fingerprint, response, retention_seconds)

    async def _cached(self, namespace: str, key: str) -> dict[str, Any] | None:
        try:
            raw = await self.services.redis.get(_redis_key(namespace, key))
        except Exception:
            return None
        return json.loads(raw) if raw else None

    async def _cache(
        self, namespace: str, key: str, fingerprint: str, response: StoredResponse, retention_seconds: int | None
    ) -> None:
        ttl = min(retention_seconds or REDIS_MAX_SECONDS, REDIS_MAX_SECONDS)
        payload = {
            "fingerprint": fingerprint,
            "status": response.status,
            "body": response.body,
            "location": response.location,
            "resource_id": response.resource_id,
        }
        try:
            await self.services.redis.set(_redis_key(namespace, key), json.dumps(payload), ex=ttl)
        except Exception as exc:
            log.warning("idempotency fast path not cached: %s", type(exc).__name__)
