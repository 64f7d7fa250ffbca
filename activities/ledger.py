"""The ledger procedure (domain.md §3.3): one effect = one keyed entry + one conditional
balance update, inside the caller's transaction (so the transition that causes it, its
events and its audit entry commit together). A retry finds its key and applies nothing.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass

import asyncpg
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.exceptions import ApplicationError

from models.errors import ErrorCode
from models.events import event_moment
from models.ids import IdPrefix, new_id
from models.ledger import AUDIT_ACTION_OF, EVENT_OF, SPENDING, EntryType, LedgerEffect
from models.money import format_cents
from models.redaction import redact
from models.sqlstate import DRIVER_ERRORS, as_sqlalchemy_error
from models.tables import LedgerEntry
from models.timefmt import utcnow

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


# cents as the API spells them (models.money.format_cents), for balances the statement computes
_CENTS = "(({0}) / 100)::text || '.' || lpad((({0}) % 100)::text, 2, '0')"

# The whole first application in one statement: the conditional balance update (its row lock
# serialises every effect on this balance until commit), the keyed entry built from the balance
# after, and the effect's event and audit entry, selected FROM the inserted entry so they exist
# only if the entry does. Values that do not depend on the balance come from Python; the
# balances in the payloads are formatted here. Its one row: the balance after (none if a side
# would go negative or the user has no balance) and the entry's id (NULL if the key was taken).
APPLY = text(
    f"""
    WITH moved AS (
        UPDATE balances SET available = available + :da, reserved = reserved + :dr, updated_at = now()
        WHERE user_id = :user_id AND currency = 'USD' AND available + :da >= 0 AND reserved + :dr >= 0
        RETURNING available, reserved
    ), entry AS (
        INSERT INTO ledger_entries (
            idempotency_key, exclusive_key, entry_type, user_id, currency, amount, delta_available,
            delta_reserved, available_after, reserved_after, counter_account, source_type, source_id,
            order_id, escrow_id, workflow_id, request_id
        )
        SELECT CAST(:key AS text), CAST(:exclusive_key AS text), CAST(:entry_type AS text),
            CAST(:user_id AS text), 'USD', CAST(:amount AS bigint), CAST(:da AS bigint), CAST(:dr AS bigint),
            available, reserved, CAST(:counter_account AS text), CAST(:source_type AS text),
            CAST(:source_id AS text), CAST(:order_id AS text), CAST(:escrow_id AS text),
            CAST(:workflow_id AS text), CAST(:request_id AS text)
        FROM moved
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id, available_after, reserved_after
    ), shown AS (
        SELECT
            jsonb_build_object(
                'available', {_CENTS.format("available_after")}, 'reserved', {_CENTS.format("reserved_after")}
            ) AS after,
            jsonb_build_object(
                'available', {_CENTS.format("available_after - :da")},
                'reserved', {_CENTS.format("reserved_after - :dr")}
            ) AS before
        FROM entry
    ), event AS (
        INSERT INTO events (
            id, type, occurred_at, resource_type, resource_id, user_ids, actor_type, actor_id, request_id,
            correlation_id, payload
        )
        SELECT CAST(:event_id AS text), CAST(:event_type AS text), CAST(:event_at AS timestamptz), 'balance',
            CAST(:user_id AS text), ARRAY[CAST(:user_id AS text)], CAST(:actor_type AS text),
            CAST(:actor_id AS text), CAST(:request_id AS text), CAST(:correlation_id AS text),
            CAST(:event_payload AS jsonb) || after
        FROM shown
    ), audit AS (
        INSERT INTO audit_logs (
            id, occurred_at, action, resource_type, resource_id, user_id, actor_type, actor_id, result,
            payload_before, payload_after, error, request_id, correlation_id, created_at, updated_at
        )
        SELECT CAST(:audit_id AS text), CAST(:audit_at AS timestamptz), CAST(:action AS text), 'balance',
            CAST(:user_id AS text), CAST(:user_id AS text), CAST(:actor_type AS text), CAST(:actor_id AS text),
            'SUCCESS', before, CAST(:audit_after AS jsonb) || after, 'null'::jsonb, CAST(:request_id AS text),
            CAST(:correlation_id AS text), CAST(:audit_at AS timestamptz), CAST(:audit_at AS timestamptz)
        FROM shown
    )
    SELECT moved.available, moved.reserved, (SELECT id FROM entry) AS entry_id FROM moved
    """
)
# APPLY as asyncpg runs it ($1, $2, ... in the order of `_APPLY_PARAMETERS`)
_APPLY_COMPILED = APPLY.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
_APPLY_SQL = str(_APPLY_COMPILED)
_APPLY_PARAMETERS = tuple(_APPLY_COMPILED.positiontup or ())


async def apply_effect(session: AsyncSession, effect: LedgerEffect, *, actor: tuple[str, str | None]) -> LedgerResult:
    """Apply `effect` exactly once in the open transaction of `session`.

    One statement on the first application (APPLY). A retry, or a twin that committed first,
    finds the key taken: the update is undone in this same transaction and the recorded result
    is returned. A failure here fails the whole step, so nothing is ever half-applied.

    Twins under READ COMMITTED: both update the same balance row, so the second waits for the
    first's row lock until it commits or rolls back. After a commit, the second's update is
    re-checked on the new balance: if it is short, nothing is written and the recorded entry is
    read (the next statement's snapshot sees the commit); if it applies, the insert meets the
    committed key and does nothing, so no event or audit row either, and the update is taken back
    while the row lock is still held before the recorded entry is read.
    After a rollback the second applies as the first. A twin with other terms (another user)
    waits on the key itself, then is refused with LEDGER_KEY_CONFLICT."""
    effect = _chaos_bug(effect)
    delta_available, delta_reserved = effect.deltas()
    if session.autoflush and (session.new or session.dirty or session.deleted):
        await session.flush()  # as an ORM statement would: the entry may refer to a pending order
    row = await _apply(session, effect, _parameters(effect, delta_available, delta_reserved, actor))
    if row is None:
        # short, or short because this effect was applied already (a retry after its commit)
        twin = await _existing(session, effect)
        if twin is not None:
            return twin
        raise await _cannot_apply(session, effect)
    if row["entry_id"] is None:  # applied before: take this update back, answer with the recorded result
        await _move_balance(session, effect.user_id, -delta_available, -delta_reserved)
        twin = await _existing(session, effect)
        if twin is None:  # DO NOTHING only yields to a committed row: never expected, so retry the step
            raise ApplicationError(f"{effect.idempotency_key}: key taken but its entry is not visible")
        return twin
    return LedgerResult(int(row["entry_id"]), True, row["available"], row["reserved"])


async def _apply(session: AsyncSession, effect: LedgerEffect, parameters: dict[str, object]) -> asyncpg.Record | None:
    """APPLY's row, run on the asyncpg connection under the session's, in its transaction.

    On the driver itself (asyncpg's own prepared-statement cache, no SQLAlchemy execution
    machinery): 0.15-0.25 ms less Python per effect than through the session, of ~0.65 ms in
    all with the session and transaction around it (bench/ledger.py). If the session has not
    sent its BEGIN yet (the effect is its first statement), its connection sends it first, as
    SQLAlchemy does before any first statement (a private method of its asyncpg adapter;
    tests/activities/test_ledger.py holds it to committing and rolling back with the caller).
    A driver error is raised as SQLAlchemy raises it on its own paths (the worker's
    DATABASE_REFUSED rule reads it), except a taken exclusive key: LEDGER_KEY_CONFLICT."""
    connection = await (await session.connection()).get_raw_connection()
    driver: asyncpg.Connection = connection.driver_connection
    if not driver.is_in_transaction():
        await connection.dbapi_connection._start_transaction()  # type: ignore[union-attr]
        if not driver.is_in_transaction():  # an autocommit session: never write outside a transaction
            raise RuntimeError("apply_effect needs the caller's transaction")
    try:
        row: asyncpg.Record | None = await driver.fetchrow(_APPLY_SQL, *(parameters[p] for p in _APPLY_PARAMETERS))
    except DRIVER_ERRORS as exc:
        if isinstance(exc, asyncpg.UniqueViolationError) and exc.constraint_name == "uq_ledger_entries_exclusive_key":
            raise business_error(
                ErrorCode.LEDGER_KEY_CONFLICT,
                f"{effect.exclusive_key} is already taken by another effect",
                idempotency_key=effect.idempotency_key,
            ) from None
        raise as_sqlalchemy_error(_APPLY_SQL, exc) from exc
    return row


def _parameters(effect: LedgerEffect, da: int, dr: int, actor: tuple[str, str | None]) -> dict[str, object]:
    """APPLY's values: the entry's, and its event and audit entry as models.events.new_event and
    models.audit.audit_entry would build them (tests/activities/test_ledger.py compares the rows),
    less the balances, which the statement adds."""
    event_type = EVENT_OF[effect.entry_type]
    actor_type, actor_id = actor
    payload: dict[str, object] = {
        "user_id": effect.user_id,
        "amount": format_cents(effect.amount),
        "currency": "USD",
        "entry_type": effect.entry_type.value,
        "source_type": effect.source_type,
        "source_id": effect.source_id,
        "order_id": effect.order_id,
    }
    if event_type == "balance.released":
        payload["reason"] = effect.reason
    audit_after: dict[str, object] = {
        "entry_type": effect.entry_type.value,
        "idempotency_key": effect.idempotency_key,
    }
    if actor_type == "operator":
        audit_after["actor_claimed"] = True  # as audit_entry marks a Signal's claimed actor
    # the balances the statement adds are digits and a dot: redaction leaves them as they are
    return {
        "da": da,
        "dr": dr,
        "user_id": effect.user_id,
        "key": effect.idempotency_key,
        "exclusive_key": effect.exclusive_key,
        "entry_type": effect.entry_type.value,
        "amount": effect.amount,
        "counter_account": effect.counter_account,
        "source_type": effect.source_type,
        "source_id": effect.source_id,
        "order_id": effect.order_id,
        "escrow_id": effect.escrow_id,
        "workflow_id": effect.workflow_id,
        "request_id": effect.request_id,
        "event_id": new_id(IdPrefix.EVENT),
        "event_type": event_type,
        "event_at": event_moment(),
        "actor_type": actor_type,
        "actor_id": actor_id,
        "correlation_id": effect.correlation_id,
        "event_payload": json.dumps(payload),
        "audit_id": new_id(IdPrefix.AUDIT),
        "audit_at": utcnow(),
        "action": AUDIT_ACTION_OF[event_type],
        "audit_after": json.dumps(redact(audit_after)),
    }


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
