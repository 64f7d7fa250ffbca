"""Orders with their escrow, milestones and dispute: the SQL and the representation (api.md §2.3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from api.auth import EVERYONE, Audience
from models.errors import ErrorCode, OfferhubError
from models.ids import IdPrefix, is_id
from models.money import format_cents
from models.tables import Dispute, Escrow, Milestone, Order
from models.timefmt import iso

# per engine: the session factory of `reading` (an engine is created once per process)
_reads: WeakKeyDictionary[AsyncEngine, async_sessionmaker[AsyncSession]] = WeakKeyDictionary()
IN_ESCROW_STATES = ("FUNDED", "RELEASING", "REFUNDING", "DISPUTED")
# an order in one of these has a provider step in flight (ESCROW_FUNDING only while its escrow is FUNDING)
IN_FLIGHT_STATES = ("ESCROW_CREATING", "RELEASE_REQUESTED", "REFUND_REQUESTED")


def reading(engine: AsyncEngine) -> AsyncSession:
    """A session for one read statement: no transaction around it (no BEGIN and ROLLBACK round
    trips), as one statement is a consistent snapshot by itself."""
    reads = _reads.get(engine)
    if reads is None:
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        reads = _reads[engine] = async_sessionmaker(autocommit, expire_on_commit=False)
    return reads()


def not_found(order_id: str) -> OfferhubError:
    return OfferhubError(ErrorCode.ORDER_NOT_FOUND, f"Order {order_id} not found", {"order_id": order_id})


def milestone_view(m: Milestone) -> dict[str, Any]:
    return {
        "id": m.id,
        "order_id": m.order_id,
        "milestone_ref": m.milestone_ref,
        "position": m.position,
        "title": m.title,
        "amount": format_cents(m.amount),
        "status": m.status,
        "completion_note": m.completion_note,
        "completed_at": iso(m.completed_at),
        "approved_at": iso(m.approved_at),
        "released_at": iso(m.released_at),
        "release_tx_hash": m.release_tx_hash,
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
    }


def escrow_view(e: Escrow) -> dict[str, Any]:
    return {
        "id": e.id,
        "order_id": e.order_id,
        "status": e.status,
        "type": e.type,
        "amount": format_cents(e.amount),
        "released_amount": format_cents(e.released_amount),
        "refunded_amount": format_cents(e.refunded_amount),
        "trustless_contract_id": e.trustless_contract_id,
        "network": e.network,
        "deploy_tx_hash": e.deploy_tx_hash,
        "fund_tx_hash": e.fund_tx_hash,
        "funded_at": iso(e.funded_at),
        "released_at": iso(e.released_at),
        "refunded_at": iso(e.refunded_at),
        "created_at": iso(e.created_at),
        "updated_at": iso(e.updated_at),
    }


def order_view(
    order: Order, escrow: Escrow | None, milestones: list[Milestone], dispute: Dispute | None
) -> dict[str, Any]:
    in_escrow = 0
    if escrow is not None and escrow.status in IN_ESCROW_STATES:
        in_escrow = escrow.amount - order.released_amount - order.refunded_amount
    return {
        "id": order.id,
        "client_order_ref": order.client_order_ref,
        "buyer_id": order.buyer_id,
        "seller_id": order.seller_id,
        "title": order.title,
        "description": order.description,
        "amount": format_cents(order.amount),
        "currency": order.currency,
        "status": order.status,
        "released_amount": format_cents(order.released_amount),
        "refunded_amount": format_cents(order.refunded_amount),
        "amount_in_escrow": format_cents(in_escrow),
        "close_reason": order.close_reason,
        "cancel_reason": order.cancel_reason,
        "metadata": order.metadata_,
        "escrow": escrow_view(escrow) if escrow is not None else None,
        "milestones": [milestone_view(m) for m in sorted(milestones, key=lambda m: m.position)],
        "dispute": None
        if dispute is None
        else {
            "id": dispute.id,
            "status": dispute.status,
            "opened_by": dispute.opened_by,
            "reason": dispute.reason,
            "resolution_decision": dispute.resolution_decision,
            "created_at": iso(dispute.created_at),
            "updated_at": iso(dispute.updated_at),
        },
        "last_error": order.last_error,
        "closed_at": iso(order.closed_at),
        "created_at": iso(order.created_at),
        "updated_at": iso(order.updated_at),
    }


async def views(session: AsyncSession, orders: list[Order]) -> list[dict[str, Any]]:
    ids = [o.id for o in orders]
    if not ids:
        return []
    escrows = {
        e.order_id: e
        for e in (
            await session.execute(
                select(Escrow).where(col(Escrow.order_id).in_(ids), col(Escrow.discarded_at).is_(None))
            )
        ).scalars()
    }
    milestones: dict[str, list[Milestone]] = {}
    for m in (await session.execute(select(Milestone).where(col(Milestone.order_id).in_(ids)))).scalars():
        milestones.setdefault(m.order_id, []).append(m)
    disputes = {
        d.order_id: d for d in (await session.execute(select(Dispute).where(col(Dispute.order_id).in_(ids)))).scalars()
    }
    return [order_view(o, escrows.get(o.id), milestones.get(o.id, []), disputes.get(o.id)) for o in orders]


async def load(session: AsyncSession, order_id: str, audience: Audience = EVERYONE) -> Order:
    """The order, or 404 ORDER_NOT_FOUND (wrong prefix, or neither party is the audience's user)."""
    if not is_id(order_id, IdPrefix.ORDER):
        raise not_found(order_id)
    order = await session.get(Order, order_id, populate_existing=True)
    if order is None or not audience.sees(order.buyer_id, order.seller_id):
        raise not_found(order_id)
    return order


async def view(session: AsyncSession, order_id: str, audience: Audience = EVERYONE) -> dict[str, Any]:
    """One order as `views` shows it, read in one query: the order joined to its live escrow,
    its dispute (both at most one) and its milestones (one row each)."""
    if not is_id(order_id, IdPrefix.ORDER):
        raise not_found(order_id)
    query = (
        select(Order, Escrow, Dispute, Milestone)
        .outerjoin(Escrow, and_(col(Escrow.order_id) == col(Order.id), col(Escrow.discarded_at).is_(None)))
        .outerjoin(Dispute, col(Dispute.order_id) == col(Order.id))
        .outerjoin(Milestone, col(Milestone.order_id) == col(Order.id))
        .where(col(Order.id) == order_id)
        .execution_options(populate_existing=True)
    )
    rows = (await session.execute(query)).all()
    if not rows or not audience.sees(rows[0][0].buyer_id, rows[0][0].seller_id):
        raise not_found(order_id)
    order, escrow, dispute, _ = rows[0]
    return order_view(order, escrow, [row[3] for row in rows if row[3] is not None], dispute)


def in_flight(order: Order, escrow: Escrow | None) -> bool:
    """The order's last action is still running (its `202` is not final yet)."""
    funding = order.status == "ESCROW_FUNDING" and escrow is not None and escrow.status == "FUNDING"
    return order.status in IN_FLIGHT_STATES or funding


async def live_escrow(session: AsyncSession, order_id: str) -> Escrow | None:
    query = select(Escrow).where(col(Escrow.order_id) == order_id, col(Escrow.discarded_at).is_(None))
    return (await session.execute(query)).scalar_one_or_none()


async def claim_client_order_ref(session: AsyncSession, ref: str) -> None:
    """Serialise creates of one `client_order_ref` until the open transaction ends.

    The holder checks the ref and creates its order (committed by the workflow's `created`
    Update) before it lets go, so the next holder finds that order instead of racing it."""
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(ref, 0))))


