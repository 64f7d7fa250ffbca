"""Outbound webhook endpoints and their deliveries in PostgreSQL (domain.md §2.19): the
representations of api.md §2.7 and the writes behind `/webhook-endpoints`.

Each write is one transaction with its audit entry (api.md §1.4: configuration endpoints
emit no events). The endpoint limit is checked under a transaction-level advisory lock, so two
concurrent creates cannot both take the last place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from models.audit import audit_entry
from models.errors import ErrorCode, OfferhubError
from models.ids import IdPrefix, is_id
from models.tables import WebhookDelivery, WebhookEndpoint
from models.timefmt import iso, utcnow
from models.webhook_delivery import (
    ENDPOINT_DELETED,
    DeliveryStatus,
    EndpointStatus,
    new_secret,
    secret_context,
    secret_hint,
)
from providers.stellar.keyvault import KeyVault

ENDPOINT_LIMIT_LOCK = 7_311_013  # pg advisory lock key serializing endpoint creation


@dataclass(frozen=True)
class Actor:
    """Who acts, for the audit entry (built from the request context by the router)."""

    actor: tuple[str, str | None]
    request_id: str | None
    idempotency_key: str | None
    ip: str | None
    user_agent: str | None


def endpoint_view(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "event_types": list(endpoint.event_types),
        "description": endpoint.description,
        "status": endpoint.status,
        "secret": secret,
        "secret_hint": endpoint.secret_hint,
        "deleted_at": iso(endpoint.deleted_at),
        "created_at": iso(endpoint.created_at),
        "updated_at": iso(endpoint.updated_at),
    }


def delivery_view(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "endpoint_id": delivery.endpoint_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_attempt_at": iso(delivery.last_attempt_at),
        "last_response_status": delivery.last_response_status,
        "last_error": delivery.last_error,
        "next_attempt_at": iso(delivery.next_attempt_at),
        "succeeded_at": iso(delivery.succeeded_at),
        "attempt_log": list(delivery.attempt_log),
        "created_at": iso(delivery.created_at),
        "updated_at": iso(delivery.updated_at),
    }


def not_found(endpoint_id: str) -> OfferhubError:
    return OfferhubError(
        ErrorCode.WEBHOOK_ENDPOINT_NOT_FOUND,
        f"Webhook endpoint {endpoint_id[:64]} not found",
        {"endpoint_id": endpoint_id[:64]},
    )


def _audit(who: Actor, action: str, endpoint_id: str, **payload: Any) -> Any:
    return audit_entry(
        action=action,
        resource_type="webhook_endpoint",
        resource_id=endpoint_id,
        actor=who.actor,
        request_id=who.request_id,
        idempotency_key=who.idempotency_key,
        ip=who.ip,
        user_agent=who.user_agent,
        **payload,
    )


async def active(session: AsyncSession, endpoint_id: str, *, for_update: bool = False) -> WebhookEndpoint:
    """The ACTIVE endpoint, else 404 (a wrong prefix, unknown or deleted)."""
    if not is_id(endpoint_id, IdPrefix.WEBHOOK_ENDPOINT):
        raise not_found(endpoint_id)
    query = select(WebhookEndpoint).where(col(WebhookEndpoint.id) == endpoint_id)
    if for_update:
        query = query.with_for_update()
    endpoint = (await session.execute(query)).scalar_one_or_none()
    if endpoint is None or endpoint.status != EndpointStatus.ACTIVE:
        raise not_found(endpoint_id)
    return endpoint


async def create(
    session: AsyncSession,
    vault: KeyVault,
    who: Actor,
    *,
    endpoint_id: str,
    url: str,
    event_types: list[str],
    description: str | None,
    limit: int,
) -> tuple[WebhookEndpoint, str]:
    """Insert the endpoint (secret sealed) with its audit entry; (endpoint, plaintext secret)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ENDPOINT_LIMIT_LOCK})
    count = await session.scalar(
        select(func.count()).select_from(WebhookEndpoint).where(col(WebhookEndpoint.status) == EndpointStatus.ACTIVE)
    )
    if int(count or 0) >= limit:
        raise OfferhubError(
            ErrorCode.WEBHOOK_ENDPOINT_LIMIT_REACHED,
            f"At most {limit} active webhook endpoints; delete one first",
            {"limit": limit},
        )
    secret = new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        url=url,
        event_types=event_types,
        description=description,
        status=EndpointStatus.ACTIVE,
        secret_encrypted=vault.seal_bytes(secret.encode(), secret_context(endpoint_id)),
        secret_hint=secret_hint(secret),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    session.add(
        _audit(
            who,
            "WEBHOOK_ENDPOINT_CREATED",
            endpoint_id,
            after={
                "url": url,
                "event_types": event_types,
                "description": description,
                "status": endpoint.status,
                "secret_hint": endpoint.secret_hint,
            },
        )
    )
    return endpoint, secret


