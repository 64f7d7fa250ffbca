"""Order transitions (domain.md §4.3): create, reserve, cancel, release and refund, each one
transaction with its ledger effect, events and audit entries. Short PostgreSQL steps, run as
local activities."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from temporalio import activity

from activities.context import WorkerContext
from activities.ledger import business_error
from activities.order_book import (
    OrderBook,
    in_escrow,
    last_error,
    load_locked,
    lock_order,
    plan_of,
)
from models import steps
from models.errors import ErrorCode
from models.ledger import LedgerEffect
from models.money import format_cents
from models.orders_io import (
    Caller,
    CreateOrder,
    EscrowPlan,
    OrderOutcome,
    OrderStep,
)
from models.states import EscrowStatus, MilestoneStatus, OrderStatus
from models.tables import Milestone, Order
from models.timefmt import iso, utcnow


class OrderActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    # creation, reservation, cancellation ------------------------------------------------------

    @activity.defn(name=steps.ORDER_CREATE.name)
    async def create(self, req: CreateOrder) -> OrderOutcome:
        data = req.order
        async with self.ctx.sessions() as session, session.begin():
            existing = await session.get(Order, data.id)
            if existing is not None:
                return OrderOutcome(order_id=data.id, status=existing.status)
            now = utcnow()
            order = Order(
                id=data.id,
                client_order_ref=data.client_order_ref,
                buyer_id=data.buyer_id,
                seller_id=data.seller_id,
                title=data.title,
                description=data.description,
                amount=data.amount,
                status=OrderStatus.ORDER_CREATED,
                metadata_=data.metadata,
                created_at=now,
                updated_at=now,
            )
            session.add(order)
            try:
                await session.flush()
            except IntegrityError:
                # another order holds the client_order_ref: a refusal, never retried (it cannot pass)
                holder = None
                if data.client_order_ref is not None:
                    async with self.ctx.sessions() as lookup:
                        by_ref = select(col(Order.id)).where(col(Order.client_order_ref) == data.client_order_ref)
                        holder = (await lookup.execute(by_ref)).scalar_one_or_none()
                if holder is None or holder == data.id:
                    raise
                raise business_error(
                    ErrorCode.ORDER_ALREADY_EXISTS, "client_order_ref is used by another order", order_id=holder
                ) from None
            for spec in data.milestones:
                session.add(
                    Milestone(
                        id=spec.id,
                        order_id=data.id,
                        milestone_ref=spec.milestone_ref,
                        position=spec.position,
                        title=spec.title,
                        amount=spec.amount,
                        status=MilestoneStatus.OPEN,
                        created_at=now,
                        updated_at=now,
                    )
                )
            book = OrderBook(session, order, req.caller)
            book.event(
                "order.created",
                ("order", order.id),
                {
                    "order_id": order.id,
                    "status": OrderStatus.ORDER_CREATED,
                    "buyer_id": order.buyer_id,
                    "seller_id": order.seller_id,
                    "amount": format_cents(order.amount),
                    "currency": "USD",
                    "title": order.title,
                    "client_order_ref": order.client_order_ref,
                    "milestone_count": len(data.milestones),
                },
            )
            book.audit(
                OrderStatus.ORDER_CREATED,
                ("order", order.id),
                None,
                {"status": OrderStatus.ORDER_CREATED, "amount": format_cents(order.amount)},
            )
        return OrderOutcome(order_id=data.id, status=OrderStatus.ORDER_CREATED)

    @activity.defn(name=steps.ORDER_RESERVE.name)
    async def reserve(self, req: OrderStep) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            order = await lock_order(session, req.order_id)
            book = OrderBook(session, order, req.caller)
            if await book.move(
                OrderStatus.FUNDS_RESERVED,
                (OrderStatus.ORDER_CREATED,),
                {"buyer_id": order.buyer_id, "amount": format_cents(order.amount), "currency": "USD"},
            ):
                await book.ledger(
                    LedgerEffect.order_reserve(
                        order_id=order.id,
                        buyer_id=order.buyer_id,
                        amount=order.amount,
                        workflow_id=order.id,
                        request_id=req.caller.request_id,
                    )
                )
        return OrderOutcome(order_id=order.id, status=order.status)

    @activity.defn(name=steps.ORDER_CANCEL.name)
    async def cancel(self, req: OrderStep) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            order = await lock_order(session, req.order_id)
            if order.status == OrderStatus.CLOSED:
                return OrderOutcome(order_id=order.id, status=order.status)
            previous = order.status
            book = OrderBook(session, order, req.caller)
            reserved = previous == OrderStatus.FUNDS_RESERVED
            if reserved:
                await book.ledger(
                    LedgerEffect.order_reserve_release(
                        order_id=order.id,
                        buyer_id=order.buyer_id,
                        amount=order.amount,
                        workflow_id=order.id,
                        request_id=req.caller.request_id,
                    )
                )
            await book.cancel_milestones(None, "order_canceled")
            book.event(
                "order.canceled",
                ("order", order.id),
                {
                    "order_id": order.id,
                    "status": OrderStatus.CLOSED,
                    "buyer_id": order.buyer_id,
                    "reason": req.reason,
                    "previous_status": previous,
                    "funds_released": reserved,
                },
            )
            book.audit("ORDER_CANCELED", ("order", order.id), {"status": previous}, {"cancel_reason": req.reason})
            now = utcnow()
            await book.move(
                OrderStatus.CLOSED,
                (OrderStatus.ORDER_CREATED, OrderStatus.FUNDS_RESERVED),
                {
                    "close_reason": "CANCELED",
                    "released_amount": "0.00",
                    "refunded_amount": "0.00",
                    "closed_at": iso(now),
                },
                values={"close_reason": "CANCELED", "cancel_reason": req.reason, "closed_at": now},
            )
        return OrderOutcome(order_id=order.id, status=OrderStatus.CLOSED)

    # release and refund ---------------------------------------------------------------------

    @activity.defn(name=steps.SETTLEMENT_REQUESTED.name)
    async def settlement_requested(self, req: OrderStep) -> EscrowPlan:
        """IN_PROGRESS -> RELEASE_REQUESTED / REFUND_REQUESTED (req.operation: release | refund)."""
        release = req.operation == "release"
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await load_locked(session, req.order_id)
            assert escrow is not None
            book = OrderBook(session, order, req.caller)
            target = OrderStatus.RELEASE_REQUESTED if release else OrderStatus.REFUND_REQUESTED
            if await book.move(
                target,
                (OrderStatus.IN_PROGRESS,),
                {"amount": format_cents(in_escrow(escrow)), "currency": "USD", "reason": req.reason},
            ):
                await book.escrow_move(
                    escrow, EscrowStatus.RELEASING if release else EscrowStatus.REFUNDING, (EscrowStatus.FUNDED,)
                )
        return plan_of(order, escrow)

    @activity.defn(name=steps.SETTLEMENT_FAILED.name)
    async def settlement_failed(self, req: OrderStep) -> OrderOutcome:
        """Compensation: back to IN_PROGRESS (escrow FUNDED) with last_error."""
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await load_locked(session, req.order_id)
            assert escrow is not None
            book = OrderBook(session, order, req.caller)
            operation = req.operation or "release"
            error = last_error(operation, req)
            await book.escrow_move(escrow, EscrowStatus.FUNDED, (EscrowStatus.RELEASING, EscrowStatus.REFUNDING))
            await book.move(
                OrderStatus.IN_PROGRESS,
                (OrderStatus.RELEASE_REQUESTED, OrderStatus.REFUND_REQUESTED),
                {"amount_in_escrow": format_cents(in_escrow(escrow)), "currency": "USD", "error": error},
                values={"last_error": error},
            )
            book.audit_failure(
                "RELEASE_FAILED" if operation == "release" else "REFUND_FAILED", ("order", order.id), req
            )
        return OrderOutcome(order_id=order.id, status=order.status)

    @activity.defn(name=steps.ORDER_STEP_FAILED.name)
    async def step_failed(self, req: OrderStep) -> OrderOutcome:
        """A step that failed for good without moving the order (a milestone's completion or
        payment): `last_error` names it and the failure is audited."""
        async with self.ctx.sessions() as session, session.begin():
            order = await lock_order(session, req.order_id)
            error = last_error(req.operation or "unknown", req)
            await session.execute(update(Order).where(col(Order.id) == order.id).values(last_error=error))
            OrderBook(session, order, req.caller).audit_failure(
                f"{(req.operation or 'STEP').split(':')[0].upper()}_FAILED", ("order", order.id), req
            )
        return OrderOutcome(order_id=order.id, status=order.status)

    @activity.defn(name=steps.ORDER_RELEASED.name)
    async def released(self, req: OrderStep) -> OrderOutcome:
        """Everything left in escrow went to the seller: ledger (single-release), escrow and order closed."""
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await load_locked(session, req.order_id)
            assert escrow is not None
            caller = Caller(actor_id=order.id)
            book = OrderBook(session, order, caller)
            paid = in_escrow(escrow)
            if escrow.type == "SINGLE_RELEASE" and paid > 0:
                release = LedgerEffect.order_release(book.account(escrow), seller_id=order.seller_id, amount=paid)
                await book.pay_from_escrow(escrow, release)
            await book.close_settled(escrow, OrderStatus.RELEASED, paid, req.reason or "RELEASED", tx_hash=req.tx_hash)
        return OrderOutcome(order_id=order.id, status=order.status)

    @activity.defn(name=steps.ORDER_REFUNDED.name)
    async def refunded(self, req: OrderStep) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await load_locked(session, req.order_id)
            assert escrow is not None
            caller = Caller(actor_id=order.id)
            book = OrderBook(session, order, caller)
            returned = in_escrow(escrow)
            if returned > 0:
                refund = LedgerEffect.order_refund(book.account(escrow), buyer_id=order.buyer_id, amount=returned)
                await book.pay_from_escrow(escrow, refund)
            await book.cancel_milestones(escrow, "refunded")
            # milestone orders were credited milestone by milestone (milestone_refunded): the total
            await book.close_settled(
                escrow, OrderStatus.REFUNDED, order.refunded_amount, "REFUNDED", tx_hash=req.tx_hash
            )
        return OrderOutcome(order_id=order.id, status=order.status)

    @activity.defn(name=steps.ORDER_RECORD.name)
    async def record(self, req: OrderStep) -> OrderOutcome:
        """The order's status as recorded (workflows check a Signal's claim against it)."""
        async with self.ctx.sessions() as session:
            order = await session.get(Order, req.order_id)
        return OrderOutcome(order_id=req.order_id, status=order.status if order is not None else "NOT_FOUND")
