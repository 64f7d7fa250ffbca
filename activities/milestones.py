"""Milestone records (domain.md §4.5): completed, approved, released to the seller or refunded
to the buyer, each with its keyed ledger effect, events and audit entries. Local activities."""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.context import WorkerContext
from activities.order_book import (
    OrderBook,
    in_escrow,
    load_locked,
    lock_milestone,
)
from models import steps
from models.ledger import LedgerEffect
from models.money import format_cents
from models.orders_io import (
    Caller,
    MilestoneStep,
    OrderOutcome,
)
from models.states import MilestoneStatus
from models.tables import Milestone
from models.timefmt import iso, utcnow


class MilestoneActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    # milestones ---------------------------------------------------------------------------

    @activity.defn(name=steps.MILESTONE_COMPLETED.name)
    async def milestone_completed(self, req: MilestoneStep) -> OrderOutcome:
        return await self._stage(req, MilestoneStatus.OPEN, MilestoneStatus.COMPLETED, "completed_at", note=True)

    @activity.defn(name=steps.MILESTONE_APPROVED.name)
    async def milestone_approved(self, req: MilestoneStep) -> OrderOutcome:
        return await self._stage(req, MilestoneStatus.COMPLETED, MilestoneStatus.APPROVED, "approved_at")

    async def _stage(
        self, req: MilestoneStep, source: MilestoneStatus, target: MilestoneStatus, stamp: str, *, note: bool = False
    ) -> OrderOutcome:
        """A stage without money (completed by the seller, approved by the buyer): its time
        stamp, `escrow.milestone_<stage>` and the audit entry, once."""
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await load_locked(session, req.order_id)
            milestone = await lock_milestone(session, req.milestone_id)
            now = utcnow()
            values: dict[str, Any] = {stamp: now, **({"completion_note": req.note} if note else {})}
            book = OrderBook(session, order, req.caller)
            if await book.milestone_move(milestone, (source,), target, values):
                shown = {key: iso(value) if key == stamp else value for key, value in values.items()}
                book.milestone_event(milestone, escrow, f"escrow.milestone_{target.lower()}", shown)
                book.audit(f"MILESTONE_{target}", ("milestone", milestone.id), {"status": source}, {"status": target})
        return OrderOutcome(order_id=order.id, status=target)

    @activity.defn(name=steps.MILESTONE_RELEASED.name)
    async def milestone_released(self, req: MilestoneStep) -> OrderOutcome:
        """APPROVED -> RELEASED with the seller's credit; status `LAST` when nothing is left to pay."""
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await load_locked(session, req.order_id)
            assert escrow is not None
            milestone = await lock_milestone(session, req.milestone_id)
            caller = Caller(actor_id=milestone.id)
            book = OrderBook(session, order, caller)
            now = utcnow()
            if await book.milestone_move(
                milestone,
                (MilestoneStatus.APPROVED,),
                MilestoneStatus.RELEASED,
                {"released_at": now, "release_tx_hash": req.tx_hash},
            ):
                await book.pay_from_escrow(
                    escrow,
                    LedgerEffect.milestone_release(
                        book.account(escrow),
                        milestone_id=milestone.id,
                        seller_id=order.seller_id,
                        amount=milestone.amount,
                    ),
                )
                book.milestone_event(
                    milestone,
                    escrow,
                    "escrow.milestone_released",
                    {"seller_id": order.seller_id, "release_tx_hash": req.tx_hash, "released_at": iso(now)},
                )
                book.audit(
                    "MILESTONE_RELEASED",
                    ("milestone", milestone.id),
                    {"status": MilestoneStatus.APPROVED},
                    {"status": MilestoneStatus.RELEASED, "amount": format_cents(milestone.amount)},
                )
            left = in_escrow(escrow)
        return OrderOutcome(order_id=order.id, status="LAST" if left == 0 else MilestoneStatus.RELEASED)

    @activity.defn(name=steps.MILESTONE_REFUNDED.name)
    async def milestone_refunded(self, req: MilestoneStep) -> OrderOutcome:
        """One milestone's amount went back to the buyer (an order refund, milestone by
        milestone): its keyed credit, the escrow's refunded total, the milestone CANCELED."""
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await load_locked(session, req.order_id)
            assert escrow is not None
            milestone = await lock_milestone(session, req.milestone_id)
            book = OrderBook(session, order, Caller(actor_id=order.id))
            if await book.milestone_move(
                milestone,
                (MilestoneStatus.OPEN, MilestoneStatus.COMPLETED, MilestoneStatus.APPROVED),
                MilestoneStatus.CANCELED,
            ):
                await book.pay_from_escrow(
                    escrow,
                    LedgerEffect.milestone_refund(
                        book.account(escrow),
                        milestone_id=milestone.id,
                        buyer_id=order.buyer_id,
                        amount=milestone.amount,
                    ),
                )
                book.milestone_event(
                    milestone,
                    escrow,
                    "escrow.milestone_canceled",
                    {"reason": "refunded", "refund_tx_hash": req.tx_hash},
                )
                book.audit(
                    "MILESTONE_CANCELED",
                    ("milestone", milestone.id),
                    None,
                    {"status": MilestoneStatus.CANCELED, "refunded_amount": format_cents(milestone.amount)},
                )
        return OrderOutcome(order_id=order.id, status=MilestoneStatus.CANCELED)

    @activity.defn(name=steps.MILESTONE_RECORD.name)
    async def milestone_record(self, req: MilestoneStep) -> OrderOutcome:
        """The milestone's status as recorded (its workflow checks a Signal's claim against it)."""
        async with self.ctx.sessions() as session:
            milestone = await session.get(Milestone, req.milestone_id)
        status = milestone.status if milestone is not None else "NOT_FOUND"
        return OrderOutcome(order_id=req.order_id, status=status)
