"""Inputs and outputs of the Airtm side of TopUpWorkflow and its activities (cents).

The crypto side keeps `TopUpInput` / `TopUpResult` (models/workflow_io.py): `TopUpStart`
extends that input, so a crypto deposit starts the same workflow with the two fields it
always had, and the recorded crypto histories decode unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from models.money import format_cents
from models.orders_io import Caller
from models.search import attributes
from models.states import TopupStatus
from models.workflow_io import TopUpInput


class TopUpStart(TopUpInput):
    """The workflow's input. Airtm top-ups carry their terms; crypto ones only the two base fields."""

    user_id: str | None = None
    amount: int | None = Field(default=None, gt=0)
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    return_url: str | None = None
    cancel_url: str | None = None
    resume: TopUpState | None = None  # set by continue-as-new: where the previous run stopped


class TopUpState(BaseModel):
    """What the workflow knows of its top-up (all of it, so continue-as-new is one line)."""

    status: str
    payin_id: str | None = None
    expires_at: datetime | None = None
    poll_interval_seconds: float = 300.0


def topup_start_options(topup: TopUpStart) -> dict[str, Any]:
    """How an Airtm TopUpWorkflow starts: search attributes and static summary (Temporal UI)."""
    assert topup.user_id is not None and topup.amount is not None
    return {
        "search_attributes": attributes("topup", TopupStatus.TOPUP_CREATED, [topup.user_id], topup.amount),
        "static_summary": f"Top-up {topup.topup_id}: {format_cents(topup.amount)} USD to {topup.user_id} via Airtm",
    }


# Updates -------------------------------------------------------------------------------------


class TopUpCreated(BaseModel):
    caller: Caller


class TopUpRefresh(BaseModel):
    caller: Caller
    source: str = "refresh"  # refresh | callback (only shown to operators)


class TopUpCancel(BaseModel):
    caller: Caller
    reason: str | None = None


class TopUpOutcome(BaseModel):
    """What an Update (and the record steps) answer; the API reads the resource from PostgreSQL."""

    topup_id: str
    status: str
    credited: bool = False
    expires_at: datetime | None = None
    poll_interval_seconds: float | None = None  # the worker's TOPUP_POLL_INTERVAL_SECONDS (record step)


# activities ----------------------------------------------------------------------------------


class TopUpRecord(BaseModel):
    """`topup_create`: record the top-up as TOPUP_CREATED (idempotent on its ID)."""

    topup: TopUpStart
    caller: Caller


class PayinRef(BaseModel):
    """Which pay-in a provider step reads, creates or cancels (created with code = topup_id)."""

    topup_id: str
    payin_id: str | None = None


class PayinSnapshot(BaseModel):
    """A pay-in as Airtm returned it, with the top-up state its status maps to (providers.md §4.5)."""

    payin_id: str
    status: str  # Airtm's, upper-cased
    state: str | None  # the top-up state it maps to; None: unknown status (no transition, alert)
    amount: int  # cents Airtm says the pay-in is for (credited on success)
    failure_reason: str | None = None
    payer_airtm_user_id: str | None = None
    confirmation_uri: str | None = None  # our checkout page for the user


class TopUpMove(BaseModel):
    """`topup_apply`: move the top-up to what the pay-in says (or to a state the workflow decided)."""

    topup_id: str
    caller: Caller
    payin: PayinSnapshot | None = None
    target: str | None = None  # None: the pay-in's state
    failure_code: str | None = None
    failure_reason: str | None = None
    canceled_by: str | None = None  # api | expiry | provider (topup.canceled)


TopUpStart.model_rebuild()
