"""Orders through the SDK: a milestone order paid to the end, release, refund, cancel, lists."""

from __future__ import annotations

import secrets

from offerhub_sdk import AsyncOfferHub, ConflictError
from tests.sdk.support import sdk_user
from tests.support import Stack, assert_books_balanced


async def test_milestone_order_pays_each_milestone_then_closes(async_client: AsyncOfferHub, stack: Stack) -> None:
    client = async_client
    buyer = await sdk_user(client, stack, "120.00")
    seller = await sdk_user(client, stack)
    ref = f"SDK-{secrets.token_hex(4)}"
    order = await client.orders.create(
        buyer_id=buyer.id,
        seller_id=seller.id,
        amount="120.00",
        title="Logo design",
        description="Two concepts and a final file",
        client_order_ref=ref,
        milestones=[
            {"milestone_ref": "concepts", "title": "Two concepts", "amount": "60.00"},
            {"milestone_ref": "final", "title": "Final vector file", "amount": "60.00"},
        ],
        metadata={"category": "design"},
    )
    assert (order.status, order.amount, order.accepted) == ("ORDER_CREATED", "120.00", False)
    assert order.metadata == {"category": "design"}
    assert [m.milestone_ref for m in order.milestones] == ["concepts", "final"]

    order = await client.orders.reserve(order.id, amount="120.00")
    assert order.status == "FUNDS_RESERVED"
    order = await client.orders.create_escrow(order.id)
    order = await client.orders.wait(order.id, "ESCROW_FUNDING") if order.accepted else order
    assert order.escrow is not None and order.escrow.type == "MULTI_RELEASE"
    order = await client.orders.fund_escrow(order.id)
    order = await client.orders.wait(order.id, "IN_PROGRESS") if order.accepted else order
    assert order.status == "IN_PROGRESS" and order.escrow is not None and order.escrow.status == "FUNDED"

    milestones = await client.orders.milestones.list(order.id)
    assert (milestones.has_more, [m.position for m in milestones.data]) == (False, [0, 1])
    for milestone in milestones.data:
        done = await client.orders.milestones.complete(order.id, milestone.milestone_ref, note="uploaded")
        assert (done.status, done.completion_note) == ("COMPLETED", "uploaded")
        paid = await client.orders.milestones.approve(order.id, milestone.id)
        paid = await client.orders.milestones.wait(order.id, milestone.id) if paid.accepted else paid
        assert paid.status == "RELEASED"
        again = await client.orders.milestones.retrieve(order.id, milestone.milestone_ref)
        assert again.id == milestone.id and again.release_tx_hash is not None

    order = await client.orders.wait(order.id, "CLOSED", timeout=30)
    assert (order.close_reason, order.released_amount, order.amount_in_escrow) == ("RELEASED", "120.00", "0.00")
    assert (await client.users.balance(seller.id)).available == "120.00"
    listed = await client.orders.list(client_order_ref=ref)
    assert [o.id for o in listed.data] == [order.id]
    assert [o.id async for o in await client.orders.list(user_id=seller.id, status="CLOSED")] == [order.id]
    assert (await client.orders.retrieve(order.id)).closed_at is not None
    await assert_books_balanced(stack)


async def test_release_refund_and_cancel_settle_single_release_orders(
    async_client: AsyncOfferHub, stack: Stack
) -> None:
    client = async_client
    buyer = await sdk_user(client, stack, "60.00")
    seller = await sdk_user(client, stack)

    async def in_progress(amount: str) -> str:
        order = await client.orders.create(buyer_id=buyer.id, seller_id=seller.id, amount=amount, title="Copy")
        await client.orders.reserve(order.id)
        if (await client.orders.create_escrow(order.id)).accepted:
            await client.orders.wait(order.id, "ESCROW_FUNDING")
        if (await client.orders.fund_escrow(order.id)).accepted:
            await client.orders.wait(order.id, "IN_PROGRESS")
        return order.id

    released = await client.orders.release(await in_progress("20.00"), reason="delivered")
    released = await client.orders.wait(released.id, "CLOSED") if released.accepted else released
    assert (released.status, released.close_reason) == ("CLOSED", "RELEASED")

    refunded = await client.orders.refund(await in_progress("15.00"), reason="never delivered")
    refunded = await client.orders.wait(refunded.id, "CLOSED") if refunded.accepted else refunded
    assert (refunded.close_reason, refunded.refunded_amount) == ("REFUNDED", "15.00")

    order = await client.orders.create(buyer_id=buyer.id, seller_id=seller.id, amount="10.00", title="Translation")
    await client.orders.reserve(order.id)
    try:
        await client.orders.reserve(order.id)
    except ConflictError as exc:
        assert exc.code == "FUNDS_ALREADY_RESERVED" and exc.status == 409
    else:
        raise AssertionError("a second reserve was accepted")
    canceled = await client.orders.cancel(order.id, reason="changed my mind")
    assert (canceled.status, canceled.close_reason, canceled.cancel_reason) == ("CLOSED", "CANCELED", "changed my mind")

    balance = await client.users.balance(buyer.id)
    assert (balance.available, balance.reserved) == ("40.00", "0.00")  # 60 - 20 released (15 refunded, 10 returned)
    assert (await client.users.balance(seller.id)).available == "20.00"
    await assert_books_balanced(stack)
