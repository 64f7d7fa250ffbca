"""The ledger procedure under concurrency: keyed, conditional, exactly once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from temporalio.exceptions import ApplicationError

from activities.ledger import LedgerResult, apply_effect
from activities.records import compare_and_set
from models.ids import IdPrefix, new_id
from models.ledger import LedgerEffect
from models.tables import Balance, Order
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


async def test_two_hundred_concurrent_reserves_and_releases(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], engine: AsyncEngine
) -> None:
    buyer = await funded_buyer(client, stack, full_key, "100.00")
    seller = (await client.post("/users", json={"external_user_id": new_id(IdPrefix.USER)}, headers=full_key)).json()
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    rng = random.Random(7)
    orders = [(new_id(IdPrefix.ORDER), rng.choice([150, 250, 399])) for _ in range(100)]  # 2.66 x 100 > 100.00
    async with sessions() as session, session.begin():
        for order_id, amount in orders:
            session.add(
                Order(
                    id=order_id,
                    buyer_id=buyer,
                    seller_id=seller["id"],
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
                    await compare_and_set(
                        session,
                        Order,
                        order_id,
                        field="status",
                        expected=("FUNDS_RESERVED",),
                        target="CLOSED",
                        values={"close_reason": "CANCELED", "closed_at": utcnow()},
                    )
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
    buyer = await funded_buyer(client, stack, full_key, "5.00")
    seller = (await client.post("/users", json={"external_user_id": new_id(IdPrefix.USER)}, headers=full_key)).json()
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    order_id, other_order = new_id(IdPrefix.ORDER), new_id(IdPrefix.ORDER)
    async with sessions() as session, session.begin():
        for oid, amount in ((order_id, 300), (other_order, 201)):
            session.add(
                Order(
                    id=oid,
                    buyer_id=buyer,
                    seller_id=seller["id"],
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
