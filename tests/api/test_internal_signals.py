"""Signals the workflows send each other can also be sent by anyone with the Temporal UI:
a forged one changes nothing (the receiving workflow checks its state and the record)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from api.payload_codec import data_converter
from models.disputes_io import DisputeOutcome
from models.orders_io import Caller, MilestoneOutcome, MilestonePaid, MilestonePayment
from tests.api.orders_support import act
from tests.api.test_order_recovery import open_and_assign, three_milestone_order
from tests.support import Stack, assert_books_balanced, stack_settings


@pytest.fixture
async def temporal(stack: Stack) -> AsyncIterator[Client]:
    yield await Client.connect(stack.env["TEMPORAL_ADDRESS"], data_converter=data_converter(stack_settings(stack)))


async def running(temporal: Client, workflow_id: str) -> bool:
    return (await temporal.get_workflow_handle(workflow_id).describe()).status == WorkflowExecutionStatus.RUNNING


async def test_forged_milestone_signals_change_nothing(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], temporal: Client
) -> None:
    _, _, order = await three_milestone_order(client, stack, full_key)
    first = order["milestones"][0]["id"]
    milestone = temporal.get_workflow_handle(first)
    await milestone.signal("settled_by_order", MilestoneOutcome(milestone_id=first, status="RELEASED"))
    await milestone.signal("payment_done", MilestonePaid(milestone_id=first, status="RELEASED"))
    order_flow = temporal.get_workflow_handle(order["id"])
    await order_flow.signal("pay_milestone", MilestonePayment(milestone_id="ms_notofthisorder00000", caller=Caller()))
    await order_flow.signal("milestone_settled", MilestoneOutcome(milestone_id=first, status="RELEASED"))
    # still open and payable the normal way
    await act(client, full_key, order["id"], "milestones/a/complete")
    paid = await act(client, full_key, order["id"], "milestones/a/approve")
    assert paid["status"] == "RELEASED"
    assert await running(temporal, order["id"])
    await assert_books_balanced(stack)


async def test_a_forged_dispute_settlement_does_not_close_the_order(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], temporal: Client
) -> None:
    _, _, order = await three_milestone_order(client, stack, full_key)
    dispute = await open_and_assign(client, full_key, order["id"])
    await temporal.get_workflow_handle(order["id"]).signal(
        "dispute_settled", DisputeOutcome(dispute_id=dispute["id"], status="RESOLVED", decision="FULL_REFUND")
    )
    assert await running(temporal, order["id"])
    assert (await client.get(f"/orders/{order['id']}", headers=full_key)).json()["status"] == "DISPUTED"
    resolved = await client.post(
        f"/disputes/{dispute['id']}/resolve", json={"decision": "FULL_REFUND"}, headers=full_key
    )
    assert resolved.status_code == 200, resolved.text
    closed = (await client.get(f"/orders/{order['id']}", headers=full_key)).json()
    assert closed["status"] == "CLOSED" and closed["refunded_amount"] == "60.00"
    await assert_books_balanced(stack)
