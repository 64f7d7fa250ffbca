"""The ledger procedure (domain.md §3.3): one effect = one keyed entry + one conditional
balance update, inside the caller's transaction (so the transition that causes it, its
events and its audit entry commit together). A retry finds its key and applies nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.exceptions import ApplicationError

from models.audit import audit_entry
from models.errors import ErrorCode
from models.events import new_event
from models.ledger import AUDIT_ACTION_OF, EVENT_OF, SPENDING, EntryType, LedgerEffect
from models.money import format_cents
from models.tables import LedgerEntry

log = logging.getLogger("offerhub.ledger")


@dataclass(frozen=True)
class LedgerResult:
    entry_id: int
    applied: bool  # False: a retry found the effect already applied
    available_after: int
    reserved_after: int


def business_error(code: ErrorCode, message: str, **details: object) -> ApplicationError:
    """A non-retryable failure whose type is the catalog code (the API maps it to HTTP)."""
    return ApplicationError(message, details, type=code.value, non_retryable=True)


async def apply_effect(session: AsyncSession, effect: LedgerEffect, *, actor: tuple[str, str | None]) -> LedgerResult:
    """Apply `effect` exactly once in the open transaction of `session`.

    Two statements on the first application: the conditional balance update (its row lock
    serialises every effect on this balance until commit), then the keyed entry. A retry, or a
    twin that committed first, finds the key taken: the update is undone in this same
    transaction and the recorded result is returned. A failure here fails the whole step, so
    nothing is ever half-applied."""
    effect = _chaos_bug(effect)
    delta_available, delta_reserved = effect.deltas()
    balance = await _move_balance(session, effect.user_id, delta_available, delta_reserved)
    if balance is None:
        # short, or short because this effect was applied already (a retry after its commit)
        twin = await _existing(session, effect)
        if twin is not None:
            return twin
        raise await _cannot_apply(session, effect)
    available, reserved = balance
    try:
        entry_id = await session.scalar(
            pg_insert(LedgerEntry)
            .values(
                idempotency_key=effect.idempotency_key,
                exclusive_key=effect.exclusive_key,
                entry_type=effect.entry_type.value,
                user_id=effect.user_id,
                currency="USD",
                amount=effect.amount,
                delta_available=delta_available,
                delta_reserved=delta_reserved,
                available_after=available,
                reserved_after=reserved,
                counter_account=effect.counter_account,
                source_type=effect.source_type,
                source_id=effect.source_id,
                order_id=effect.order_id,
                escrow_id=effect.escrow_id,
                workflow_id=effect.workflow_id,
                request_id=effect.request_id,
            )
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(col(LedgerEntry.id))
        )
    except IntegrityError as exc:
        if "uq_ledger_entries_exclusive_key" in str(exc.orig):
            raise business_error(
                ErrorCode.LEDGER_KEY_CONFLICT,
                f"{effect.exclusive_key} is already taken by another effect",
                idempotency_key=effect.idempotency_key,
            ) from None
        raise
    if entry_id is None:  # applied before: take this update back, answer with the recorded result
        await _move_balance(session, effect.user_id, -delta_available, -delta_reserved)
        twin = await _existing(session, effect)
        if twin is None:  # DO NOTHING only yields to a committed row: never expected, so retry the step
            raise ApplicationError(f"{effect.idempotency_key}: key taken but its entry is not visible")
        return twin
    _record(session, effect, available, reserved, actor)
    return LedgerResult(int(entry_id), True, available, reserved)


def _chaos_bug(effect: LedgerEffect) -> LedgerEffect:
    """A deliberate bug for the chaos run's own test (tests/chaos): with
    OFFERHUB_CHAOS_BUG=random_ledger_key on a test instance, an order reservation is keyed at
    random, so a retried reserve applies twice. Inert otherwise (live never reads it)."""
    if (
        effect.entry_type is not EntryType.ORDER_RESERVE
        or os.environ.get("OFFERHUB_CHAOS_BUG") != "random_ledger_key"
        or os.environ.get("OFFERHUB_ENVIRONMENT") != "test"
    ):
        return effect
    return effect.model_copy(update={"idempotency_key": f"{effect.idempotency_key}:{secrets.token_hex(4)}"})


async def _move_balance(session: AsyncSession, user_id: str, available: int, reserved: int) -> tuple[int, int] | None:
    """Add the deltas unless a side would go negative; the balance after, or None."""
    row = (
        await session.execute(
            text(
                "UPDATE balances SET available = available + :da, reserved = reserved + :dr, "
                "updated_at = now() WHERE user_id = :u AND currency = 'USD' "
                "AND available + :da >= 0 AND reserved + :dr >= 0 RETURNING available, reserved"
            ),
            {"da": available, "dr": reserved, "u": user_id},
        )
    ).first()
    return (row.available, row.reserved) if row is not None else None


async def _existing(session: AsyncSession, effect: LedgerEffect) -> LedgerResult | None:
    entry = (
        await session.execute(select(LedgerEntry).where(col(LedgerEntry.idempotency_key) == effect.idempotency_key))
    ).scalar_one_or_none()
    if entry is None:
        return None
    if (entry.user_id, entry.entry_type, entry.amount) != (effect.user_id, effect.entry_type.value, effect.amount):
        raise business_error(
            ErrorCode.LEDGER_KEY_CONFLICT,
            f"{effect.idempotency_key} was applied with other terms",
            idempotency_key=effect.idempotency_key,
        )
    assert entry.id is not None
    return LedgerResult(entry.id, False, entry.available_after, entry.reserved_after)


async def _cannot_apply(session: AsyncSession, effect: LedgerEffect) -> ApplicationError:
    balance = (
        await session.execute(
            text("SELECT available, reserved FROM balances WHERE user_id = :u AND currency = 'USD'"),
            {"u": effect.user_id},
        )
    ).first()
    if balance is None:
        return business_error(ErrorCode.USER_NOT_FOUND, f"user {effect.user_id} has no balance", user_id=effect.user_id)
    if effect.entry_type in SPENDING:
        return business_error(
            ErrorCode.INSUFFICIENT_FUNDS,
            "available balance is below the amount",
            available=format_cents(balance.available),
            requested=format_cents(effect.amount),
            currency="USD",
        )
    # money on the reserved side that is not there: an invariant is already broken
    return business_error(ErrorCode.RESERVE_NOT_FOUND, f"{effect.idempotency_key}: reserved balance is short")


def _record(
    session: AsyncSession, effect: LedgerEffect, available: int, reserved: int, actor: tuple[str, str | None]
) -> None:
    """The effect's event and audit entry, in the same transaction."""
    event_type = EVENT_OF[effect.entry_type]
    payload: dict[str, object] = {
        "user_id": effect.user_id,
        "amount": format_cents(effect.amount),
        "currency": "USD",
        "entry_type": effect.entry_type.value,
        "source_type": effect.source_type,
        "source_id": effect.source_id,
        "order_id": effect.order_id,
        "available": format_cents(available),
        "reserved": format_cents(reserved),
    }
    if event_type == "balance.released":
        payload["reason"] = effect.reason
    session.add(
        new_event(
            type=event_type,
            resource=("balance", effect.user_id),
            user_ids=[effect.user_id],
            actor=actor,
            correlation_id=effect.correlation_id,
            payload=payload,
            request_id=effect.request_id,
        )
    )
    da, dr = effect.deltas()
    session.add(
        audit_entry(
            action=AUDIT_ACTION_OF[event_type],
            resource_type="balance",
            resource_id=effect.user_id,
            user_id=effect.user_id,
            actor=actor,
            request_id=effect.request_id,
            correlation_id=effect.correlation_id,
            before={"available": format_cents(available - da), "reserved": format_cents(reserved - dr)},
            after={
                "available": format_cents(available),
                "reserved": format_cents(reserved),
                "entry_type": effect.entry_type.value,
                "idempotency_key": effect.idempotency_key,
            },
        )
    )
