"""A local activity can run again after it committed (its workflow task was lost, e.g.
refused as UnhandledCommand): the closing steps find their work done and answer it."""

from __future__ import annotations

import httpx
from temporalio.testing import ActivityEnvironment

from activities.context import WorkerContext
from activities.orders import OrderActivities
from models.orders_io import Caller, OrderStep
from tests.api.orders_support import act, funded_order
from tests.api.test_users import balance_of
from tests.support import Stack, assert_books_balanced, stack_settings

ESCROW_STEPS = ["reserve", "escrow", "escrow/fund"]


async def test_closing_steps_run_again_without_effect(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    _, seller, released = await funded_order(client, stack, full_key, "4.00", ESCROW_STEPS)
    await act(client, full_key, released["id"], "resolution/release", {"reason": "delivered"})
    buyer, _, refunded = await funded_order(client, stack, full_key, "6.00", ESCROW_STEPS)
    await act(client, full_key, refunded["id"], "resolution/refund", {"reason": "not delivered"})
    before = [await balance_of(client, full_key, user["id"]) for user in (seller, buyer)]

    ctx = WorkerContext.build(stack_settings(stack))
    try:
        orders, env = OrderActivities(ctx), ActivityEnvironment()
        again = Caller(actor_id="rerun")
        for activity, order in ((orders.released, released), (orders.refunded, refunded)):
            outcome = await env.run(activity, OrderStep(order_id=order["id"], caller=again, reason="RELEASED"))
            assert (outcome.order_id, outcome.status) == (order["id"], "CLOSED")
    finally:
        await ctx.close()

    assert [await balance_of(client, full_key, user["id"]) for user in (seller, buyer)] == before
    assert before[0]["available"] == "4.00" and before[1]["available"] == "6.00"
    await assert_books_balanced(stack)
