"""Disputes through the SDK: opened by the buyer, commented, assigned and settled by a split
with a support-scoped key; audit entries of the decision."""

from __future__ import annotations

from offerhub_sdk import AsyncOfferHub, ConflictError, PermissionDeniedError
from tests.sdk.conftest import new_key
from tests.sdk.support import sdk_user
from tests.support import Stack, assert_books_balanced


async def test_dispute_settled_by_split_pays_both_sides(async_client: AsyncOfferHub, stack: Stack) -> None:
    client = async_client
    buyer = await sdk_user(client, stack, "80.00")
    seller = await sdk_user(client, stack)
    order = await client.orders.create(buyer_id=buyer.id, seller_id=seller.id, amount="80.00", title="Website copy")
    await client.orders.reserve(order.id)
    if (await client.orders.create_escrow(order.id)).accepted:
        await client.orders.wait(order.id, "ESCROW_FUNDING")
    if (await client.orders.fund_escrow(order.id)).accepted:
        await client.orders.wait(order.id, "IN_PROGRESS")

    dispute = await client.orders.open_dispute(
        order.id,
        opened_by="BUYER",
        reason="QUALITY_ISSUE",
        description="Half of the pages",
        evidence=["https://files.example/e/1.png"],
    )
    assert (dispute.status, dispute.disputed_amount, dispute.evidence) == ("OPEN", "80.00", ["https://files.example/e/1.png"])
    assert (await client.orders.retrieve(order.id)).status == "DISPUTED"
    comment = await client.disputes.add_comment(
        dispute.id, author_type="SELLER", author_id=seller.id, message="Half is done", evidence=[]
    )
    internal = await client.disputes.add_comment(
        dispute.id, author_type="SUPPORT", author_id="agent-7", message="Checking", visibility="INTERNAL"
    )
    comments = await client.disputes.list_comments(dispute.id, limit=1)
    assert {c.id async for c in comments} == {comment.id, internal.id}

    async with AsyncOfferHub(api_key=new_key(stack, ["read", "write"]), base_url=stack.api_url) as backend:
        try:
            await backend.disputes.assign(dispute.id, assigned_to="agent-7")
        except PermissionDeniedError as exc:
            assert exc.code == "INSUFFICIENT_SCOPE" and exc.details["required_scope"] == "support"
        else:
            raise AssertionError("a key without support assigned a dispute")
        public = [c.id async for c in await backend.disputes.list_comments(dispute.id)]
        assert public == [comment.id]

    async with AsyncOfferHub(api_key=new_key(stack, ["read", "support"]), base_url=stack.api_url) as agent:
        dispute = await agent.disputes.assign(dispute.id, assigned_to="agent-7", note="priority")
        assert (dispute.status, dispute.assigned_to, dispute.assignment_note) == ("UNDER_REVIEW", "agent-7", "priority")
        dispute = await agent.disputes.resolve(
            dispute.id, decision="SPLIT", release_amount="50.00", refund_amount="30.00", note="half delivered"
        )
        dispute = await agent.disputes.wait(dispute.id) if dispute.accepted else dispute
        assert (dispute.status, dispute.resolution_decision, dispute.resolved_by) == ("RESOLVED", "SPLIT", "agent-7")
        try:
            await agent.disputes.resolve(dispute.id, decision="FULL_REFUND")
        except ConflictError as exc:
            assert exc.code == "INVALID_STATE"
        else:
            raise AssertionError("a resolved dispute was resolved again")
        audit = [e.action async for e in await agent.audit_logs.list(resource_type="dispute", resource_id=dispute.id)]
        assert "DISPUTE_RESOLVED" in audit

    order = await client.orders.wait(order.id, "CLOSED", timeout=30)
    assert (order.close_reason, order.released_amount, order.refunded_amount) == ("SPLIT", "50.00", "30.00")
    assert (await client.disputes.retrieve(dispute.id)).release_amount == "50.00"
    assert [d.id for d in (await client.disputes.list(order_id=order.id, status="RESOLVED")).data] == [dispute.id]
    assert (await client.users.balance(buyer.id)).available == "30.00"
    assert (await client.users.balance(seller.id)).available == "50.00"
    await assert_books_balanced(stack)
