"""The ledger procedure under concurrency: keyed, conditional, exactly once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlmodel import col
from temporalio.exceptions import ApplicationError

from activities.database_refusals import refused_by_database
from activities.ledger import LedgerResult, apply_effect
from activities.records import compare_and_set
from models.audit import audit_entry
from models.events import new_event
from models.ids import IdPrefix, new_id
from models.ledger import AUDIT_ACTION_OF, EVENT_OF, EscrowAccount, LedgerEffect
from models.money import format_cents
from models.sqlstate import sqlstate
from models.tables import AuditLog, Balance, Event, LedgerEntry, Order
from models.timefmt import utcnow
from tests.api.test_users import balance_of, faucet
from tests.support import Stack, assert_books_balanced, assert_eventually, crypto_user


@pytest.fixture
async def engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(stack.database_url, pool_size=20, max_overflow=20)
    yield created
    await created.dispose()


async def funded_buyer(client: httpx.AsyncClient, stack: Stack, headers: dict[str, str], amount: str) -> str:
    user = await crypto_user(client, headers)
    await faucet(stack, user["wallet"]["public_key"], amount)

    async def credited() -> bool:
        return bool((await balance_of(client, headers, user["id"]))["available"] == amount)

    await assert_eventually(credited, timeout=10)
    return str(user["id"])


async def buyer_and_seller(
    client: httpx.AsyncClient, stack: Stack, headers: dict[str, str], amount: str
) -> tuple[str, str]:
    """A buyer funded with `amount` and a seller: their user IDs."""
    buyer = await funded_buyer(client, stack, headers, amount)
    seller = (await client.post("/users", json={"external_user_id": new_id(IdPrefix.USER)}, headers=headers)).json()
    return buyer, str(seller["id"])


async def cancel_reserved(session: AsyncSession, order_id: str) -> None:
    """The transition a reservation's release goes with: FUNDS_RESERVED -> CLOSED (canceled)."""
    await compare_and_set(
        session,
        Order,
        order_id,
        field="status",
        expected=("FUNDS_RESERVED",),
        target="CLOSED",
        values={"close_reason": "CANCELED", "closed_at": utcnow()},
    )


