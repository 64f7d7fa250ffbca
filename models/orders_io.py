"""Inputs and outputs of OrderWorkflow, MilestoneWorkflow and their activities (cents)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from models.money import format_cents
from models.search import attributes


class Caller(BaseModel):
    """Who asked, for events and audit entries (never a secret)."""

    actor_type: str = "system"
    actor_id: str | None = None
    request_id: str | None = None
    idempotency_key: str | None = None

    @property
    def actor(self) -> tuple[str, str | None]:
        return self.actor_type, self.actor_id


class MilestoneInput(BaseModel):
    id: str
    milestone_ref: str
    position: int
    title: str
    amount: int = Field(gt=0)


class OrderInput(BaseModel):
    id: str
    buyer_id: str
    seller_id: str
    title: str
    description: str | None = None
    amount: int = Field(gt=0)
    client_order_ref: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    milestones: list[MilestoneInput] = Field(default_factory=list)


def order_start_options(order: OrderInput) -> dict[str, Any]:
    """How an OrderWorkflow starts (POST /orders, the benchmark): its search attributes and
    static summary, so an operator finds and reads it in the Temporal UI."""
    return {
        "search_attributes": attributes("order", "ORDER_CREATED", [order.buyer_id, order.seller_id], order.amount),
        "static_summary": f"Order {order.id}: {format_cents(order.amount)} USD {order.buyer_id} -> {order.seller_id}",
    }


class OrderCreated(BaseModel):
    caller: Caller


class Reserve(BaseModel):
    caller: Caller
    amount: int | None = None


class Cancel(BaseModel):
    caller: Caller
    reason: str | None = None


class EscrowAction(BaseModel):
    caller: Caller


class Settle(BaseModel):
    caller: Caller
    reason: str | None = None


class OrderOutcome(BaseModel):
    """What an order Update answers; the API reads the resource from PostgreSQL."""

    order_id: str
    status: str


class OrderStep(BaseModel):
    """An order-scoped activity input."""

    order_id: str
    caller: Caller
    reason: str | None = None
    amount: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    operation: str | None = None
    tx_hash: str | None = None


class EscrowPlan(BaseModel):
    """What the escrow activities need: IDs and wallets (by reference), never keys."""

    order_id: str
    escrow_id: str
    contract_id: str | None = None
    escrow_type: str
    amount: int
    buyer_id: str
    seller_id: str
    round: int = 1  # the round of the chain step it is given to (models/operation_keys.py)


class ChainDone(BaseModel):
    operation_key: str
    tx_hash: str
    contract_id: str | None = None
    escrow_id: str | None = None  # the escrow the step acted on (absent in results recorded earlier)


class MilestoneInputs(BaseModel):
    milestone: MilestoneInput
    order_id: str
    buyer_id: str
    seller_id: str
    escrow_id: str
    contract_id: str
    order_status: str = "IN_PROGRESS"


class MilestoneAction(BaseModel):
    caller: Caller
    note: str | None = None


class MilestoneOutcome(BaseModel):
    milestone_id: str
    status: str


class MilestonePayment(BaseModel):
    """Milestone -> order: the buyer approved; the order pays it under its own lock, so a
    release, a refund or a dispute of the order never overlaps a milestone payment."""

    milestone_id: str
    caller: Caller


class MilestonePaid(BaseModel):
    """Order -> milestone: the payment's outcome (status as it now stands, or the refusal)."""

    milestone_id: str
    status: str
    error_code: str | None = None
    error_message: str | None = None
    error_details: dict[str, Any] = Field(default_factory=dict)


class MilestoneStep(BaseModel):
    milestone_id: str
    order_id: str
    caller: Caller
    note: str | None = None
    tx_hash: str | None = None
    reason: str | None = None


class OrderStatusNote(BaseModel):
    """Parent -> child: the order's status changed (milestone validators read it)."""

    status: str


class CreateOrder(BaseModel):
    order: OrderInput
    caller: Caller


class EscrowCallInput(BaseModel):
    """One Trustless Work step of an order (provider activity input)."""

    order_id: str
    escrow_id: str
    contract_id: str
    escrow_type: str
    kind: str  # complete | approve | release | dispute | resolve
    milestone_id: str | None = None
    milestone_index: int | None = None
    note: str = ""
    to_seller: int = 0  # resolve distributions, cents
    to_buyer: int = 0
    disputer: str = "buyer"  # buyer | seller
    round: int = 1  # 2, 3, ... when the action is retried after it failed for good
    # the order's parties, so the step need not read the order (absent in inputs recorded earlier)
    buyer_id: str | None = None
    seller_id: str | None = None


class EscrowCalls(BaseModel):
    """Trustless Work steps that always go together (complete, approve, release; dispute,
    resolve), run in order by one provider activity, each under its own operation key, so a
    retried activity skips the steps that already landed."""

    calls: list[EscrowCallInput] = Field(min_length=1)
