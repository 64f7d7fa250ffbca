"""One order per client_order_ref, however many creates race for it (api.md §7.1)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.services import Services
from models.ids import IdPrefix, new_id
from models.orders_io import Caller, OrderCreated, OrderInput, OrderOutcome
from tests.api.test_envelope import assert_error
from tests.api.test_idempotency import pg_dsn
from tests.support import Stack, assert_books_balanced, assert_eventually, stack_settings


@pytest.fixture
async def temporal(stack: Stack) -> AsyncIterator[Client]:
    services = Services.build(stack_settings(stack))
    try:
        yield await services.temporal()
    finally:
        await services.close()


async def two_users(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, str]:
    ids = []
    for _ in range(2):
        created = await client.post("/users", json={"external_user_id": f"ext-{secrets.token_hex(6)}"}, headers=headers)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    return ids[0], ids[1]


async def db_rows(stack: Stack, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def workflow_status(temporal: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    """None when no workflow was ever started under this ID."""
    try:
        description = await temporal.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return description.status


async def test_concurrent_creates_with_one_ref_make_one_order_and_all_answer(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], temporal: Client
) -> None:
    buyer, seller = await two_users(client, full_key)
    ref = f"race-{uuid.uuid4()}"
    body = {"buyer_id": buyer, "seller_id": seller, "amount": "40.00", "title": "Logo", "client_order_ref": ref}
    other = {**body, "amount": "41.00"}
    keys = [str(uuid.uuid4()) for _ in range(7)]
    requests = [body] * 6 + [other]
    responses = await asyncio.wait_for(
        asyncio.gather(
            *[
                client.post("/orders", json=sent, headers={**full_key, "Idempotency-Key": key})
                for sent, key in zip(requests, keys, strict=True)
            ]
        ),
        timeout=25,
    )
    winners = [r for r in responses if r.status_code == 201]
    assert len(winners) == 1, [(r.status_code, r.text) for r in responses]
    order = winners[0].json()
    winning_body = body if order["amount"] == "40.00" else other
    for sent, response in zip(requests, responses, strict=True):
        if response is winners[0]:
            continue
        if sent == winning_body:  # same terms: the existing order
            assert response.status_code == 200, response.text
            assert response.json()["id"] == order["id"]
        else:
            error = assert_error(response, 409, "ORDER_ALREADY_EXISTS")
            assert error["details"]["order_id"] == order["id"]
    assert [r["id"] for r in await db_rows(stack, "SELECT id FROM orders WHERE client_order_ref = $1", ref)] == [
        order["id"]
    ]
    # the losers' allocated IDs never became workflows: nothing runs on for them
    allocated = await db_rows(stack, "SELECT resource_id FROM idempotency_keys WHERE key = ANY($1::text[])", keys)
    losers = {r["resource_id"] for r in allocated} - {order["id"]}
    assert len(losers) == 6
    for loser in losers:
        assert await workflow_status(temporal, loser) is None
    await assert_books_balanced(stack)


async def test_a_workflow_that_finds_its_ref_taken_is_refused_at_once(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], temporal: Client
) -> None:
    """The backstop: a ref claimed outside the API's lock makes `order_create` fail for good
    (ORDER_ALREADY_EXISTS naming the holder), never a unique violation retried forever."""
    buyer, seller = await two_users(client, full_key)
    ref = f"taken-{uuid.uuid4()}"
    body = {"buyer_id": buyer, "seller_id": seller, "amount": "10.00", "title": "Logo", "client_order_ref": ref}
    first = await client.post("/orders", json=body, headers=full_key)
    assert first.status_code == 201, first.text
    twin = OrderInput(
        id=new_id(IdPrefix.ORDER), buyer_id=buyer, seller_id=seller, title="Logo", amount=1000, client_order_ref=ref
    )
    handle = await temporal.start_workflow(
        "OrderWorkflow",
        twin,
        id=twin.id,
        task_queue=stack.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )
    try:
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await asyncio.wait_for(
                handle.execute_update("created", OrderCreated(caller=Caller()), result_type=OrderOutcome), timeout=15
            )
        cause: BaseException | None = failed.value.cause
        if isinstance(cause, ActivityError):
            cause = cause.cause
        assert isinstance(cause, ApplicationError) and cause.type == "ORDER_ALREADY_EXISTS"
        assert cause.details[0] == {"order_id": first.json()["id"]}
    finally:
        if await workflow_status(temporal, twin.id) == WorkflowExecutionStatus.RUNNING:
            # completing here needs OrderWorkflow.created to end the run when order_create is refused
            await handle.terminate("test cleanup: creation refused")
    assert await db_rows(stack, "SELECT id FROM orders WHERE id = $1", twin.id) == []


async def test_a_workflow_whose_creation_was_refused_completes(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str], temporal: Client
) -> None:
    buyer, seller = await two_users(client, full_key)
    ref = f"taken-{uuid.uuid4()}"
    body = {"buyer_id": buyer, "seller_id": seller, "amount": "10.00", "title": "Logo", "client_order_ref": ref}
    assert (await client.post("/orders", json=body, headers=full_key)).status_code == 201
    twin = OrderInput(
        id=new_id(IdPrefix.ORDER), buyer_id=buyer, seller_id=seller, title="Logo", amount=1000, client_order_ref=ref
    )
    handle = await temporal.start_workflow("OrderWorkflow", twin, id=twin.id, task_queue=stack.task_queue)
    try:
        with pytest.raises(WorkflowUpdateFailedError):
            await asyncio.wait_for(
                handle.execute_update("created", OrderCreated(caller=Caller()), result_type=OrderOutcome), timeout=15
            )

        async def ended() -> bool:
            return await workflow_status(temporal, twin.id) != WorkflowExecutionStatus.RUNNING

        await assert_eventually(ended, timeout=10, message="the refused workflow is still running")
    finally:
        if await workflow_status(temporal, twin.id) == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("test cleanup: creation refused")
