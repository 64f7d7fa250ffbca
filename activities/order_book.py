"""The bookkeeping every order-side step shares (domain.md §4.3-4.6): `OrderBook`, the writes
of one transaction about one order (transitions with their events and audit entries,
milestone cancellations, escrow pay-outs, closing), and the row loaders that lock them."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.ledger import apply_effect, business_error
from activities.records import compare_and_set
from models.audit import audit_entry
from models.errors import ErrorCode
from models.events import new_event
from models.ledger import EntryType, EscrowAccount, LedgerEffect
from models.money import format_cents
from models.orders_io import Caller, EscrowPlan, OrderStep
from models.states import EscrowStatus, MilestoneStatus, OrderStatus
from models.tables import Escrow, Milestone, Order
from models.timefmt import iso, utcnow

LIVE = col(Escrow.discarded_at).is_(None)
ESCROW_EVENT: dict[str, str] = {
    EscrowStatus.FUNDING: "escrow.funding_started"
}  # domain.md §4.4: the one not named after its state


def in_escrow(escrow: Escrow) -> int:
    return escrow.amount - escrow.released_amount - escrow.refunded_amount


class StepFailure(Protocol):
    """What a workflow reports about a step that failed for good."""

    @property
    def error_code(self) -> str | None: ...

    @property
    def error_message(self) -> str | None: ...


class OrderBook:
    """The writes of one transaction about one order: transitions, events, audit."""

    def __init__(self, session: AsyncSession, order: Order, caller: Caller) -> None:
        self.session, self.order, self.caller = session, order, caller

    @property
    def users(self) -> list[str]:
        return [self.order.buyer_id, self.order.seller_id]

    def event(self, type: str, resource: tuple[str, str], payload: dict[str, Any]) -> None:
        self.session.add(
            new_event(
                type=type,
                resource=resource,
                user_ids=self.users,
                actor=self.caller.actor,
                correlation_id=self.order.id,
                request_id=self.caller.request_id,
                payload=payload,
            )
        )

    def audit(
        self,
        action: str,
        resource: tuple[str, str],
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        *,
        result: str = "SUCCESS",
        error: dict[str, Any] | None = None,
    ) -> None:
        self.session.add(
            audit_entry(
                action=action,
                resource_type=resource[0],
                resource_id=resource[1],
                user_id=self.order.buyer_id,
                actor=self.caller.actor,
                result=result,
                before=before,
                after=after,
                error=error,
                request_id=self.caller.request_id,
                idempotency_key=self.caller.idempotency_key,
                correlation_id=self.order.id,
            )
        )

    def audit_failure(
        self, action: str, resource: tuple[str, str], failure: StepFailure, after: dict[str, Any] | None = None
    ) -> None:
        error = {"code": failure.error_code, "message": failure.error_message}
        self.audit(action, resource, None, after, result="FAILURE", error=error)

    async def move(
        self,
        target: str,
        expected: tuple[str, ...],
        payload: dict[str, Any] | None = None,
        values: dict[str, Any] | None = None,
    ) -> bool:
        """Order status transition with `order.<status>` and its audit entry; False if already there."""
        before = self.order.status
        moved = await compare_and_set(
            self.session, Order, self.order.id, field="status", expected=expected, target=target, values=values
        )
        if not moved:
            return False
        self.order.status = target
        for key, value in (values or {}).items():
            setattr(self.order, key, value)
        self.event(
            f"order.{target.lower()}",
            ("order", self.order.id),
            {"order_id": self.order.id, "status": target, **(payload or {})},
        )
        self.audit(target, ("order", self.order.id), {"status": before}, {"status": target})
        return True

    async def escrow_move(
        self,
        escrow: Escrow,
        target: str,
        expected: tuple[str, ...],
        event: dict[str, Any] | None = None,
        values: dict[str, Any] | None = None,
    ) -> bool:
        before = escrow.status
        moved = await compare_and_set(
            self.session, Escrow, escrow.id, field="status", expected=expected, target=target, values=values
        )
        if not moved:
            return False
        escrow.status = target
        for key, value in (values or {}).items():
            setattr(escrow, key, value)
        if event is not None:
            self.event(
                ESCROW_EVENT.get(target, f"escrow.{target.lower()}"),
                ("escrow", escrow.id),
                {"escrow_id": escrow.id, "order_id": self.order.id, "status": target, **event},
            )
        self.audit(f"ESCROW_{target}", ("escrow", escrow.id), {"status": before}, {"status": target})
        return True

    def milestone_event(self, milestone: Milestone, escrow: Escrow | None, type: str, extra: dict[str, Any]) -> None:
        self.event(
            type,
            ("milestone", milestone.id),
            {
                "escrow_id": escrow.id if escrow else None,
                "order_id": self.order.id,
                "milestone_id": milestone.id,
                "milestone_ref": milestone.milestone_ref,
                "amount": format_cents(milestone.amount),
                "currency": "USD",
                "status": milestone.status,
                **extra,
            },
        )

    async def cancel_milestones(self, escrow: Escrow | None, reason: str) -> None:
        milestones = (
            (
                await self.session.execute(
                    select(Milestone)
                    .where(
                        col(Milestone.order_id) == self.order.id,
                        col(Milestone.status).in_((MilestoneStatus.OPEN, MilestoneStatus.COMPLETED)),
                    )
                    .order_by(col(Milestone.position))
                )
            )
            .scalars()
            .all()
        )
        for milestone in milestones:
            await self.milestone_move(
                milestone, (MilestoneStatus.OPEN, MilestoneStatus.COMPLETED), MilestoneStatus.CANCELED
            )
            self.milestone_event(milestone, escrow, "escrow.milestone_canceled", {"reason": reason})
            self.audit("MILESTONE_CANCELED", ("milestone", milestone.id), None, {"status": MilestoneStatus.CANCELED})

    async def pay_out(self, escrow: Escrow, *, released: int = 0, refunded: int = 0) -> None:
        """Move the escrow's and the order's paid totals (domain.md §3.3 step 4)."""
        moved = await self.session.execute(
            update(Escrow)
            .where(
                col(Escrow.id) == escrow.id,
                col(Escrow.released_amount) + col(Escrow.refunded_amount) + released + refunded <= col(Escrow.amount),
            )
            .values(
                released_amount=col(Escrow.released_amount) + released,
                refunded_amount=col(Escrow.refunded_amount) + refunded,
                updated_at=utcnow(),
            )
            .returning(col(Escrow.released_amount), col(Escrow.refunded_amount))
        )
        row = moved.first()
        if row is None:
            raise business_error(ErrorCode.ESCROW_OVERDRAWN, f"escrow {escrow.id} would pay out more than it holds")
        escrow.released_amount, escrow.refunded_amount = row[0], row[1]
        await self.session.execute(
            update(Order)
            .where(col(Order.id) == self.order.id)
            .values(released_amount=row[0], refunded_amount=row[1], updated_at=utcnow())
        )
        self.order.released_amount, self.order.refunded_amount = row[0], row[1]

    async def milestone_move(
        self, milestone: Milestone, expected: tuple[str, ...], target: str, values: dict[str, Any] | None = None
    ) -> bool:
        """Milestone status compare-and-set; False if it is not in `expected` (e.g. already there)."""
        moved = await compare_and_set(
            self.session, Milestone, milestone.id, field="status", expected=expected, target=target, values=values
        )
        if moved:
            milestone.status = target
        return moved

    async def pay_from_escrow(self, escrow: Escrow, effect: LedgerEffect) -> None:
        """The keyed credit of money that left the escrow, with the escrow's and order's paid totals."""
        await self.ledger(effect)
        if effect.entry_type is EntryType.ESCROW_RELEASE:
            await self.pay_out(escrow, released=effect.amount)
        else:
            await self.pay_out(escrow, refunded=effect.amount)

    async def ledger(self, effect: LedgerEffect) -> None:
        await apply_effect(self.session, effect, actor=self.caller.actor)

    def account(self, escrow: Escrow) -> EscrowAccount:
        """The escrow as the account of a ledger effect of this order."""
        return EscrowAccount(order_id=self.order.id, escrow_id=escrow.id, request_id=self.caller.request_id)

    async def close_settled(
        self, escrow: Escrow, settled: str, amount: int, close_reason: str, *, tx_hash: str | None
    ) -> None:
        """Escrow and order settled (RELEASED or REFUNDED), then the order CLOSED."""
        book, order = self, self.order
        if order.status == OrderStatus.CLOSED:
            # this step ran and committed before, but its workflow task was lost (e.g. refused
            # as UnhandledCommand when a child completed meanwhile): a local activity can run
            # again, and finding its work done is success, not a conflict
            return
        now = utcnow()
        side = {"amount": format_cents(amount), "currency": "USD", "released_amount": None, "refunded_amount": None}
        totals = {
            "released_amount": format_cents(order.released_amount),
            "refunded_amount": format_cents(order.refunded_amount),
        }
        stamp = "released_at" if settled == OrderStatus.RELEASED else "refunded_at"
        await book.escrow_move(
            escrow,
            settled,
            (EscrowStatus.RELEASING, EscrowStatus.REFUNDING, EscrowStatus.FUNDED, EscrowStatus.DISPUTED),
            {**side, **totals, "tx_hash": tx_hash, stamp: iso(now)},
            values={stamp: now, "settlement_tx_hash": tx_hash},
        )
        who = {"seller_id": order.seller_id} if settled == OrderStatus.RELEASED else {"buyer_id": order.buyer_id}
        await book.move(
            settled,
            (
                OrderStatus.RELEASE_REQUESTED,
                OrderStatus.REFUND_REQUESTED,
                OrderStatus.IN_PROGRESS,
                OrderStatus.DISPUTED,
            ),
            {**who, "amount": format_cents(amount), "currency": "USD", **totals},
            values={"last_error": None},
        )
        await book.move(
            OrderStatus.CLOSED,
            (settled,),
            {"close_reason": close_reason, **totals, "closed_at": iso(now)},
            values={"close_reason": close_reason, "closed_at": now},
        )


async def lock_order(session: AsyncSession, order_id: str) -> Order:
    """The order row, locked for this transaction (steps that do not touch the escrow)."""
    order = await session.get(Order, order_id, with_for_update=True, populate_existing=True)
    assert order is not None, order_id
    return order


async def load_locked(session: AsyncSession, order_id: str) -> tuple[Order, Escrow | None]:
    """The order and its live escrow (if any), both locked, in that order."""
    order = await lock_order(session, order_id)
    escrow = (
        await session.execute(select(Escrow).where(col(Escrow.order_id) == order_id, LIVE).with_for_update())
    ).scalar_one_or_none()
    return order, escrow


async def lock_escrow(session: AsyncSession, escrow_id: str) -> Escrow:
    escrow = await session.get(Escrow, escrow_id, with_for_update=True, populate_existing=True)
    assert escrow is not None, escrow_id
    return escrow


async def lock_milestone(session: AsyncSession, milestone_id: str) -> Milestone:
    milestone = await session.get(Milestone, milestone_id, with_for_update=True, populate_existing=True)
    assert milestone is not None, milestone_id
    return milestone


def plan_of(order: Order, escrow: Escrow) -> EscrowPlan:
    return EscrowPlan(
        order_id=order.id,
        escrow_id=escrow.id,
        contract_id=escrow.trustless_contract_id,
        escrow_type="multi-release" if escrow.type == "MULTI_RELEASE" else "single-release",
        amount=escrow.amount,
        buyer_id=order.buyer_id,
        seller_id=order.seller_id,
    )


def last_error(operation: str, req: OrderStep) -> dict[str, Any]:
    return {
        "operation": operation,
        "code": req.error_code or "PROVIDER_ERROR",
        "message": (req.error_message or "the provider refused the operation")[:500],
        "occurred_at": iso(utcnow()),
    }
