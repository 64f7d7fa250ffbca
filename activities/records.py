"""Status transitions as compare-and-set, with their events and audit entries (domain.md §4.0)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ClauseElement, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

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
    table = model.__table__
    changes = {field: target, "updated_at": utcnow(), **(values or {})}
    # a table-level UPDATE (none of the ORM's bulk-update work); the one loaded object it may
    # concern is brought up to date below
    moved = await session.execute(
        update(table)
        .where(table.c.id == resource_id, table.c[field].in_(expected))
        .values(changes)
        .returning(table.c.id)
    )
    if moved.first() is not None:
        loaded = session.identity_map.get(identity_key(model, resource_id))
        for name, value in changes.items() if loaded is not None else ():
            if isinstance(value, ClauseElement):  # computed by the database: read again on access
                session.expire(loaded, [name])
            else:
                set_committed_value(loaded, name, value)
        return True
    current = await session.get(model, resource_id, populate_existing=True)
    if current is not None and getattr(current, field) == target:
        return False
    raise business_error(
        ErrorCode.TRANSITION_CONFLICT,
        f"{model.__tablename__} {resource_id}: expected {expected}, found {getattr(current, field, None)}",
    )
