"""Outbox events (domain.md §5): one row per change, written in the change's transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from models.ids import IdPrefix, new_id
from models.tables import Event
from models.timefmt import iso, utcnow

_last = utcnow()


def event_moment() -> Any:
    """Strictly increasing within a process, so events of one transaction keep their order."""
    global _last
    now = utcnow()
    _last = now if now > _last else _last + timedelta(microseconds=1)
    return _last


def new_event(
    *,
    type: str,
    resource: tuple[str, str],
    user_ids: list[str],
    actor: tuple[str, str | None],
    correlation_id: str,
    payload: dict[str, Any],
    request_id: str | None = None,
) -> Event:
    resource_type, resource_id = resource
    actor_type, actor_id = actor
    return Event(
        id=new_id(IdPrefix.EVENT),
        type=type,
        occurred_at=event_moment(),
        resource_type=resource_type,
        resource_id=resource_id,
        user_ids=list(dict.fromkeys(user_ids)),
        actor_type=actor_type,
        actor_id=actor_id,
        request_id=request_id,
        correlation_id=correlation_id,
        payload=payload,
    )


def event_view(event: Event) -> dict[str, Any]:
    """The representation of api.md §2.6 (SSE data, list item and webhook body)."""
    occurred = iso(event.occurred_at)
    return {
        "id": event.id,
        "type": event.type,
        "occurred_at": occurred,
        "resource": {"type": event.resource_type, "id": event.resource_id},
        "user_ids": list(event.user_ids),
        "actor": {"type": event.actor_type, "id": event.actor_id},
        "request_id": event.request_id,
        "correlation_id": event.correlation_id,
        "data": event.payload,
        "created_at": occurred,
        "updated_at": occurred,
    }