async def by_client_order_ref(session: AsyncSession, ref: str) -> Order | None:
    query = select(Order).where(col(Order.client_order_ref) == ref).execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def milestones_of(session: AsyncSession, order_id: str) -> list[Milestone]:
    return list((await session.execute(select(Milestone).where(col(Milestone.order_id) == order_id))).scalars())


async def milestone(session: AsyncSession, order_id: str, ref: str, audience: Audience = EVERYONE) -> Milestone:
    """By `ms_` ID or `milestone_ref`, within the order."""
    await load(session, order_id, audience)
    field = col(Milestone.id) if ref.startswith("ms_") else col(Milestone.milestone_ref)
    found = (
        await session.execute(select(Milestone).where(col(Milestone.order_id) == order_id, field == ref))
    ).scalar_one_or_none()
    if found is None:
        raise OfferhubError(
            ErrorCode.MILESTONE_NOT_FOUND,
            f"Milestone {ref} not found in order {order_id}",
            {"order_id": order_id, "milestone": ref},
        )
    return found


def list_query(
    *,
    status: str | None,
    buyer_id: str | None,
    seller_id: str | None,
    user_id: str | None,
    client_order_ref: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
) -> Any:
    query = select(Order)
    for column, value in (
        (Order.status, status),
        (Order.buyer_id, buyer_id),
        (Order.seller_id, seller_id),
        (Order.client_order_ref, client_order_ref),
    ):
        if value is not None:
            query = query.where(col(column) == value)
    if user_id is not None:
        query = query.where(or_(col(Order.buyer_id) == user_id, col(Order.seller_id) == user_id))
    if created_after is not None:
        query = query.where(col(Order.created_at) >= created_after)
    if created_before is not None:
        query = query.where(col(Order.created_at) < created_before)
    return query
