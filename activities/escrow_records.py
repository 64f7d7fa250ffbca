"""Escrow records of an order (domain.md §4.4): prepared, deployed (or discarded), funding,
funded (the buyer's reservation moved into it) or back to CREATED. Local activities."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio import activity

from activities.context import WorkerContext
from activities.ledger import business_error
from activities.order_book import (
    OrderBook,
    in_escrow,
    last_error,
    load_locked,
    lock_escrow,
    lock_order,
    plan_of,
)
from models import steps
from models.errors import ErrorCode
from models.ids import IdPrefix, new_id
from models.ledger import LedgerEffect
from models.money import format_cents
from models.orders_io import (
    Caller,
    ChainDone,
    EscrowPlan,
    OrderOutcome,
    OrderStep,
)
from models.states import EscrowStatus, OrderStatus
from models.tables import Escrow, Milestone, Order, Wallet
from models.timefmt import iso, utcnow


class EscrowRecordActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    # escrow ------------------------------------------------------------------------------

    @activity.defn(name=steps.ESCROW_PREPARE.name)
    async def escrow_prepare(self, req: OrderStep) -> EscrowPlan:
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await load_locked(session, req.order_id)
            milestones = (await session.execute(select(Milestone).where(col(Milestone.order_id) == order.id))).all()
            if escrow is None:
                await self._require_wallets(session, order)
                now = utcnow()
                escrow = Escrow(
                    id=new_id(IdPrefix.ESCROW),
                    order_id=order.id,
                    status=EscrowStatus.CREATING,
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
                    OrderStatus.ESCROW_CREATING,
                    (OrderStatus.FUNDS_RESERVED,),
                    {"escrow_id": escrow.id, "amount": format_cents(order.amount), "currency": "USD"},
                )
        return plan_of(order, escrow)

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

    @activity.defn(name=steps.ESCROW_DEPLOYED.name)
    async def escrow_deployed(self, req: ChainDone) -> EscrowPlan:
        async with self.ctx.sessions() as session, session.begin():
            assert req.escrow_id is not None, req.operation_key
            escrow = await lock_escrow(session, req.escrow_id)
            order = await lock_order(session, escrow.order_id)
            book = OrderBook(session, order, Caller(actor_id=order.id))
            await book.escrow_move(
                escrow,
                EscrowStatus.CREATED,
                (EscrowStatus.CREATING,),
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
                OrderStatus.ESCROW_FUNDING,
                (OrderStatus.ESCROW_CREATING,),
                {"escrow_id": escrow.id, "trustless_contract_id": req.contract_id},
                values={"last_error": None},
            )
        return plan_of(order, escrow)

    @activity.defn(name=steps.ESCROW_DEPLOY_FAILED.name)
    async def escrow_deploy_failed(self, req: OrderStep) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await load_locked(session, req.order_id)
            book = OrderBook(session, order, req.caller)
            if escrow is not None and escrow.status == EscrowStatus.CREATING:
                escrow.discarded_at = utcnow()
                book.audit(
                    "ESCROW_DISCARDED", ("escrow", escrow.id), {"status": EscrowStatus.CREATING}, {"discarded": True}
                )
            error = last_error("create_escrow", req)
            await book.move(
                OrderStatus.FUNDS_RESERVED,
                (OrderStatus.ESCROW_CREATING,),
                {"error": error},
                values={"last_error": error},
            )
            book.audit_failure("ESCROW_DEPLOY_FAILED", ("order", order.id), req)
        return OrderOutcome(order_id=order.id, status=order.status)

    @activity.defn(name=steps.ESCROW_FUNDING_STARTED.name)
    async def escrow_funding_started(self, req: OrderStep) -> EscrowPlan:
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await load_locked(session, req.order_id)
            assert escrow is not None
            book = OrderBook(session, order, req.caller)
            await book.escrow_move(
                escrow,
                EscrowStatus.FUNDING,
                (EscrowStatus.CREATED,),
                {
                    "trustless_contract_id": escrow.trustless_contract_id,
                    "amount": format_cents(escrow.amount),
                    "currency": "USD",
                    "fund_tx_hash": None,
                },
            )
        return plan_of(order, escrow)

    @activity.defn(name=steps.ESCROW_FUNDED.name)
    async def escrow_funded(self, req: ChainDone) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            assert req.escrow_id is not None, req.operation_key
            escrow = await lock_escrow(session, req.escrow_id)
            order = await lock_order(session, escrow.order_id)
            caller = Caller(actor_id=order.id)
            book = OrderBook(session, order, caller)
            now = utcnow()
            if await book.escrow_move(
                escrow,
                EscrowStatus.FUNDED,
                (EscrowStatus.FUNDING,),
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
                    LedgerEffect.escrow_fund(book.account(escrow), buyer_id=order.buyer_id, amount=order.amount)
                )
                await book.move(
                    OrderStatus.ESCROW_FUNDED,
                    (OrderStatus.ESCROW_FUNDING,),
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
                    OrderStatus.IN_PROGRESS,
                    (OrderStatus.ESCROW_FUNDED,),
                    {"amount_in_escrow": format_cents(in_escrow(escrow)), "currency": "USD"},
                )
        return OrderOutcome(order_id=order.id, status=order.status)

    @activity.defn(name=steps.ESCROW_FUNDING_FAILED.name)
    async def escrow_funding_failed(self, req: OrderStep) -> OrderOutcome:
        async with self.ctx.sessions() as session, session.begin():
            order, escrow = await load_locked(session, req.order_id)
            assert escrow is not None
            book = OrderBook(session, order, req.caller)
            await book.escrow_move(escrow, EscrowStatus.CREATED, (EscrowStatus.FUNDING,))
            error = last_error("fund_escrow", req)
            await session.execute(update(Order).where(col(Order.id) == order.id).values(last_error=error))
            book.audit_failure("ESCROW_FUNDING_FAILED", ("order", order.id), req)
        return OrderOutcome(order_id=order.id, status=order.status)
