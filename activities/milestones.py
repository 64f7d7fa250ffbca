"""Milestone records (domain.md §4.5): completed, approved, released to the seller or refunded
to the buyer, each with its keyed ledger effect, events and audit entries. Local activities."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities.context import WorkerContext
from activities.order_book import (
    OrderBook,
    in_escrow,
    load_locked,
    lock_milestone,
)
from activities.records import compare_and_set
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

    async def _milestone(self, session: AsyncSession, milestone_id: str) -> Milestone:
        milestone = await session.get(Milestone, milestone_id, with_for_update=True, populate_existing=True)
        assert milestone is not None, milestone_id
        return milestone

    @activity.defn(name=steps.MILESTONE_COMPLETED.name)
    async def milestone_completed(self, req: MilestoneStep) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await load_locked(session, req.order_id)
            milestone = await lock_milestone(session, req.milestone_id)
            now = utcnow()
            if await compare_and_set(
                session,
                Milestone,
                milestone.id,
                field="status",
                expected=(MilestoneStatus.OPEN,),
                target=MilestoneStatus.COMPLETED,
                values={"completion_note": req.note, "completed_at": now},
            ):
                milestone.status = MilestoneStatus.COMPLETED
                book = OrderBook(session, order, req.caller)
                book.milestone_event(
                    milestone,
                    escrow,
                    "escrow.milestone_completed",
                    {"completion_note": req.note, "completed_at": iso(now)},
                )
                book.audit(
                    "MILESTONE_COMPLETED",
                    ("milestone", milestone.id),
                    {"status": MilestoneStatus.OPEN},
                    {"status": MilestoneStatus.COMPLETED},
                )
        return OrderOutcome(order_id=order.id, status=MilestoneStatus.COMPLETED)

    @activity.defn(name=steps.MILESTONE_APPROVED.name)
    async def milestone_approved(self, req: MilestoneStep) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await load_locked(session, req.order_id)
            milestone = await lock_milestone(session, req.milestone_id)
            now = utcnow()
            if await compare_and_set(
                session,
                Milestone,
                milestone.id,
                field="status",
                expected=(MilestoneStatus.COMPLETED,),
                target=MilestoneStatus.APPROVED,
                values={"approved_at": now},
            ):
                milestone.status = MilestoneStatus.APPROVED
                book = OrderBook(session, order, req.caller)
                book.milestone_event(milestone, escrow, "escrow.milestone_approved", {"approved_at": iso(now)})
                book.audit(
                    "MILESTONE_APPROVED",
                    ("milestone", milestone.id),
                    {"status": MilestoneStatus.COMPLETED},
                    {"status": MilestoneStatus.APPROVED},
                )
        return OrderOutcome(order_id=order.id, status=MilestoneStatus.APPROVED)

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
            if await compare_and_set(
                session,
                Milestone,
                milestone.id,
                field="status",
                expected=(MilestoneStatus.APPROVED,),
                target=MilestoneStatus.RELEASED,
                values={"released_at": now, "release_tx_hash": req.tx_hash},
            ):
                milestone.status = MilestoneStatus.RELEASED
                await book.ledger(
                    LedgerEffect.milestone_release(
                        book.account(escrow),
                        milestone_id=milestone.id,
                        seller_id=order.seller_id,
                        amount=milestone.amount,
                    )
                )
                await book.pay_out(escrow, released=milestone.amount)
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
            if await compare_and_set(
                session,
                Milestone,
                milestone.id,
                field="status",
                expected=(MilestoneStatus.OPEN, MilestoneStatus.COMPLETED, MilestoneStatus.APPROVED),
                target=MilestoneStatus.CANCELED,
            ):
                milestone.status = MilestoneStatus.CANCELED
                await book.ledger(
                    LedgerEffect.milestone_refund(
                        book.account(escrow),
                        milestone_id=milestone.id,
                        buyer_id=order.buyer_id,
                        amount=milestone.amount,
                    )
                )
                await book.pay_out(escrow, refunded=milestone.amount)
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
