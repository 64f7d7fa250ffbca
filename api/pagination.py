"""Cursor pagination shared by every list: newest first, `(created_at, id)` keyset (audit
entries: `(occurred_at, id)`).

The cursor's condition is one row comparison, `(created_at, id) < (anchor's)`, which an
index on `(…, created_at DESC, id DESC)` starts its scan at; the equivalent `created_at < a
OR (created_at = a AND id < b)` is only a filter, so a page deep in a large table would
read every newer row first (bench/lists.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import aliased

from models.errors import ErrorCode, OfferhubError

T = TypeVar("T")
LimitQuery = Query(20, description="1-100, default 20")
CursorQuery = Query(None, description="`id` of the last item of the previous page")


class Pagination(BaseModel):
    has_more: bool
    next_cursor: str | None


class Page(BaseModel, Generic[T]):
    data: list[T]
    pagination: Pagination


def check_limit(limit: int) -> int:
    if not 1 <= limit <= 100:
        raise OfferhubError(
            ErrorCode.VALIDATION_ERROR,
            "limit must be between 1 and 100",
            {"fields": [{"field": "limit", "message": "must be between 1 and 100"}]},
        )
    return limit


def bad_cursor() -> OfferhubError:
    return OfferhubError(
        ErrorCode.VALIDATION_ERROR,
        "Unknown cursor",
        {"fields": [{"field": "cursor", "message": "unknown cursor"}]},
    )


def page_statement(
    model: Any,
    query: Select[Any],
    *,
    limit: int,
    cursor: str | None,
    cursor_valid: Callable[[str], bool],
    newest: str = "created_at",
) -> Select[Any]:
    """`query` narrowed to one page: newest first by the `newest` column then `id`, after the
    `cursor` item, `limit + 1` rows (the extra one says whether more follow)."""
    check_limit(limit)
    moment = getattr(model, newest)
    if cursor is not None:
        if not cursor_valid(cursor):
            raise bad_cursor()
        # the anchor is read inside the page's own statement (one round trip, not two); the
        # planner evaluates it once, then starts the index scan at its row
        anchor = aliased(model)
        anchor_row = select(getattr(anchor, newest), anchor.id).where(anchor.id == cursor).scalar_subquery()
        query = query.where(tuple_(moment, model.id) < anchor_row)
    return query.order_by(moment.desc(), model.id.desc()).limit(limit + 1)


async def fetch_page(
    session: AsyncSession,
    model: Any,
    query: Select[Any],
    *,
    limit: int,
    cursor: str | None,
    cursor_valid: Callable[[str], bool],
    newest: str = "created_at",
) -> tuple[list[Any], bool]:
    """One page of `query` (`page_statement`), and whether more follow."""
    statement = page_statement(model, query, limit=limit, cursor=cursor, cursor_valid=cursor_valid, newest=newest)
    rows: Sequence[Any] = (await session.execute(statement)).scalars().all()
    if not rows:
        await check_cursor(session, model, cursor)
    return list(rows[:limit]), len(rows) > limit


async def check_cursor(session: AsyncSession | AsyncConnection, model: Any, cursor: str | None) -> None:
    """After an empty page: the end of the list, or 400 for a cursor that names nothing."""
    if cursor is not None and (await session.execute(select(model.id).where(model.id == cursor))).first() is None:
        raise bad_cursor()


def envelope(data: list[Any], rows: list[Any], has_more: bool) -> dict[str, Any]:
    """A page: `rows` are the entities (or their views, as dicts) whose last one is the cursor."""
    last = rows[-1] if has_more else None
    next_cursor = last["id"] if isinstance(last, dict) else getattr(last, "id", None)
    return {"data": data, "pagination": {"has_more": has_more, "next_cursor": next_cursor}}


async def page(
    session: AsyncSession,
    model: Any,
    query: Select[Any],
    *,
    limit: int,
    cursor: str | None,
    cursor_valid: Callable[[str], bool],
    render: Callable[[Any], T],
    newest: str = "created_at",
) -> dict[str, Any]:
    rows, has_more = await fetch_page(
        session, model, query, limit=limit, cursor=cursor, cursor_valid=cursor_valid, newest=newest
    )
    return envelope([render(row) for row in rows], rows, has_more)


def narrowed(
    model: Any,
    equal: Iterable[tuple[Any, Any]],
    since: datetime | None = None,
    until: datetime | None = None,
    moment: str = "created_at",
) -> Select[Any]:
    """`select(model)` keeping rows whose columns equal the values given (None: no filter)
    and whose `moment` lies in [since, until)."""
    query = select(model)
    for column, value in equal:
        if value is not None:
            query = query.where(column == value)
    stamp = getattr(model, moment)
    if since is not None:
        query = query.where(stamp >= since)
    if until is not None:
        query = query.where(stamp < until)
    return query


__all__ = [
    "Page",
    "Pagination",
    "check_cursor",
    "check_limit",
    "envelope",
    "fetch_page",
    "narrowed",
    "page",
    "page_statement",
]
