"""Orders with their escrow, milestones and dispute: the SQL and the representation (api.md §2.3)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import FromClause, Select, and_, bindparam, func, inspect, or_, select
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import SQLModel, col

from api.auth import EVERYONE, Audience
from api.database import DriverReads
from models.errors import ErrorCode, OfferhubError
from models.ids import IdPrefix, is_id
from models.money import format_cents
from models.tables import Dispute, Escrow, Milestone, Order
from models.timefmt import iso

IN_ESCROW_STATES = ("FUNDED", "RELEASING", "REFUNDING", "DISPUTED")
# an order in one of these has a provider step in flight (ESCROW_FUNDING only while its escrow is FUNDING)
IN_FLIGHT_STATES = ("ESCROW_CREATING", "RELEASE_REQUESTED", "REFUND_REQUESTED")


class Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


class Columns:
    """One table's columns in a joined row, read as attributes by the names its model gives
    them (`order.metadata_`), so the representation reads a row as it reads an entity."""

    __slots__ = ("_prefix", "_row")

    def __init__(self, row: Row, prefix: str) -> None:
        self._row, self._prefix = row, prefix

    def __getattr__(self, name: str) -> Any:
        return self._row[self._prefix + name]


def _labelled(prefix: str, model: type[SQLModel], source: FromClause | None = None) -> list[Any]:
    """The model's columns (read from `source`, a subquery of its table, if given) labelled
    `prefix` + the attribute name the model gives them."""
    return [
        (prop.columns[0] if source is None else source.c[prop.columns[0].name]).label(prefix + prop.key)
        for prop in inspect(model).column_attrs
    ]


def with_relations(orders: FromClause | None = None) -> Select[Any]:
    """Orders (the table, or `orders`: a subquery of it) joined to their live escrow and their
    dispute (both at most one) and their milestones (one row each), each table's columns under
    its own prefix."""
    source = Order.__table__ if orders is None else orders  # type: ignore[attr-defined]
    order_id = source.c.id
    return (
        select(
            *_labelled("o_", Order, orders),
            *_labelled("e_", Escrow),
            *_labelled("d_", Dispute),
            *_labelled("m_", Milestone),
        )
        .select_from(source)
        .outerjoin(Escrow, and_(col(Escrow.order_id) == order_id, col(Escrow.discarded_at).is_(None)))
        .outerjoin(Dispute, col(Dispute.order_id) == order_id)
        .outerjoin(Milestone, col(Milestone.order_id) == order_id)
    )


ONE_ORDER = with_relations().where(col(Order.id) == bindparam("order_id"))
# as the driver takes it (`$1`)
ONE_ORDER_SQL = str(ONE_ORDER.compile(dialect=PGDialect_asyncpg()))  # type: ignore[no-untyped-call]


def not_found(order_id: str) -> OfferhubError:
    return OfferhubError(ErrorCode.ORDER_NOT_FOUND, f"Order {order_id} not found", {"order_id": order_id})


def milestone_view(m: Milestone | Columns) -> dict[str, Any]:
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


def escrow_view(e: Escrow | Columns) -> dict[str, Any]:
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
    order: Order | Columns,
    escrow: Escrow | Columns | None,
    milestones: Sequence[Milestone | Columns],
    dispute: Dispute | Columns | None,
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


async def page_views(connection: AsyncConnection, page: Select[Any], limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The orders of `page` (a `select(Order)` of `limit + 1` rows, pagination.page_statement) as
    `view` shows them, read with their relations in one statement; and whether more follow."""
    listed = page.subquery("page")
    statement = with_relations(listed).order_by(listed.c.created_at.desc(), listed.c.id.desc())
    grouped: dict[str, list[Any]] = {}
    for row in (await connection.execute(statement)).mappings():
        grouped.setdefault(row["o_id"], []).append(row)
    views = [_rendered(rows) for rows in grouped.values()]
    return views[:limit], len(views) > limit


async def load(session: AsyncSession, order_id: str, audience: Audience = EVERYONE) -> Order:
    """The order, or 404 ORDER_NOT_FOUND (wrong prefix, or neither party is the audience's user)."""
    if not is_id(order_id, IdPrefix.ORDER):
        raise not_found(order_id)
    order = await session.get(Order, order_id, populate_existing=True)
    if order is None or not audience.sees(order.buyer_id, order.seller_id):
        raise not_found(order_id)
    return order


async def view(session: AsyncSession, order_id: str, audience: Audience = EVERYONE) -> dict[str, Any]:
    """One order as `views` shows it, read in one statement (ONE_ORDER) in the session's transaction."""
    if not is_id(order_id, IdPrefix.ORDER):
        raise not_found(order_id)
    rows = (await session.execute(ONE_ORDER, {"order_id": order_id})).mappings().all()
    return _one(rows, order_id, audience)


async def read(reads: DriverReads, order_id: str, audience: Audience = EVERYONE) -> dict[str, Any]:
    """`view` outside any session or transaction, on the driver (`GET /orders/{id}`)."""
    if not is_id(order_id, IdPrefix.ORDER):
        raise not_found(order_id)
    return _one(await reads.fetch(ONE_ORDER_SQL, order_id), order_id, audience)


def _one(rows: Sequence[Row], order_id: str, audience: Audience) -> dict[str, Any]:
    if not rows or not audience.sees(rows[0]["o_buyer_id"], rows[0]["o_seller_id"]):
        raise not_found(order_id)
    return _rendered(rows)


def _rendered(rows: Sequence[Row]) -> dict[str, Any]:
    """One order's joined rows (one per milestone, or one) as the API shows it."""
    first = rows[0]
    return order_view(
        Columns(first, "o_"),
        Columns(first, "e_") if first["e_id"] is not None else None,
        [Columns(row, "m_") for row in rows if row["m_id"] is not None],
        Columns(first, "d_") if first["d_id"] is not None else None,
    )


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
