"""Status transitions as compare-and-set, with their events and audit entries (domain.md §4.0)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.ledger import business_error
from models.errors import ErrorCode
from models.timefmt import utcnow


async def compare_and_set(
    session: AsyncSession,
    model: Any,
    resource_id: str,
    *,
    field: str,
    expected: tuple[str, ...],
    target: str,
    values: dict[str, Any] | None = None,
) -> bool:
    """Move `field` from one of `expected` to `target`. True if this call moved it; False if the
    row already holds `target` (a retry: no-op); TRANSITION_CONFLICT otherwise."""
    column = getattr(model, field)
    moved = await session.execute(
        update(model)
        .where(col(model.id) == resource_id, col(column).in_(expected))
        .values({field: target, "updated_at": utcnow(), **(values or {})})
        .returning(col(model.id))
    )
    if moved.first() is not None:
        return True
    current = await session.get(model, resource_id, populate_existing=True)
    if current is not None and getattr(current, field) == target:
        return False
    raise business_error(
        ErrorCode.TRANSITION_CONFLICT,
        f"{model.__tablename__} {resource_id}: expected {expected}, found {getattr(current, field, None)}",
    )