async def delete(session: AsyncSession, who: Actor, endpoint_id: str) -> tuple[WebhookEndpoint, list[str]]:
    """Mark the endpoint DELETED and its PENDING deliveries FAILED (`ENDPOINT_DELETED`); the
    endpoint and the IDs of the deliveries whose workflows should be canceled. Deleting a
    deleted endpoint again answers it unchanged (naturally idempotent)."""
    if not is_id(endpoint_id, IdPrefix.WEBHOOK_ENDPOINT):
        raise not_found(endpoint_id)
    endpoint = await session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
    if endpoint is None:
        raise not_found(endpoint_id)
    if endpoint.status == EndpointStatus.DELETED:
        return endpoint, []
    now = utcnow()
    await session.execute(
        update(WebhookEndpoint)
        .where(col(WebhookEndpoint.id) == endpoint_id)
        .values(
            status=EndpointStatus.DELETED,
            deleted_at=now,
            updated_at=now,
            previous_secret_encrypted=None,
            previous_secret_expires_at=None,
        )
    )
    canceled = await session.execute(
        update(WebhookDelivery)
        .where(col(WebhookDelivery.endpoint_id) == endpoint_id, col(WebhookDelivery.status) == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.FAILED, last_error=ENDPOINT_DELETED, next_attempt_at=None, updated_at=now)
        .returning(col(WebhookDelivery.id))
    )
    pending = [str(row) for row in canceled.scalars().all()]
    session.add(
        _audit(
            who,
            "WEBHOOK_ENDPOINT_DELETED",
            endpoint_id,
            before={"status": EndpointStatus.ACTIVE},
            after={"status": EndpointStatus.DELETED, "deliveries_canceled": len(pending)},
        )
    )
    endpoint.status, endpoint.deleted_at, endpoint.updated_at = EndpointStatus.DELETED, now, now
    return endpoint, pending


async def rotate_secret(
    session: AsyncSession, vault: KeyVault, who: Actor, endpoint_id: str, overlap_seconds: int
) -> tuple[WebhookEndpoint, str]:
    """A new secret; the one it replaces keeps signing for `overlap_seconds` (a still-valid
    older previous secret is dropped: at most two secrets sign)."""
    endpoint = await active(session, endpoint_id, for_update=True)
    secret = new_secret()
    now = utcnow()
    previous_hint = endpoint.secret_hint
    values = {
        "secret_encrypted": vault.seal_bytes(secret.encode(), secret_context(endpoint_id)),
        "secret_hint": secret_hint(secret),
        "previous_secret_encrypted": endpoint.secret_encrypted if overlap_seconds > 0 else None,
        "previous_secret_expires_at": now + timedelta(seconds=overlap_seconds) if overlap_seconds > 0 else None,
        "updated_at": now,
    }
    await session.execute(update(WebhookEndpoint).where(col(WebhookEndpoint.id) == endpoint_id).values(**values))
    for name, value in values.items():
        setattr(endpoint, name, value)
    session.add(
        _audit(
            who,
            "WEBHOOK_SECRET_ROTATED",
            endpoint_id,
            before={"secret_hint": previous_hint},
            after={
                "secret_hint": endpoint.secret_hint,
                "previous_secret_expires_at": iso(endpoint.previous_secret_expires_at),
            },
        )
    )
    return endpoint, secret
