"""Audit entries (domain.md §6), built redacted so no secret can reach the table."""

from __future__ import annotations

from typing import Any

from models.ids import IdPrefix, new_id
from models.redaction import redact
from models.tables import AuditLog
from models.timefmt import utcnow


def audit_entry(
    *,
    action: str,
    resource_type: str,
    resource_id: str,
    actor: tuple[str, str | None],
    user_id: str | None = None,
    result: str = "SUCCESS",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    request_id: str | None = None,
    idempotency_key: str | None = None,
    correlation_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> AuditLog:
    now = utcnow()
    actor_type, actor_id = actor
    if actor_type == "operator":
        # a Temporal Signal's `actor` is whatever its sender typed: recorded as claimed, never
        # as an authenticated identity (anyone with the Temporal UI can send one)
        after = {**(after or {}), "actor_claimed": True}
    return AuditLog(
        id=new_id(IdPrefix.AUDIT),
        occurred_at=now,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        user_id=user_id,
        actor_type=actor_type,
        actor_id=actor_id,
        result=result,
        payload_before=redact(before),
        payload_after=redact(after),
        error=redact(error),
        request_id=request_id,
        idempotency_key=idempotency_key,
        correlation_id=correlation_id,
        ip=ip,
        user_agent=redact(user_agent),
        created_at=now,
        updated_at=now,
    )
