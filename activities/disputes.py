"""Dispute transitions (domain.md §4.6): opening freezes the order; the settlement pays the
seller and/or the buyer out of escrow with keyed ledger credits and closes the order."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col
from temporalio import activity

from activities.context import WorkerContext
from activities.order_book import OrderBook, in_escrow, load_locked, lock_milestone, lock_order, plan_of
from activities.records import compare_and_set
from models import steps
from models.disputes_io import DisputeInput, DisputeOutcome, DisputeStep, OpenDispute
from models.ledger import LedgerEffect
from models.money import format_cents
from models.orders_io import Caller, MilestoneInput
from models.states import DisputeStatus, EscrowStatus, MilestoneStatus, OrderStatus
from models.tables import Dispute, DisputeComment, Milestone
from models.timefmt import iso, utcnow


class DisputeActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    @activity.defn(name=steps.DISPUTE_OPEN.name)
    async def open(self, req: OpenDispute) -> DisputeInput:
        order_id = activity.info().workflow_id
        assert order_id is not None
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await load_locked(session, order_id)
            assert escrow is not None
            existing = await session.get(Dispute, req.dispute_id)
            if existing is None:
                now = utcnow()
                disputed = in_escrow(escrow)
                dispute = Dispute(
                    id=req.dispute_id,
                    order_id=order.id,
                    buyer_id=order.buyer_id,
                    seller_id=order.seller_id,
                    status=DisputeStatus.OPEN,
                    opened_by=req.opened_by,
                    reason=req.reason,
                    description=req.description,
                    evidence=req.evidence,
                    disputed_amount=disputed,
                    created_at=now,
                    updated_at=now,
                )
                session.add(dispute)
                await session.flush()
                book = OrderBook(session, order, req.caller)
                await book.move(
                    OrderStatus.DISPUTED,
                    (OrderStatus.IN_PROGRESS,),
                    {
                        "dispute_id": dispute.id,
                        "opened_by": req.opened_by,
                        "reason": req.reason,
                        "disputed_amount": format_cents(disputed),
                        "currency": "USD",
                    },
                )
                await book.escrow_move(escrow, EscrowStatus.DISPUTED, (EscrowStatus.FUNDED,))
                book.event(
                    "dispute.opened",
                    ("dispute", dispute.id),
                    {
                        "dispute_id": dispute.id,
                        "order_id": order.id,
                        "status": DisputeStatus.OPEN,
                        "opened_by": req.opened_by,
                        "reason": req.reason,
                        "disputed_amount": format_cents(disputed),
                        "currency": "USD",
                    },
                )
                book.audit(
                    "DISPUTE_OPENED",
                    ("dispute", dispute.id),
                    None,
                    {"status": DisputeStatus.OPEN, "disputed_amount": format_cents(disputed)},
                )
            else:
                dispute = existing
            unpaid = (
                (
                    await session.execute(
                        select(Milestone)
                        .where(
                            col(Milestone.order_id) == order.id,
                            col(Milestone.status).not_in((MilestoneStatus.RELEASED, MilestoneStatus.CANCELED)),
                        )
                        .order_by(col(Milestone.position))
                    )
                )
                .scalars()
                .all()
            )
        return DisputeInput(
            dispute_id=dispute.id,
            order_id=order.id,
            buyer_id=order.buyer_id,
            seller_id=order.seller_id,
            opened_by=dispute.opened_by,
            disputed_amount=dispute.disputed_amount,
            plan=plan_of(order, escrow),
            milestones=[
                MilestoneInput(
                    id=m.id, milestone_ref=m.milestone_ref, position=m.position, title=m.title, amount=m.amount
                )
                for m in unpaid
            ],
        )

    async def _dispute(self, session: object, dispute_id: str) -> Dispute:
        dispute = await session.get(Dispute, dispute_id, with_for_update=True, populate_existing=True)  # type: ignore[attr-defined]
        assert dispute is not None
        return dispute  # type: ignore[no-any-return]

    @activity.defn(name=steps.DISPUTE_ASSIGNED.name)
    async def assigned(self, req: DisputeStep) -> DisputeOutcome:
        async with self.ctx.sessions() as session, session.begin():
            dispute = await self._dispute(session, req.dispute_id)
            order = await lock_order(session, dispute.order_id)
            now = utcnow()
            if await compare_and_set(
                session,
                Dispute,
                dispute.id,
                field="status",
                expected=(DisputeStatus.OPEN,),
                target=DisputeStatus.UNDER_REVIEW,
                values={"assigned_to": req.assigned_to, "assigned_at": now, "assignment_note": req.note},
            ):
                book = OrderBook(session, order, req.caller)
                book.event(
                    "dispute.under_review",
                    ("dispute", dispute.id),
                    {
                        "dispute_id": dispute.id,
                        "order_id": order.id,
                        "status": DisputeStatus.UNDER_REVIEW,
                        "assigned_to": req.assigned_to,
                        "assigned_at": iso(now),
                    },
                )
                book.audit(
                    "DISPUTE_ASSIGNED",
                    ("dispute", dispute.id),
                    {"status": DisputeStatus.OPEN},
                    {"status": DisputeStatus.UNDER_REVIEW, "assigned_to": req.assigned_to},
                )
        return DisputeOutcome(dispute_id=req.dispute_id, status=DisputeStatus.UNDER_REVIEW)

    @activity.defn(name=steps.DISPUTE_DECIDED.name)
    async def decided(self, req: DisputeStep) -> DisputeOutcome:
        """The decision is recorded when accepted; the status stays UNDER_REVIEW until settled."""
        async with self.ctx.sessions() as session, session.begin():
            dispute = await self._dispute(session, req.dispute_id)
            dispute.resolution_decision, dispute.decision_note = req.decision, req.note
            dispute.release_amount, dispute.refund_amount = req.release_amount, req.refund_amount
            dispute.resolved_by, dispute.updated_at = req.resolved_by, utcnow()
        return DisputeOutcome(dispute_id=req.dispute_id, status=DisputeStatus.UNDER_REVIEW, decision=req.decision)

    @activity.defn(name=steps.DISPUTE_SETTLEMENT_FAILED.name)
    async def decision_failed(self, req: DisputeStep) -> DisputeOutcome:
        async with self.ctx.sessions() as session, session.begin():
            dispute = await self._dispute(session, req.dispute_id)
            order = await lock_order(session, dispute.order_id)
            dispute.resolution_decision = dispute.decision_note = dispute.resolved_by = None
            dispute.release_amount = dispute.refund_amount = None
            order.last_error = {
                "operation": "dispute_settlement",
                "code": req.error_code or "PROVIDER_ERROR",
                "message": (req.error_message or "")[:500],
                "occurred_at": iso(utcnow()),
            }
            OrderBook(session, order, req.caller).audit_failure(
                "DISPUTE_SETTLEMENT_FAILED", ("dispute", dispute.id), req
            )
        return DisputeOutcome(dispute_id=req.dispute_id, status=DisputeStatus.UNDER_REVIEW)

    @activity.defn(name=steps.DISPUTE_SETTLED.name)
    async def settled(self, req: DisputeStep) -> DisputeOutcome:
        """Ledger credits, dispute RESOLVED, escrow and order settled and CLOSED, in one transaction."""
        async with self.ctx.sessions() as session, session.begin():
            dispute = await self._dispute(session, req.dispute_id)
            order, escrow = await load_locked(session, dispute.order_id)
            assert escrow is not None
            if dispute.status == DisputeStatus.RESOLVED:
                return DisputeOutcome(
                    dispute_id=dispute.id, status=DisputeStatus.RESOLVED, decision=dispute.resolution_decision
                )
            caller = Caller(
                actor_type=req.caller.actor_type, actor_id=req.caller.actor_id, request_id=req.caller.request_id
            )
            book = OrderBook(session, order, caller)
            account = book.account(escrow)
            credits = []
            if req.release_amount:
                credits.append(
                    LedgerEffect.dispute_release(
                        account, dispute_id=dispute.id, seller_id=order.seller_id, amount=req.release_amount
                    )
                )
            if req.refund_amount:
                credits.append(
                    LedgerEffect.dispute_refund(
                        account, dispute_id=dispute.id, buyer_id=order.buyer_id, amount=req.refund_amount
                    )
                )
            # two balances in one transaction: locked in ascending user_id (domain.md §3.3 step 5)
            for credit in sorted(credits, key=lambda effect: effect.user_id):
                await book.pay_from_escrow(escrow, credit)
            now = utcnow()
            await compare_and_set(
                session,
                Dispute,
                dispute.id,
                field="status",
                expected=(DisputeStatus.UNDER_REVIEW,),
                target=DisputeStatus.RESOLVED,
                values={"resolved_at": now},
            )
            book.event(
                "dispute.resolved",
                ("dispute", dispute.id),
                {
                    "dispute_id": dispute.id,
                    "order_id": order.id,
                    "status": DisputeStatus.RESOLVED,
                    "decision": req.decision,
                    "release_amount": format_cents(req.release_amount),
                    "refund_amount": format_cents(req.refund_amount),
                    "currency": "USD",
                    "resolved_by": req.resolved_by,
                    "resolved_at": iso(now),
                },
            )
            book.audit(
                "DISPUTE_RESOLVED",
                ("dispute", dispute.id),
                {"status": DisputeStatus.UNDER_REVIEW},
                {
                    "status": DisputeStatus.RESOLVED,
                    "decision": req.decision,
                    "release_amount": format_cents(req.release_amount),
                    "refund_amount": format_cents(req.refund_amount),
                    "resolved_by": req.resolved_by,
                },
            )
            await book.cancel_milestones(escrow, "dispute_resolved")
            refunded_all = req.decision == "FULL_REFUND"
            close_reason = {"FULL_RELEASE": "RELEASED", "FULL_REFUND": "REFUNDED"}.get(req.decision or "", "SPLIT")
            await book.close_settled(
                escrow,
                OrderStatus.REFUNDED if refunded_all else OrderStatus.RELEASED,
                req.refund_amount if refunded_all else req.release_amount,
                close_reason,
                tx_hash=None,
            )
        return DisputeOutcome(dispute_id=req.dispute_id, status=DisputeStatus.RESOLVED, decision=req.decision)

    @activity.defn(name=steps.DISPUTE_MILESTONE_SETTLED.name)
    async def milestone_settled(self, req: DisputeStep) -> DisputeOutcome:
        """One milestone's share of a decision landed on chain: the milestone is settled by the
        dispute (CANCELED, never paid again) and the shares are recorded on it and in the audit
        trail; the ledger credits the decision's totals when the dispute resolves."""
        assert req.milestone_id is not None
        async with self.ctx.sessions() as session, session.begin():
            dispute = await self._dispute(session, req.dispute_id)
            order, escrow = await load_locked(session, dispute.order_id)
            milestone = await lock_milestone(session, req.milestone_id)
            book = OrderBook(session, order, req.caller)
            if await book.milestone_move(
                milestone,
                (MilestoneStatus.OPEN, MilestoneStatus.COMPLETED, MilestoneStatus.APPROVED),
                MilestoneStatus.CANCELED,
            ):
                shares = {
                    "dispute_id": dispute.id,
                    "to_seller": format_cents(req.release_amount),
                    "to_buyer": format_cents(req.refund_amount),
                    "tx_hash": req.tx_hash,
                }
                book.milestone_event(
                    milestone, escrow, "escrow.milestone_canceled", {"reason": "dispute_resolved", **shares}
                )
                book.audit(
                    "MILESTONE_CANCELED",
                    ("milestone", milestone.id),
                    None,
                    {"status": MilestoneStatus.CANCELED, **shares},
                )
        return DisputeOutcome(dispute_id=req.dispute_id, status=dispute.status)

    @activity.defn(name=steps.DISPUTE_COMMENT.name)
    async def comment(self, req: DisputeStep) -> DisputeOutcome:
        assert req.comment is not None
        data = req.comment
        async with self.ctx.sessions() as session, session.begin():
            dispute = await self._dispute(session, req.dispute_id)
            order = await lock_order(session, dispute.order_id)
            if await session.get(DisputeComment, data.comment_id) is None:
                now = utcnow()
                session.add(
                    DisputeComment(
                        id=data.comment_id,
                        dispute_id=dispute.id,
                        author_type=data.author_type,
                        author_id=data.author_id,
                        message=data.message,
                        evidence=data.evidence,
                        visibility=data.visibility,
                        created_at=now,
                        updated_at=now,
                    )
                )
                book = OrderBook(session, order, req.caller)
                if data.visibility == "PUBLIC":
                    book.event(
                        "dispute.comment_added",
                        ("dispute", dispute.id),
                        {
                            "dispute_id": dispute.id,
                            "order_id": order.id,
                            "status": dispute.status,
                            "comment_id": data.comment_id,
                            "author_type": data.author_type,
                            "author_id": data.author_id,
                        },
                    )
                book.audit(
                    "DISPUTE_COMMENT_ADDED",
                    ("dispute", dispute.id),
                    None,
                    {"comment_id": data.comment_id, "visibility": data.visibility},
                )
        return DisputeOutcome(dispute_id=req.dispute_id, status=dispute.status)

    @activity.defn(name=steps.DISPUTE_SIGNAL_REJECTED.name)
    async def signal_rejected(self, req: DisputeStep) -> DisputeOutcome:
        """An operator Signal the workflow refused: audited as FAILURE, nothing else changes."""
        async with self.ctx.sessions() as session, session.begin():
            dispute = await self._dispute(session, req.dispute_id)
            order = await lock_order(session, dispute.order_id)
            OrderBook(session, order, req.caller).audit_failure(
                str((req.rejected or {}).get("action", "DISPUTE_SIGNAL")),
                ("dispute", dispute.id),
                req,
                {"payload": (req.rejected or {}).get("payload")},
            )
        return DisputeOutcome(dispute_id=req.dispute_id, status=dispute.status)
