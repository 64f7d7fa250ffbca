"""Inputs and outputs of DisputeWorkflow and its activities (amounts in cents)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from models.orders_io import Caller, EscrowPlan, MilestoneInput


class OpenDispute(BaseModel):
    caller: Caller
    dispute_id: str
    opened_by: str
    reason: str
    description: str | None = None
    evidence: list[str] = Field(default_factory=list)


class DisputeInput(BaseModel):
    dispute_id: str
    order_id: str
    buyer_id: str
    seller_id: str
    opened_by: str
    disputed_amount: int
    plan: EscrowPlan
    milestones: list[MilestoneInput] = Field(default_factory=list)  # unpaid, by position
    first_round: int = 1  # chain rounds before it belong to the order's own release/refund attempts


class AssignDispute(BaseModel):
    caller: Caller
    assigned_to: str
    note: str | None = None


class ResolveDispute(BaseModel):
    caller: Caller
    decision: str
    release_amount: int | None = None
    refund_amount: int | None = None
    note: str | None = None
    resolved_by: str | None = None


class AddComment(BaseModel):
    caller: Caller
    comment_id: str
    author_type: str
    author_id: str | None = None
    message: str
    evidence: list[str] = Field(default_factory=list)
    visibility: str = "PUBLIC"


class DisputeOutcome(BaseModel):
    dispute_id: str
    status: str
    decision: str | None = None


class DisputeStep(BaseModel):
    dispute_id: str
    caller: Caller
    assigned_to: str | None = None
    note: str | None = None
    decision: str | None = None
    release_amount: int = 0
    refund_amount: int = 0
    resolved_by: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    comment: AddComment | None = None
    rejected: dict[str, Any] | None = None
    milestone_id: str | None = None  # dispute_milestone_settled: the milestone whose share landed
    tx_hash: str | None = None
