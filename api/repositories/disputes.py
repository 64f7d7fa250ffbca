"""Disputes and their comments: the reads and the representation (api.md §2.4)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import EVERYONE, Audience
from models.ids import IdPrefix, is_id
from models.money import format_cents
from models.tables import Dispute, DisputeComment
from models.timefmt import iso


def dispute_view(d: Dispute) -> dict[str, Any]:
    def money(value: int | None) -> str | None:
        return None if value is None else format_cents(value)

    return {
        "id": d.id,
        "order_id": d.order_id,
        "buyer_id": d.buyer_id,
        "seller_id": d.seller_id,
        "status": d.status,
        "opened_by": d.opened_by,
        "reason": d.reason,
        "description": d.description,
        "evidence": list(d.evidence),
        "disputed_amount": format_cents(d.disputed_amount),
        "assigned_to": d.assigned_to,
        "assigned_at": iso(d.assigned_at),
        "assignment_note": d.assignment_note,
        "resolution_decision": d.resolution_decision,
        "release_amount": money(d.release_amount),
        "refund_amount": money(d.refund_amount),
        "decision_note": d.decision_note,
        "resolved_by": d.resolved_by,
        "resolved_at": iso(d.resolved_at),
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
    }


def comment_view(c: DisputeComment) -> dict[str, Any]:
    return {
        "id": c.id,
        "dispute_id": c.dispute_id,
        "author_type": c.author_type,
        "author_id": c.author_id,
        "message": c.message,
        "evidence": list(c.evidence),
        "visibility": c.visibility,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
    }


async def find(session: AsyncSession, dispute_id: str, audience: Audience = EVERYONE) -> Dispute | None:
    """The dispute, or None (wrong prefix, or an order neither party of which is the audience's user)."""
    if not is_id(dispute_id, IdPrefix.DISPUTE):
        return None
    found = await session.get(Dispute, dispute_id, populate_existing=True)
    return found if found is not None and audience.sees(found.buyer_id, found.seller_id) else None


def readable(query: Select[Any], audience: Audience) -> Select[Any]:
    """`query` narrowed to the disputes the audience sees: of orders its user buys or sells in."""
    if audience.user_id is None:
        return query
    return query.where(or_(col(Dispute.buyer_id) == audience.user_id, col(Dispute.seller_id) == audience.user_id))


async def find_comment(session: AsyncSession, comment_id: str) -> DisputeComment | None:
    if not is_id(comment_id, IdPrefix.COMMENT):
        return None
    return await session.get(DisputeComment, comment_id, populate_existing=True)


def settling(d: Dispute) -> bool:
    """A decision is recorded but its settlement has not confirmed yet (§8.4's `202`)."""
    return d.status == "UNDER_REVIEW" and d.resolution_decision is not None
