"""Inputs and outputs of WithdrawalWorkflow and its activities (cents; api.md §9, domain.md §4.7).

No secret and no e-mail address travels here: the recipient of an Airtm payout is read
from the user's row inside the activity that creates the payout.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from models.money import format_cents
from models.orders_io import Caller
from models.search import attributes
from models.states import WITHDRAWAL, WithdrawalStatus

W = WithdrawalStatus
IN_FLIGHT = frozenset({W.WITHDRAWAL_COMMITTED, W.WITHDRAWAL_PENDING, W.WITHDRAWAL_PENDING_USER_ACTION})
# Airtm's recipient refusals (providers.md §4.1) as the `reason` of 422 AIRTM_USER_INVALID
# (domain.md §8); the spec names them "recipient problems" only, so the order of the three
# reasons follows the order of the codes (docs/decisions.md, "Withdrawals").
AIRTM_RECIPIENT_REASONS: dict[str, str] = {
    "415059": "USER_NOT_FOUND",
    "415060": "USER_INACTIVE",
    "415061": "USER_NOT_VERIFIED",
}


class WithdrawalInput(BaseModel):
    id: str
    user_id: str
    amount: int = Field(gt=0)
    destination_type: Literal["crypto", "bank", "airtm_balance"]
    destination_ref: str
    memo: str | None = None
    commit: bool = False
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    commit_ttl_seconds: int = Field(default=86400, gt=0)
    poll_interval_seconds: int = Field(default=300, gt=0)

    @property
    def rail(self) -> Literal["crypto", "airtm"]:
        return "crypto" if self.destination_type == "crypto" else "airtm"


def withdrawal_start_options(wd: WithdrawalInput) -> dict[str, Any]:
    """Search attributes and static summary of a WithdrawalWorkflow (the Temporal UI's view)."""
    return {
        "search_attributes": attributes("withdrawal", W.WITHDRAWAL_CREATED, [wd.user_id], wd.amount),
        "static_summary": f"Withdrawal {wd.id}: {format_cents(wd.amount)} USD {wd.user_id} -> "
        f"{wd.destination_type} {_shown_ref(wd)}",
    }


def _shown_ref(wd: WithdrawalInput) -> str:
    # Stellar keys are public; bank and Airtm references keep their last 4 characters (domain.md §6.4)
    return wd.destination_ref if wd.destination_type == "crypto" else "****" + wd.destination_ref[-4:]


class WithdrawalCreated(BaseModel):
    caller: Caller


class WithdrawalAction(BaseModel):
    """commit, refresh, cancel (cancel with its optional reason)."""

    caller: Caller
    reason: str | None = None


class WithdrawalOutcome(BaseModel):
    """What a withdrawal Update answers; the API reads the resource from PostgreSQL."""

    withdrawal_id: str
    status: str
    expires_at: str | None = None  # ISO 8601, while uncommitted


class CreateWithdrawal(BaseModel):
    withdrawal: WithdrawalInput
    caller: Caller


class DestinationCheck(BaseModel):
    withdrawal_id: str
    user_id: str
    destination: str
    memo: str | None = None


class DestinationChecked(BaseModel):
    ok: bool = True


class WithdrawalStep(BaseModel):
    """One recorded transition of a withdrawal (the activity knows from where it may start)."""

    withdrawal_id: str
    caller: Caller
    failure_code: str | None = None
    failure_reason: str | None = None
    canceled_by: Literal["api", "expiry"] | None = None


class PayoutRef(BaseModel):
    """The provider side of a withdrawal, for the provider activities."""

    withdrawal_id: str
    round: int = 1


class PayoutState(BaseModel):
    """What a provider read or call revealed: the state it maps to (None: no change) and its facts."""

    withdrawal_id: str
    target: str | None = None
    provider_status: str | None = None
    airtm_payout_id: str | None = None
    fee: int | None = None
    stellar_transaction_hash: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    action_required: str | None = None


class PayoutApplied(BaseModel):
    withdrawal_id: str
    caller: Caller
    state: PayoutState


def path_to(current: str, target: str) -> list[str]:
    """The transitions that take a withdrawal from `current` to what the provider reports.

    Direct when the machine allows it; through `WITHDRAWAL_PENDING` from `COMMITTED` (the
    commit was acknowledged and the payout moved on before we read it); empty when the news
    is stale, repeated or would move the machine backwards (ignored, domain.md §4.0)."""
    if current == target:
        return []
    if WITHDRAWAL.can_transition(current, target):
        return [target]
    if current == W.WITHDRAWAL_COMMITTED and WITHDRAWAL.can_transition(W.WITHDRAWAL_PENDING, target):
        return [W.WITHDRAWAL_PENDING, target]
    return []
