"""Withdrawal transitions (domain.md §4.7): each one PostgreSQL transaction with its ledger
effect (hold, release of the hold, payout; §3.4), its `withdrawal.*` event and its audit
entry. Short steps, run as local activities; a retry finds its transition (compare-and-set)
and its ledger key already there and changes nothing."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio import activity

from activities.context import WorkerContext
from activities.ledger import apply_effect
from activities.records import compare_and_set
from models import steps
from models.audit import audit_entry
from models.events import new_event
from models.ledger import LedgerEffect
from models.money import format_cents
from models.orders_io import Caller
from models.states import WITHDRAWAL, WithdrawalStatus
from models.tables import Withdrawal
from models.timefmt import iso, utcnow
from models.withdrawals_io import (
    CreateWithdrawal,
    PayoutApplied,
    PayoutState,
    WithdrawalOutcome,
    WithdrawalStep,
    path_to,
)

log = logging.getLogger("offerhub.withdrawals")
W = WithdrawalStatus
RELEASE_REASON = {"expiry": "withdrawal_expired", "api": "withdrawal_canceled", "provider": "withdrawal_canceled"}


class WithdrawalBook:
    """The writes of one transaction about one withdrawal: transitions, events, audit, ledger."""

    def __init__(self, session: AsyncSession, wd: Withdrawal, caller: Caller) -> None:
        self.session, self.wd, self.caller = session, wd, caller

    def event(self, type: str, extra: dict[str, Any]) -> None:
        wd = self.wd
        self.session.add(
            new_event(
                type=type,
                resource=("withdrawal", wd.id),
                user_ids=[wd.user_id],
                actor=self.caller.actor,
                correlation_id=wd.id,
                request_id=self.caller.request_id,
                payload={
                    "withdrawal_id": wd.id,
                    "user_id": wd.user_id,
                    "amount": format_cents(wd.amount),
                    "currency": wd.currency,
                    "status": wd.status,
                    **extra,
                },
            )
        )

    def audit(self, before: dict[str, Any] | None, after: dict[str, Any]) -> None:
        self.session.add(
            audit_entry(
                action=self.wd.status,  # domain.md §6.3: the entered status
                resource_type="withdrawal",
                resource_id=self.wd.id,
                user_id=self.wd.user_id,
                actor=self.caller.actor,
                before=before,
                after=after,
                request_id=self.caller.request_id,
                idempotency_key=self.caller.idempotency_key,
                correlation_id=self.wd.id,
            )
        )

    async def move(self, target: str, extra: dict[str, Any], values: dict[str, Any] | None = None) -> bool:
        """CAS from any state the machine allows into `target`, with its event and audit entry."""
        before = self.wd.status
        WITHDRAWAL.check_transition(before, target, self.wd.id)
        moved = await compare_and_set(
            self.session, Withdrawal, self.wd.id, field="status", expected=(before,), target=target, values=values
        )
        if not moved:
            return False
        self.wd.status = target
        for key, value in (values or {}).items():
            setattr(self.wd, key, value)
        self.event(f"withdrawal.{target.removeprefix('WITHDRAWAL_').lower()}", extra)
        self.audit({"status": before}, {"status": target, **{k: v for k, v in extra.items() if k != "destination_ref"}})
        return True

    async def ledger(self, effect: LedgerEffect) -> None:
        await apply_effect(self.session, effect, actor=self.caller.actor)

    async def release_hold(self, reason: str) -> None:
        wd = self.wd
        await self.ledger(
            LedgerEffect.withdrawal_hold_release(
                withdrawal_id=wd.id,
                user_id=wd.user_id,
                amount=wd.amount,
                reason=reason,
                request_id=self.caller.request_id,
            )
        )


async def lock_withdrawal(session: AsyncSession, withdrawal_id: str) -> Withdrawal:
    wd = await session.get(Withdrawal, withdrawal_id, with_for_update=True, populate_existing=True)
    assert wd is not None, withdrawal_id
    return wd


def outcome_of(wd: Withdrawal) -> WithdrawalOutcome:
    return WithdrawalOutcome(withdrawal_id=wd.id, status=wd.status, expires_at=iso(wd.expires_at))


class WithdrawalActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    @activity.defn(name=steps.WITHDRAWAL_CREATE.name)
    async def create(self, req: CreateWithdrawal) -> WithdrawalOutcome:
        """Insert the withdrawal and take its hold in one transaction: INSUFFICIENT_FUNDS rolls
        back both, so nothing is created."""
        data = req.withdrawal
        async with self.ctx.sessions() as session, session.begin():
            existing = await session.get(Withdrawal, data.id)
            if existing is not None:
                return outcome_of(existing)
            now = utcnow()
            wd = Withdrawal(
                id=data.id,
                user_id=data.user_id,
                amount=data.amount,
                currency="USD",
                destination_type=data.destination_type,
                destination_ref=data.destination_ref,
                memo=data.memo,
                status=W.WITHDRAWAL_CREATED,
                committed=False,
                description=data.description,
                metadata_=data.metadata,
                expires_at=now + timedelta(seconds=data.commit_ttl_seconds),
                created_at=now,
                updated_at=now,
            )
            session.add(wd)
            await session.flush()
            book = WithdrawalBook(session, wd, req.caller)
            book.event(
                "withdrawal.created",
                {
                    "destination_type": wd.destination_type,
                    "destination_ref": wd.destination_ref,
                    "fee": None,
                    "expires_at": iso(wd.expires_at),
                },
            )
            book.audit(
                None,
                {"status": wd.status, "amount": format_cents(wd.amount), "destination_type": wd.destination_type},
            )
            await book.ledger(
                LedgerEffect.withdrawal_hold(
                    withdrawal_id=wd.id, user_id=wd.user_id, amount=wd.amount, request_id=req.caller.request_id
                )
            )
        return outcome_of(wd)

    @activity.defn(name=steps.WITHDRAWAL_COMMIT.name)
    async def commit(self, req: WithdrawalStep) -> WithdrawalOutcome:
        async with self.ctx.sessions() as session, session.begin():
            wd = await lock_withdrawal(session, req.withdrawal_id)
            if wd.status == W.WITHDRAWAL_CREATED:
                now = utcnow()
                await WithdrawalBook(session, wd, req.caller).move(
                    W.WITHDRAWAL_COMMITTED,
                    {"committed_at": iso(now)},
                    {"committed": True, "committed_at": now, "expires_at": None},
                )
        return outcome_of(wd)

    @activity.defn(name=steps.WITHDRAWAL_CANCEL.name)
    async def cancel(self, req: WithdrawalStep) -> WithdrawalOutcome:
        """CREATED -> CANCELED (API cancel or the expiry timer), the hold returned."""
        async with self.ctx.sessions() as session, session.begin():
            wd = await lock_withdrawal(session, req.withdrawal_id)
            if wd.status == W.WITHDRAWAL_CREATED:
                book = WithdrawalBook(session, wd, req.caller)
                await cancel_in(book, req.canceled_by or "api", req.failure_code or "CANCELED", req.failure_reason)
        return outcome_of(wd)

    @activity.defn(name=steps.WITHDRAWAL_APPLY.name)
    async def apply(self, req: PayoutApplied) -> WithdrawalOutcome:
        """Record what the provider revealed: its facts (payout ID, fee, transaction hash) and the
        transitions that lead to the state it maps to. Stale or backward news changes nothing."""
        async with self.ctx.sessions() as session, session.begin():
            wd = await lock_withdrawal(session, req.withdrawal_id)
            await apply_state(WithdrawalBook(session, wd, req.caller), req.state)
        return outcome_of(wd)


async def cancel_in(book: WithdrawalBook, by: str, code: str, reason: str | None) -> None:
    now = utcnow()
    await book.move(
        W.WITHDRAWAL_CANCELED,
        {"canceled_by": by, "failure_code": code, "hold_released": True},
        {"failure_code": code, "failure_reason": reason, "completed_at": now, "expires_at": None},
    )
    await book.release_hold("withdrawal_expired" if code == "EXPIRED" else RELEASE_REASON[by])


async def apply_state(book: WithdrawalBook, state: PayoutState) -> None:
    wd = book.wd
    facts = {
        name: value
        for name, value in (
            ("airtm_payout_id", state.airtm_payout_id),
            ("fee", state.fee),
            ("stellar_transaction_hash", state.stellar_transaction_hash),
        )
        if value is not None and getattr(wd, name) != value and wd.status not in WITHDRAWAL.terminal
    }
    if facts:
        await book.session.execute(
            update(Withdrawal).where(col(Withdrawal.id) == wd.id).values(**facts, updated_at=utcnow())
        )
        for name, value in facts.items():
            setattr(wd, name, value)
    if state.target is None:
        if state.provider_status:
            log.warning(
                "payout status changes nothing",
                extra={"withdrawal_id": wd.id, "provider_status": state.provider_status},
            )
        return
    steps_to = path_to(wd.status, state.target)
    if not steps_to and state.target != wd.status:
        log.warning(
            "provider news ignored (stale, repeated or backwards)",
            extra={"withdrawal_id": wd.id, "status": wd.status, "provider_target": state.target},
        )
    for target in steps_to:
        await _enter(book, target, state)


async def _enter(book: WithdrawalBook, target: str, state: PayoutState) -> None:
    wd = book.wd
    now = utcnow()
    if target == W.WITHDRAWAL_PENDING:
        await book.move(
            target, {"airtm_payout_id": wd.airtm_payout_id, "stellar_transaction_hash": wd.stellar_transaction_hash}
        )
    elif target == W.WITHDRAWAL_PENDING_USER_ACTION:
        await book.move(target, {"airtm_payout_id": wd.airtm_payout_id, "action_required": state.action_required})
    elif target == W.WITHDRAWAL_COMPLETED:
        if await book.move(
            target,
            {
                "airtm_payout_id": wd.airtm_payout_id,
                "stellar_transaction_hash": wd.stellar_transaction_hash,
                "completed_at": iso(now),
            },
            {"completed_at": now},
        ):
            await book.ledger(
                LedgerEffect.withdrawal_payout(
                    withdrawal_id=wd.id, user_id=wd.user_id, amount=wd.amount, request_id=book.caller.request_id
                )
            )
    elif target == W.WITHDRAWAL_FAILED:
        code = state.failure_code or "PROVIDER_REJECTED"
        if await book.move(
            target,
            {"failure_code": code, "failure_reason": state.failure_reason, "hold_released": True},
            {"failure_code": code, "failure_reason": state.failure_reason, "completed_at": now, "expires_at": None},
        ):
            await book.release_hold("withdrawal_failed")
    elif target == W.WITHDRAWAL_CANCELED:  # Airtm canceled the payout before it was committed
        await cancel_in(book, "provider", state.failure_code or "PROVIDER_CANCELED", state.failure_reason)
