"""Order, escrow and milestone transitions (domain.md §4.3-4.5): each one transaction with
its ledger effect, events and audit entries. Short PostgreSQL steps, run as local activities."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio import activity

from activities.context import WorkerContext
from activities.ledger import apply_effect, business_error
from activities.records import compare_and_set
from models.audit import audit_entry
from models.errors import ErrorCode
from models.events import new_event
from models.ids import IdPrefix, new_id
from models.ledger import EntryType, LedgerEffect
from models.money import format_cents
from models.orders_io import (
    Caller,
    ChainDone,
    CreateOrder,
    EscrowPlan,
    MilestoneStep,
    OrderOutcome,
    OrderStep,
)
from models.states import MilestoneStatus
from models.tables import Escrow, Milestone, Order, Wallet
from models.timefmt import iso, utcnow

LIVE = col(Escrow.discarded_at).is_(None)
ESCROW_EVENT = {"FUNDING": "escrow.funding_started"}  # domain.md §4.4: the one not named after its state


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
                    .where(col(Milestone.order_id) == self.order.id, col(Milestone.status).in_(("OPEN", "COMPLETED")))
                    .order_by(col(Milestone.position))
                )
            )
            .scalars()
            .all()
        )
        for milestone in milestones:
            await compare_and_set(
                self.session, Milestone, milestone.id, field="status", expected=("OPEN", "COMPLETED"), target="CANCELED"
            )
            milestone.status = "CANCELED"
            self.milestone_event(milestone, escrow, "escrow.milestone_canceled", {"reason": reason})
            self.audit("MILESTONE_CANCELED", ("milestone", milestone.id), None, {"status": "CANCELED"})

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

    async def ledger(self, effect: LedgerEffect) -> None:
        await apply_effect(self.session, effect, actor=self.caller.actor)

    async def escrow_payout(
        self,
        escrow: Escrow,
        entry: EntryType,
        key: str,
        user_id: str,
        amount: int,
        source: tuple[str, str] | None = None,
    ) -> None:
        """The keyed ledger credit of money that left the escrow for `user_id`."""
        await self.ledger(_effect(self.order, escrow, entry, key, user_id, amount, self.caller, source=source))


def _effect(
    order: Order,
    escrow: Escrow,
    entry: EntryType,
    key: str,
    user_id: str,
    amount: int,
    caller: Caller,
    source: tuple[str, str] | None = None,
    exclusive: str | None = None,
) -> LedgerEffect:
    source_type, source_id = source or ("order", order.id)
    return LedgerEffect(
        idempotency_key=key,
        exclusive_key=exclusive,
        entry_type=entry,
        user_id=user_id,
        amount=amount,
        counter_account=f"escrow:{escrow.id}",
        source_type=source_type,
        source_id=source_id,
        order_id=order.id,
        escrow_id=escrow.id,
        workflow_id=order.id,
        request_id=caller.request_id,
        correlation_id=order.id,
    )


class OrderActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    async def lock_order(self, session: AsyncSession, order_id: str) -> Order:
        """The order row, locked for this transaction (steps that do not touch the escrow)."""
        order = await session.get(Order, order_id, with_for_update=True, populate_existing=True)
        assert order is not None, order_id
        return order

    async def load_locked(self, session: AsyncSession, order_id: str) -> tuple[Order, Escrow | None]:
        order = await self.lock_order(session, order_id)
        escrow = (
            await session.execute(select(Escrow).where(col(Escrow.order_id) == order_id, LIVE).with_for_update())
        ).scalar_one_or_none()
        return order, escrow

    # creation, reservation, cancellation ------------------------------------------------------

    @activity.defn(name="order_create")
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
                status="ORDER_CREATED",
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
                        status="OPEN",
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
                    "status": "ORDER_CREATED",
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
                "ORDER_CREATED",
                ("order", order.id),
                None,
                {"status": "ORDER_CREATED", "amount": format_cents(order.amount)},
            )
        return OrderOutcome(order_id=data.id, status="ORDER_CREATED")

    @activity.defn(name="order_reserve")
    async def reserve(self, req: OrderStep) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            order = await self.lock_order(session, req.order_id)
            book = OrderBook(session, order, req.caller)
            if await book.move(
                "FUNDS_RESERVED",
                ("ORDER_CREATED",),
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

    @activity.defn(name="order_cancel")
    async def cancel(self, req: OrderStep) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            order = await self.lock_order(session, req.order_id)
            if order.status == "CLOSED":
                return OrderOutcome(order_id=order.id, status=order.status)
            previous = order.status
            book = OrderBook(session, order, req.caller)
            reserved = previous == "FUNDS_RESERVED"
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
                    "status": "CLOSED",
                    "buyer_id": order.buyer_id,
                    "reason": req.reason,
                    "previous_status": previous,
                    "funds_released": reserved,
                },
            )
            book.audit("ORDER_CANCELED", ("order", order.id), {"status": previous}, {"cancel_reason": req.reason})
            now = utcnow()
            await book.move(
                "CLOSED",
                ("ORDER_CREATED", "FUNDS_RESERVED"),
                {
                    "close_reason": "CANCELED",
                    "released_amount": "0.00",
                    "refunded_amount": "0.00",
                    "closed_at": iso(now),
                },
                values={"close_reason": "CANCELED", "cancel_reason": req.reason, "closed_at": now},
            )
        return OrderOutcome(order_id=order.id, status="CLOSED")

    # escrow ------------------------------------------------------------------------------

    @activity.defn(name="escrow_prepare")
    async def escrow_prepare(self, req: OrderStep) -> EscrowPlan:
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await self.load_locked(session, req.order_id)
            milestones = (await session.execute(select(Milestone).where(col(Milestone.order_id) == order.id))).all()
            if escrow is None:
                await self._require_wallets(session, order)
                now = utcnow()
                escrow = Escrow(
                    id=new_id(IdPrefix.ESCROW),
                    order_id=order.id,
                    status="CREATING",
                    type="MULTI_RELEASE" if milestones else "SINGLE_RELEASE",
                    amount=order.amount,
                    network=self.ctx.settings.stellar_network,
                    created_at=now,
                    updated_at=now,
                )
                session.add(escrow)
                await session.flush()
                book = OrderBook(session, order, req.caller)
                await book.move(
                    "ESCROW_CREATING",
                    ("FUNDS_RESERVED",),
                    {"escrow_id": escrow.id, "amount": format_cents(order.amount), "currency": "USD"},
                )
        return self.plan_of(order, escrow)

    def plan_of(self, order: Order, escrow: Escrow) -> EscrowPlan:
        return EscrowPlan(
            order_id=order.id,
            escrow_id=escrow.id,
            contract_id=escrow.trustless_contract_id,
            escrow_type="multi-release" if escrow.type == "MULTI_RELEASE" else "single-release",
            amount=escrow.amount,
            buyer_id=order.buyer_id,
            seller_id=order.seller_id,
        )

    async def _require_wallets(self, session: AsyncSession, order: Order) -> None:
        if self.ctx.settings.payment_provider != "crypto":
            return
        for user_id in (order.buyer_id, order.seller_id):
            wallet = (
                await session.execute(
                    select(Wallet).where(
                        col(Wallet.user_id) == user_id,
                        col(Wallet.is_primary).is_(True),
                        col(Wallet.is_active).is_(True),
                    )
                )
            ).scalar_one_or_none()
            if wallet is None or wallet.status != "READY":
                raise business_error(
                    ErrorCode.WALLET_NOT_READY,
                    f"the wallet of {user_id} is not ready",
                    user_id=user_id,
                    wallet_id=wallet.id if wallet else None,
                    status=wallet.status if wallet else None,
                )

    @activity.defn(name="escrow_deployed")
    async def escrow_deployed(self, req: ChainDone) -> EscrowPlan:
        async with self.ctx.sessions() as session, session.begin():
            assert req.escrow_id is not None, req.operation_key
            escrow = (
                await session.execute(select(Escrow).where(col(Escrow.id) == req.escrow_id).with_for_update())
            ).scalar_one()
            order = await self.lock_order(session, escrow.order_id)
            book = OrderBook(session, order, Caller(actor_id=order.id))
            await book.escrow_move(
                escrow,
                "CREATED",
                ("CREATING",),
                {
                    "type": escrow.type,
                    "amount": format_cents(escrow.amount),
                    "currency": "USD",
                    "trustless_contract_id": req.contract_id,
                    "network": escrow.network,
                    "deploy_tx_hash": req.tx_hash,
                },
                values={"trustless_contract_id": req.contract_id, "deploy_tx_hash": req.tx_hash},
            )
            await book.move(
                "ESCROW_FUNDING",
                ("ESCROW_CREATING",),
                {"escrow_id": escrow.id, "trustless_contract_id": req.contract_id},
                values={"last_error": None},
            )
        return self.plan_of(order, escrow)

    @activity.defn(name="escrow_deploy_failed")
    async def escrow_deploy_failed(self, req: OrderStep) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await self.load_locked(session, req.order_id)
            book = OrderBook(session, order, req.caller)
            if escrow is not None and escrow.status == "CREATING":
                escrow.discarded_at = utcnow()
                book.audit("ESCROW_DISCARDED", ("escrow", escrow.id), {"status": "CREATING"}, {"discarded": True})
            error = _last_error("create_escrow", req)
            await book.move("FUNDS_RESERVED", ("ESCROW_CREATING",), {"error": error}, values={"last_error": error})
            book.audit_failure("ESCROW_DEPLOY_FAILED", ("order", order.id), req)
        return OrderOutcome(order_id=order.id, status=order.status)

    @activity.defn(name="escrow_funding_started")
    async def escrow_funding_started(self, req: OrderStep) -> EscrowPlan:
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await self.load_locked(session, req.order_id)
            assert escrow is not None
            book = OrderBook(session, order, req.caller)
            await book.escrow_move(
                escrow,
                "FUNDING",
                ("CREATED",),
                {
                    "trustless_contract_id": escrow.trustless_contract_id,
                    "amount": format_cents(escrow.amount),
                    "currency": "USD",
                    "fund_tx_hash": None,
                },
            )
        return self.plan_of(order, escrow)

    @activity.defn(name="escrow_funded")
    async def escrow_funded(self, req: ChainDone) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            assert req.escrow_id is not None, req.operation_key
            escrow = (
                await session.execute(select(Escrow).where(col(Escrow.id) == req.escrow_id).with_for_update())
            ).scalar_one()
            order = await self.lock_order(session, escrow.order_id)
            caller = Caller(actor_id=order.id)
            book = OrderBook(session, order, caller)
            now = utcnow()
            if await book.escrow_move(
                escrow,
                "FUNDED",
                ("FUNDING",),
                {
                    "trustless_contract_id": escrow.trustless_contract_id,
                    "amount": format_cents(escrow.amount),
                    "currency": "USD",
                    "fund_tx_hash": req.tx_hash,
                    "funded_at": iso(now),
                },
                values={"fund_tx_hash": req.tx_hash, "funded_at": now},
            ):
                await book.ledger(
                    _effect(
                        order,
                        escrow,
                        EntryType.ESCROW_FUND,
                        f"order:{order.id}:escrow_fund",
                        order.buyer_id,
                        order.amount,
                        caller,
                        exclusive=f"order:{order.id}:reservation",
                    )
                )
                await book.move(
                    "ESCROW_FUNDED",
                    ("ESCROW_FUNDING",),
                    {
                        "escrow_id": escrow.id,
                        "trustless_contract_id": escrow.trustless_contract_id,
                        "amount": format_cents(order.amount),
                        "currency": "USD",
                        "funded_at": iso(now),
                    },
                    values={"last_error": None},
                )
                await book.move(
                    "IN_PROGRESS",
                    ("ESCROW_FUNDED",),
                    {"amount_in_escrow": format_cents(in_escrow(escrow)), "currency": "USD"},
                )
        return OrderOutcome(order_id=order.id, status=order.status)

    @activity.defn(name="escrow_funding_failed")
    async def escrow_funding_failed(self, req: OrderStep) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await self.load_locked(session, req.order_id)
            assert escrow is not None
            book = OrderBook(session, order, req.caller)
            await book.escrow_move(escrow, "CREATED", ("FUNDING",))
            error = _last_error("fund_escrow", req)
            await session.execute(update(Order).where(col(Order.id) == order.id).values(last_error=error))
            book.audit_failure("ESCROW_FUNDING_FAILED", ("order", order.id), req)
        return OrderOutcome(order_id=order.id, status=order.status)

    # release and refund ---------------------------------------------------------------------

    @activity.defn(name="settlement_requested")
    async def settlement_requested(self, req: OrderStep) -> EscrowPlan:
        """IN_PROGRESS -> RELEASE_REQUESTED / REFUND_REQUESTED (req.operation: release | refund)."""
        release = req.operation == "release"
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await self.load_locked(session, req.order_id)
            assert escrow is not None
            book = OrderBook(session, order, req.caller)
            target = "RELEASE_REQUESTED" if release else "REFUND_REQUESTED"
            if await book.move(
                target,
                ("IN_PROGRESS",),
                {"amount": format_cents(in_escrow(escrow)), "currency": "USD", "reason": req.reason},
            ):
                await book.escrow_move(escrow, "RELEASING" if release else "REFUNDING", ("FUNDED",))
        return self.plan_of(order, escrow)

    @activity.defn(name="settlement_failed")
    async def settlement_failed(self, req: OrderStep) -> OrderOutcome:
        """Compensation: back to IN_PROGRESS (escrow FUNDED) with last_error."""
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await self.load_locked(session, req.order_id)
            assert escrow is not None
            book = OrderBook(session, order, req.caller)
            operation = req.operation or "release"
            error = _last_error(operation, req)
            await book.escrow_move(escrow, "FUNDED", ("RELEASING", "REFUNDING"))
            await book.move(
                "IN_PROGRESS",
                ("RELEASE_REQUESTED", "REFUND_REQUESTED"),
                {"amount_in_escrow": format_cents(in_escrow(escrow)), "currency": "USD", "error": error},
                values={"last_error": error},
            )
            book.audit_failure(
                "RELEASE_FAILED" if operation == "release" else "REFUND_FAILED", ("order", order.id), req
            )
        return OrderOutcome(order_id=order.id, status=order.status)

    @activity.defn(name="order_step_failed")
    async def step_failed(self, req: OrderStep) -> OrderOutcome:
        """A step that failed for good without moving the order (a milestone's completion or
        payment): `last_error` names it and the failure is audited."""
        async with self.ctx.sessions() as session, session.begin():
            order = await self.lock_order(session, req.order_id)
            error = _last_error(req.operation or "unknown", req)
            await session.execute(update(Order).where(col(Order.id) == order.id).values(last_error=error))
            OrderBook(session, order, req.caller).audit_failure(
                f"{(req.operation or 'STEP').split(':')[0].upper()}_FAILED", ("order", order.id), req
            )
        return OrderOutcome(order_id=order.id, status=order.status)

    @activity.defn(name="order_released")
    async def released(self, req: OrderStep) -> OrderOutcome:
        """Everything left in escrow went to the seller: ledger (single-release), escrow and order closed."""
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await self.load_locked(session, req.order_id)
            assert escrow is not None
            caller = Caller(actor_id=order.id)
            book = OrderBook(session, order, caller)
            paid = in_escrow(escrow)
            if escrow.type == "SINGLE_RELEASE" and paid > 0:
                await book.escrow_payout(
                    escrow, EntryType.ESCROW_RELEASE, f"order:{order.id}:release", order.seller_id, paid
                )
                await book.pay_out(escrow, released=paid)
            await self.close_settled(book, escrow, "RELEASED", paid, req.reason or "RELEASED", tx_hash=req.tx_hash)
        return OrderOutcome(order_id=order.id, status=order.status)

    @activity.defn(name="order_refunded")
    async def refunded(self, req: OrderStep) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await self.load_locked(session, req.order_id)
            assert escrow is not None
            caller = Caller(actor_id=order.id)
            book = OrderBook(session, order, caller)
            returned = in_escrow(escrow)
            if returned > 0:
                await book.escrow_payout(
                    escrow, EntryType.ESCROW_REFUND, f"order:{order.id}:refund", order.buyer_id, returned
                )
                await book.pay_out(escrow, refunded=returned)
            await book.cancel_milestones(escrow, "refunded")
            # milestone orders were credited milestone by milestone (milestone_refunded): the total
            await self.close_settled(book, escrow, "REFUNDED", order.refunded_amount, "REFUNDED", tx_hash=req.tx_hash)
        return OrderOutcome(order_id=order.id, status=order.status)

    async def close_settled(
        self, book: OrderBook, escrow: Escrow, settled: str, amount: int, close_reason: str, *, tx_hash: str | None
    ) -> None:
        order = book.order
        if order.status == "CLOSED":
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
        stamp = "released_at" if settled == "RELEASED" else "refunded_at"
        await book.escrow_move(
            escrow,
            settled,
            ("RELEASING", "REFUNDING", "FUNDED", "DISPUTED"),
            {**side, **totals, "tx_hash": tx_hash, stamp: iso(now)},
            values={stamp: now, "settlement_tx_hash": tx_hash},
        )
        who = {"seller_id": order.seller_id} if settled == "RELEASED" else {"buyer_id": order.buyer_id}
        await book.move(
            settled,
            ("RELEASE_REQUESTED", "REFUND_REQUESTED", "IN_PROGRESS", "DISPUTED"),
            {**who, "amount": format_cents(amount), "currency": "USD", **totals},
            values={"last_error": None},
        )
        await book.move(
            "CLOSED",
            (settled,),
            {"close_reason": close_reason, **totals, "closed_at": iso(now)},
            values={"close_reason": close_reason, "closed_at": now},
        )

    # milestones ---------------------------------------------------------------------------

    async def _milestone(self, session: AsyncSession, milestone_id: str) -> Milestone:
        milestone = await session.get(Milestone, milestone_id, with_for_update=True, populate_existing=True)
        assert milestone is not None, milestone_id
        return milestone

    @activity.defn(name="milestone_completed")
    async def milestone_completed(self, req: MilestoneStep) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await self.load_locked(session, req.order_id)
            milestone = await self._milestone(session, req.milestone_id)
            now = utcnow()
            if await compare_and_set(
                session,
                Milestone,
                milestone.id,
                field="status",
                expected=("OPEN",),
                target="COMPLETED",
                values={"completion_note": req.note, "completed_at": now},
            ):
                milestone.status = "COMPLETED"
                book = OrderBook(session, order, req.caller)
                book.milestone_event(
                    milestone,
                    escrow,
                    "escrow.milestone_completed",
                    {"completion_note": req.note, "completed_at": iso(now)},
                )
                book.audit(
                    "MILESTONE_COMPLETED", ("milestone", milestone.id), {"status": "OPEN"}, {"status": "COMPLETED"}
                )
        return OrderOutcome(order_id=order.id, status="COMPLETED")

    @activity.defn(name="milestone_approved")
    async def milestone_approved(self, req: MilestoneStep) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await self.load_locked(session, req.order_id)
            milestone = await self._milestone(session, req.milestone_id)
            now = utcnow()
            if await compare_and_set(
                session,
                Milestone,
                milestone.id,
                field="status",
                expected=("COMPLETED",),
                target="APPROVED",
                values={"approved_at": now},
            ):
                milestone.status = "APPROVED"
                book = OrderBook(session, order, req.caller)
                book.milestone_event(milestone, escrow, "escrow.milestone_approved", {"approved_at": iso(now)})
                book.audit(
                    "MILESTONE_APPROVED", ("milestone", milestone.id), {"status": "COMPLETED"}, {"status": "APPROVED"}
                )
        return OrderOutcome(order_id=order.id, status="APPROVED")

    @activity.defn(name="milestone_released")
    async def milestone_released(self, req: MilestoneStep) -> OrderOutcome:
        """APPROVED -> RELEASED with the seller's credit; status `LAST` when nothing is left to pay."""
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await self.load_locked(session, req.order_id)
            assert escrow is not None
            milestone = await self._milestone(session, req.milestone_id)
            caller = Caller(actor_id=milestone.id)
            book = OrderBook(session, order, caller)
            now = utcnow()
            if await compare_and_set(
                session,
                Milestone,
                milestone.id,
                field="status",
                expected=("APPROVED",),
                target="RELEASED",
                values={"released_at": now, "release_tx_hash": req.tx_hash},
            ):
                milestone.status = "RELEASED"
                await book.escrow_payout(
                    escrow,
                    EntryType.ESCROW_RELEASE,
                    f"milestone:{milestone.id}:release",
                    order.seller_id,
                    milestone.amount,
                    source=("milestone", milestone.id),
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
                    {"status": "APPROVED"},
                    {"status": "RELEASED", "amount": format_cents(milestone.amount)},
                )
            left = in_escrow(escrow)
        return OrderOutcome(order_id=order.id, status="LAST" if left == 0 else "RELEASED")

    @activity.defn(name="milestone_refunded")
    async def milestone_refunded(self, req: MilestoneStep) -> OrderOutcome:
        """One milestone's amount went back to the buyer (an order refund, milestone by
        milestone): its keyed credit, the escrow's refunded total, the milestone CANCELED."""
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await self.load_locked(session, req.order_id)
            assert escrow is not None
            milestone = await self._milestone(session, req.milestone_id)
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
                        order_id=order.id,
                        escrow_id=escrow.id,
                        milestone_id=milestone.id,
                        buyer_id=order.buyer_id,
                        amount=milestone.amount,
                        request_id=req.caller.request_id,
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
                    {"status": "CANCELED", "refunded_amount": format_cents(milestone.amount)},
                )
        return OrderOutcome(order_id=order.id, status=MilestoneStatus.CANCELED)


def _last_error(operation: str, req: OrderStep) -> dict[str, Any]:
    return {
        "operation": operation,
        "code": req.error_code or "PROVIDER_ERROR",
        "message": (req.error_message or "the provider refused the operation")[:500],
        "occurred_at": iso(utcnow()),
    }