async def test_two_hundred_concurrent_reserves_and_releases(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], engine: AsyncEngine
) -> None:
    buyer, seller_id = await buyer_and_seller(client, stack, full_key, "100.00")
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    rng = random.Random(7)
    orders = [(new_id(IdPrefix.ORDER), rng.choice([150, 250, 399])) for _ in range(100)]  # 2.66 x 100 > 100.00
    async with sessions() as session, session.begin():
        for order_id, amount in orders:
            session.add(
                Order(
                    id=order_id,
                    buyer_id=buyer,
                    seller_id=seller_id,
                    title="t",
                    amount=amount,
                    status="ORDER_CREATED",
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
    outcomes = {"reserved": 0, "insufficient": 0, "released": 0}

    async def reserve(order_id: str, amount: int) -> None:
        try:
            async with sessions() as session, session.begin():
                await compare_and_set(
                    session, Order, order_id, field="status", expected=("ORDER_CREATED",), target="FUNDS_RESERVED"
                )
                await apply_effect(
                    session,
                    LedgerEffect.order_reserve(order_id=order_id, buyer_id=buyer, amount=amount, workflow_id=order_id),
                    actor=("system", order_id),
                )
            outcomes["reserved"] += 1
        except ApplicationError as exc:
            assert exc.type == "INSUFFICIENT_FUNDS", exc
            outcomes["insufficient"] += 1

    async def release(order_id: str, amount: int) -> None:
        for _ in range(200):  # its reserve may not have run yet
            async with sessions() as session, session.begin():
                order = await session.get(Order, order_id, with_for_update=True)
                assert order is not None
                if order.status == "FUNDS_RESERVED":
                    await cancel_reserved(session, order_id)
                    await apply_effect(
                        session,
                        LedgerEffect.order_reserve_release(
                            order_id=order_id, buyer_id=buyer, amount=amount, workflow_id=order_id
                        ),
                        actor=("system", order_id),
                    )
                    outcomes["released"] += 1
                    return
            await asyncio.sleep(0.005)

    operations = [reserve(o, a) for o, a in orders] + [release(o, a) for o, a in orders[::2]]
    rng.shuffle(operations)
    await asyncio.gather(*operations[:200])
    await asyncio.gather(*operations[200:])
    assert outcomes["reserved"] + outcomes["insufficient"] == 100
    async with sessions() as session:
        balance = await session.get(Balance, (buyer, "USD"))
    assert balance is not None and balance.available >= 0 and balance.reserved >= 0
    assert balance.available + balance.reserved == 10_000
    await assert_books_balanced(stack)


async def test_a_retried_effect_applies_once_and_conflicting_terms_are_refused(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], engine: AsyncEngine
) -> None:
    buyer, seller_id = await buyer_and_seller(client, stack, full_key, "5.00")
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    order_id, other_order = new_id(IdPrefix.ORDER), new_id(IdPrefix.ORDER)
    async with sessions() as session, session.begin():
        for oid, amount in ((order_id, 300), (other_order, 201)):
            session.add(
                Order(
                    id=oid,
                    buyer_id=buyer,
                    seller_id=seller_id,
                    title="t",
                    amount=amount,
                    status="FUNDS_RESERVED" if oid == order_id else "ORDER_CREATED",
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
    effect = LedgerEffect.order_reserve(order_id=order_id, buyer_id=buyer, amount=300, workflow_id=order_id)

    async def apply(candidate: LedgerEffect) -> LedgerResult:
        async with sessions() as session, session.begin():
            return await apply_effect(session, candidate, actor=("system", order_id))

    results = await asyncio.gather(*[apply(effect) for _ in range(10)])
    assert [r.applied for r in results].count(True) == 1
    with pytest.raises(ApplicationError) as conflict:
        await apply(effect.model_copy(update={"amount": 301}))
    assert conflict.value.type == "LEDGER_KEY_CONFLICT"
    with pytest.raises(ApplicationError) as short:
        await apply(LedgerEffect.order_reserve(order_id=other_order, buyer_id=buyer, amount=201, workflow_id="x"))
    assert short.value.type == "INSUFFICIENT_FUNDS" and short.value.non_retryable
    async with sessions() as session:
        balance = await session.get(Balance, (buyer, "USD"))
    assert balance is not None and (balance.available, balance.reserved) == (200, 300)
    await assert_books_balanced(stack)


async def new_orders(
    sessions: async_sessionmaker[AsyncSession], buyer: str, seller: str, *amounts: int, status: str
) -> list[str]:
    ids = [new_id(IdPrefix.ORDER) for _ in amounts]
    async with sessions() as session, session.begin():
        for order_id, amount in zip(ids, amounts, strict=True):
            session.add(
                Order(
                    id=order_id,
                    buyer_id=buyer,
                    seller_id=seller,
                    title="t",
                    amount=amount,
                    status=status,
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
    return ids


def orm_rows(effect: LedgerEffect, result: LedgerResult, actor: tuple[str, str | None]) -> list[Event | AuditLog]:
    """The event and audit entry of an effect as the ORM procedure built them before the effect
    became one statement (its `_record`, verbatim): what the statement must still write."""
    available, reserved = result.available_after, result.reserved_after
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
    da, dr = effect.deltas()
    return [
        new_event(
            type=event_type,
            resource=("balance", effect.user_id),
            user_ids=[effect.user_id],
            actor=actor,
            correlation_id=effect.correlation_id,
            payload=payload,
            request_id=effect.request_id,
        ),
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
        ),
    ]


# a row as its columns say, less its ID and clock readings; JSON null and SQL NULL told apart
# (`seq` and `relayed_at` are the sequencer's and the relay's: the test waits for them below)
EVENT_ROW = "SELECT to_jsonb(e) - 'id' - 'occurred_at' - 'seq' - 'relayed_at' AS row FROM events e WHERE id = :id"
AUDIT_ROW = """
    SELECT to_jsonb(a) - 'id' - 'occurred_at' - 'created_at' - 'updated_at'
        || jsonb_build_object('error_is_null', error IS NULL, 'before_is_null', payload_before IS NULL,
                              'one_clock', occurred_at = created_at AND created_at = updated_at) AS row
    FROM audit_logs a WHERE id = :id"""


async def effect_rows(session: AsyncSession, effect: LedgerEffect) -> tuple[str, str]:
    """IDs of the event and audit entry `effect` wrote (exactly one of each)."""
    events = (
        await session.execute(
            text("SELECT id FROM events WHERE resource_id = :u AND payload->>'source_id' = :s AND type = :t"),
            {"u": effect.user_id, "s": effect.source_id, "t": EVENT_OF[effect.entry_type]},
        )
    ).scalars()
    audits = (
        await session.execute(
            text("SELECT id FROM audit_logs WHERE resource_id = :u AND payload_after->>'idempotency_key' = :k"),
            {"u": effect.user_id, "k": effect.idempotency_key},
        )
    ).scalars()
    (event_id,), (audit_id,) = list(events), list(audits)
    return event_id, audit_id


async def test_an_effect_writes_the_rows_the_orm_procedure_wrote_and_its_event_is_relayed(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], engine: AsyncEngine
) -> None:
    buyer, seller_id = await buyer_and_seller(client, stack, full_key, "5.00")
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    (order_id,) = await new_orders(sessions, buyer, seller_id, 250, status="FUNDS_RESERVED")
    reserve = LedgerEffect.order_reserve(
        order_id=order_id, buyer_id=buyer, amount=250, workflow_id=order_id, request_id="req_ledger_rows"
    )
    release = LedgerEffect.order_reserve_release(order_id=order_id, buyer_id=buyer, amount=250, workflow_id=order_id)
    # the first effect opens its transaction; the second follows the caller's transition, by a
    # claimed operator (the audit entry marks it so)
    steps = [(reserve, ("system", order_id)), (release, ("operator", "ops-on-call"))]
    for effect, actor in steps:
        async with sessions() as session, session.begin():
            if effect is release:
                await cancel_reserved(session, order_id)
            result = await apply_effect(session, effect, actor=actor)
        assert result.applied
        async with sessions() as session:  # read, then the reference rows, all rolled back
            key = col(LedgerEntry.idempotency_key)
            entry = (await session.execute(select(LedgerEntry).where(key == effect.idempotency_key))).scalar_one()
            da, dr = effect.deltas()
            assert entry.model_dump(exclude={"id", "created_at"}) == {
                **effect.model_dump(include=set(LedgerEntry.model_fields) - {"id", "created_at"}),
                "entry_type": effect.entry_type.value,
                "currency": "USD",
                "delta_available": da,
                "delta_reserved": dr,
                "available_after": result.available_after,
                "reserved_after": result.reserved_after,
            }
            assert entry.id == result.entry_id
            event_id, audit_id = await effect_rows(session, effect)
            reference = orm_rows(effect, result, actor)
            session.add_all(reference)
            await session.flush()  # the ORM procedure's rows, never committed
            for query, ours, theirs in ((EVENT_ROW, event_id, reference[0].id), (AUDIT_ROW, audit_id, reference[1].id)):
                rows = [(await session.execute(text(query), {"id": i})).scalar_one() for i in (ours, theirs)]
                assert rows[0] == rows[1], query
            await session.rollback()
    async with sessions() as session:
        balance = await session.get(Balance, (buyer, "USD"))
    assert balance is not None and (balance.available, balance.reserved) == (500, 0)

    async def relayed() -> bool:
        async with sessions() as session:
            pending = await session.scalar(
                text("SELECT count(*) FROM events WHERE correlation_id = :o AND (seq IS NULL OR relayed_at IS NULL)"),
                {"o": order_id},
            )
        return bool(pending == 0)

    await assert_eventually(relayed, timeout=30, message="the effects' events were not numbered and relayed")
    await assert_books_balanced(stack)


async def test_an_effect_commits_and_rolls_back_with_the_callers_transaction(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], engine: AsyncEngine
) -> None:
    buyer, seller_id = await buyer_and_seller(client, stack, full_key, "5.00")
    sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)  # as the worker's
    (order_id,) = await new_orders(sessions, buyer, seller_id, 300, status="ORDER_CREATED")
    effect = LedgerEffect.order_reserve(order_id=order_id, buyer_id=buyer, amount=300, workflow_id=order_id)

    class Abandoned(Exception):
        pass

    for transition_first in (False, True):  # the effect opens the transaction, or follows a statement
        with pytest.raises(Abandoned):
            async with sessions() as session, session.begin():
                if transition_first:
                    await compare_and_set(
                        session, Order, order_id, field="status", expected=("ORDER_CREATED",), target="FUNDS_RESERVED"
                    )
                assert (await apply_effect(session, effect, actor=("system", order_id))).applied
                raise Abandoned
        async with sessions() as session:
            traces = await session.scalar(
                text(
                    "SELECT (SELECT count(*) FROM ledger_entries WHERE order_id = :o)"
                    " + (SELECT count(*) FROM events WHERE correlation_id = :o)"
                    " + (SELECT count(*) FROM audit_logs WHERE correlation_id = :o)"
                ),
                {"o": order_id},
            )
            balance = await session.get(Balance, (buyer, "USD"))
        assert traces == 0 and balance is not None and (balance.available, balance.reserved) == (500, 0)
    async with sessions() as session, session.begin():
        await compare_and_set(
            session, Order, order_id, field="status", expected=("ORDER_CREATED",), target="FUNDS_RESERVED"
        )
        assert (await apply_effect(session, effect, actor=("system", order_id))).applied
    async with sessions() as session:
        balance = await session.get(Balance, (buyer, "USD"))
    assert balance is not None and (balance.available, balance.reserved) == (200, 300)
    await assert_books_balanced(stack)


async def test_retries_answer_from_the_record_and_refusals_keep_their_errors(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], engine: AsyncEngine
) -> None:
    buyer, seller_id = await buyer_and_seller(client, stack, full_key, "5.00")
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    first, second, third = await new_orders(sessions, buyer, seller_id, 200, 300, 100, status="FUNDS_RESERVED")

    def reserve(order_id: str, amount: int) -> LedgerEffect:
        return LedgerEffect.order_reserve(order_id=order_id, buyer_id=buyer, amount=amount, workflow_id=order_id)

    async def apply(effect: LedgerEffect) -> LedgerResult:
        async with sessions() as session, session.begin():
            return await apply_effect(session, effect, actor=("system", "test"))

    applied = [await apply(reserve(first, 200)), await apply(reserve(second, 300))]
    assert [r.applied for r in applied] == [True, True] and applied[1].available_after == 0
    # a retry that finds the balance short (its own reservation took it): the recorded result
    assert await apply(reserve(second, 300)) == LedgerResult(applied[1].entry_id, False, 0, 500)
    # the first order released; a second release under another key takes the same exclusive key
    async with sessions() as session, session.begin():
        closed = {"close_reason": "CANCELED", "closed_at": utcnow()}
        await compare_and_set(
            session, Order, first, field="status", expected=("FUNDS_RESERVED",), target="CLOSED", values=closed
        )
        release = LedgerEffect.order_reserve_release(order_id=first, buyer_id=buyer, amount=200, workflow_id=first)
        assert (await apply_effect(session, release, actor=("system", "test"))).applied
    with pytest.raises(ApplicationError) as taken:
        await apply(release.model_copy(update={"idempotency_key": f"order:{first}:cancel_reservation:again"}))
    assert taken.value.type == "LEDGER_KEY_CONFLICT" and taken.value.non_retryable
    # a retry the balance could afford again: its update is taken back, the recorded result
    assert await apply(reserve(first, 200)) == replace(applied[0], applied=False)
    # twins on a balance that affords them all: one applies, the others wait for its commit,
    # then take their update back and answer with its entry
    twins = await asyncio.gather(*[apply(reserve(third, 100)) for _ in range(8)])
    assert [t.applied for t in twins].count(True) == 1 and len({t.entry_id for t in twins}) == 1
    async with sessions() as session:
        for effect in (reserve(first, 200), reserve(second, 300), reserve(third, 100), release):
            await effect_rows(session, effect)  # one event and one audit entry each
    # what PostgreSQL refuses reaches the worker as SQLAlchemy raises it: DATABASE_REFUSED there
    missing_escrow = EscrowAccount(order_id=first, escrow_id=new_id(IdPrefix.ESCROW))
    with pytest.raises(IntegrityError) as no_escrow:  # a credit to an escrow that does not exist
        await apply(LedgerEffect.order_refund(missing_escrow, buyer_id=buyer, amount=100))
    with pytest.raises(DataError) as nul:  # a NUL in text
        await apply(reserve(first, 1).model_copy(update={"idempotency_key": f"order:{first}:a", "request_id": "\x00"}))
    assert refused_by_database(no_escrow.value) and refused_by_database(nul.value)
    assert sqlstate(no_escrow.value) == "23503" and sqlstate(nul.value) is not None
    stranger, elsewhere = new_id(IdPrefix.USER), new_id(IdPrefix.ORDER)
    with pytest.raises(ApplicationError) as unknown:
        await apply(LedgerEffect.order_reserve(order_id=elsewhere, buyer_id=stranger, amount=1, workflow_id="x"))
    assert unknown.value.type == "USER_NOT_FOUND"
    async with sessions() as session:
        balance = await session.get(Balance, (buyer, "USD"))
    assert balance is not None and (balance.available, balance.reserved) == (100, 400)
    await assert_books_balanced(stack)
