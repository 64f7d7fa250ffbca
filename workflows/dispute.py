"""DisputeWorkflow (child of the order, id = dsp_…): OPEN -> UNDER_REVIEW -> RESOLVED.

Support staff decide through the API (Updates `assign`, `resolve`) or from the Temporal UI
(Signals `assign`, `resolve` with the API's JSON payload plus `actor`). Both paths share
one validation and one settlement; a refused Signal changes no money and is audited.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.disputes import shares, spread
    from models.disputes_io import (
        AddComment,
        AssignDispute,
        DisputeInput,
        DisputeOutcome,
        DisputeStep,
        ResolveDispute,
    )
    from models.errors import ErrorCode, OfferhubError
    from models.hostile_input import UNSTORABLE, has_control, printable
    from models.money import AmountFormatError, format_cents, parse_amount
    from models.orders_io import Caller, EscrowCallInput
    from models.states import DISPUTE, DisputeStatus
    from workflows.common import business_cause, db_step, provider_step, refusal, require, set_status


@workflow.defn(name="DisputeWorkflow")
class DisputeWorkflow:
    @workflow.init
    def __init__(self, dispute: DisputeInput) -> None:
        self.dispute = dispute
        self.status: str = DisputeStatus.OPEN
        self.assigned_to: str | None = None
        self.settling = False
        self.lock = asyncio.Lock()
        self.rejections: list[str] = []
        self.chain_round = dispute.first_round  # grows when a settlement failed for good
        # milestones whose resolution landed on chain, with (to seller, to buyer): a later
        # decision must include them, since they can never be paid again
        self.settled: dict[str, tuple[int, int]] = {}

    @workflow.run
    async def run(self, dispute: DisputeInput) -> DisputeOutcome:
        set_status(self.status, self._details)
        await workflow.wait_condition(lambda: self.status == DisputeStatus.RESOLVED)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return DisputeOutcome(dispute_id=dispute.dispute_id, status=self.status)

    def _details(self) -> str:
        d = self.dispute
        text = (
            f"Dispute {d.dispute_id} on {d.order_id}: {self.status}, {format_cents(d.disputed_amount)} USD in "
            f"escrow, opened by {d.opened_by}" + (f", assigned to {self.assigned_to}" if self.assigned_to else "")
        )
        if self.rejections:
            text += f". Last refused signal: {self.rejections[-1]}"
        return text + (". Waiting for a support decision." if self.status != DisputeStatus.RESOLVED else ".")

    def _moved(self, status: str) -> None:
        self.status = status
        set_status(status, self._details)

    # assign ----------------------------------------------------------------------------

    @workflow.update
    async def assign(self, req: AssignDispute) -> DisputeOutcome:
        async with self.lock:
            self._check_assign(req)
            await db_step(
                steps.DISPUTE_ASSIGNED,
                DisputeStep(
                    dispute_id=self.dispute.dispute_id, caller=req.caller, assigned_to=req.assigned_to, note=req.note
                ),
            )
            self.assigned_to = req.assigned_to
            self._moved(DisputeStatus.UNDER_REVIEW)
            return DisputeOutcome(dispute_id=self.dispute.dispute_id, status=self.status)

    @assign.validator
    def _check_assign(self, req: AssignDispute) -> None:
        require(DISPUTE, "assign", self.status, self.dispute.dispute_id)

    # resolve ---------------------------------------------------------------------------

    @workflow.update
    async def resolve(self, req: ResolveDispute) -> DisputeOutcome:
        async with self.lock:
            return await self._settle(req)

    @resolve.validator
    def _check_resolve(self, req: ResolveDispute) -> None:
        self._validate_resolve(req)

    def _validate_resolve(self, req: ResolveDispute) -> tuple[int, int]:
        if self.settling:
            raise refusal(
                OfferhubError(
                    ErrorCode.INVALID_STATE,
                    "a decision is already being settled",
                    {
                        "dispute_id": self.dispute.dispute_id,
                        "current_state": self.status,
                        "allowed_states": [DisputeStatus.UNDER_REVIEW],
                        "reason": "settlement_in_progress",
                    },
                )
            )
        require(DISPUTE, "resolve", self.status, self.dispute.dispute_id)
        try:
            release, refund = shares(req.decision, req.release_amount, req.refund_amount, self.dispute.disputed_amount)
        except OfferhubError as exc:
            raise refusal(exc) from None
        to_seller, to_buyer = self._already_settled()
        if release < to_seller or refund < to_buyer:
            raise refusal(
                OfferhubError(
                    ErrorCode.INVALID_AMOUNT,
                    "part of the escrow was already settled on chain by an earlier decision: "
                    "a new decision must give each side at least what it already received",
                    {
                        "dispute_id": self.dispute.dispute_id,
                        "already_released": format_cents(to_seller),
                        "already_refunded": format_cents(to_buyer),
                        "release_amount": format_cents(release),
                        "refund_amount": format_cents(refund),
                    },
                )
            )
        return release, refund

    def _already_settled(self) -> tuple[int, int]:
        return sum(s for s, _ in self.settled.values()), sum(b for _, b in self.settled.values())

    async def _settle(self, req: ResolveDispute) -> DisputeOutcome:
        release, refund = self._validate_resolve(req)  # again, under the lock
        self.settling = True
        resolved_by = req.resolved_by or self.assigned_to or req.caller.actor_id
        step = DisputeStep(
            dispute_id=self.dispute.dispute_id,
            caller=req.caller,
            decision=req.decision,
            release_amount=release,
            refund_amount=refund,
            note=req.note,
            resolved_by=resolved_by,
        )
        await db_step(steps.DISPUTE_DECIDED, step)
        workflow.set_current_details(
            f"Settling {req.decision} on chain: {format_cents(release)} to the seller, "
            f"{format_cents(refund)} to the buyer"
        )
        try:
            await self._on_chain(release, refund, req.caller)
        except ActivityError as exc:
            cause = business_cause(exc)
            self.chain_round += 1  # a new decision settles under new operation keys
            await db_step(
                steps.DISPUTE_SETTLEMENT_FAILED,
                DisputeStep(
                    dispute_id=self.dispute.dispute_id,
                    caller=req.caller,
                    error_code=cause.type,
                    error_message=cause.message,
                ),
            )
            self.settling = False
            set_status(self.status, self._details)
            raise refusal(
                OfferhubError(
                    ErrorCode.PROVIDER_ERROR,
                    "the settlement was refused by the provider",
                    {
                        "provider": "trustless_work",
                        "provider_message": cause.message,
                        "dispute_id": self.dispute.dispute_id,
                    },
                )
            ) from None
        await db_step(steps.DISPUTE_SETTLED, step)
        await workflow.get_external_workflow_handle(self.dispute.order_id).signal(
            "dispute_settled",
            DisputeOutcome(dispute_id=self.dispute.dispute_id, status=DisputeStatus.RESOLVED, decision=req.decision),
        )
        self._moved(DisputeStatus.RESOLVED)
        return DisputeOutcome(dispute_id=self.dispute.dispute_id, status=DisputeStatus.RESOLVED, decision=req.decision)

    async def _on_chain(self, release: int, refund: int, caller: Caller) -> None:
        plan = self.dispute.plan
        assert plan.contract_id is not None
        call: dict[str, Any] = {
            "order_id": plan.order_id,
            "escrow_id": plan.escrow_id,
            "contract_id": plan.contract_id,
            "escrow_type": plan.escrow_type,
            "disputer": "buyer" if self.dispute.opened_by == "BUYER" else "seller",
            "buyer_id": self.dispute.buyer_id,
            "seller_id": self.dispute.seller_id,
            "round": self.chain_round,
        }
        if plan.escrow_type == "single-release":
            await provider_step(steps.ESCROW_CALL, EscrowCallInput(kind="dispute", **call))
            await provider_step(
                steps.ESCROW_CALL, EscrowCallInput(kind="resolve", to_seller=release, to_buyer=refund, **call)
            )
            return
        # milestones settled by an earlier decision stay as they landed; the rest share what is left
        open_milestones = [m for m in self.dispute.milestones if m.id not in self.settled]
        parts = spread(release - self._already_settled()[0], [m.amount for m in open_milestones])
        for milestone, (to_seller, to_buyer) in zip(open_milestones, parts, strict=True):
            per = {**call, "milestone_id": milestone.id, "milestone_index": milestone.position}
            await provider_step(steps.ESCROW_CALL, EscrowCallInput(kind="dispute", **per))
            done = await provider_step(
                steps.ESCROW_CALL, EscrowCallInput(kind="resolve", to_seller=to_seller, to_buyer=to_buyer, **per)
            )
            self.settled[milestone.id] = (to_seller, to_buyer)
            await db_step(
                steps.DISPUTE_MILESTONE_SETTLED,
                DisputeStep(
                    dispute_id=self.dispute.dispute_id,
                    caller=caller,
                    milestone_id=milestone.id,
                    release_amount=to_seller,
                    refund_amount=to_buyer,
                    tx_hash=done.tx_hash,
                ),
            )

    # comments ------------------------------------------------------------------------------

    @workflow.update
    async def add_comment(self, req: AddComment) -> DisputeOutcome:
        async with self.lock:
            self._check_comment(req)
            await db_step(
                steps.DISPUTE_COMMENT, DisputeStep(dispute_id=self.dispute.dispute_id, caller=req.caller, comment=req)
            )
            return DisputeOutcome(dispute_id=self.dispute.dispute_id, status=self.status)

    @add_comment.validator
    def _check_comment(self, req: AddComment) -> None:
        require(DISPUTE, "add_comment", self.status, self.dispute.dispute_id)

    # operator Signals (Temporal UI / CLI) --------------------------------------------------------

    @workflow.signal(name="assign")
    async def assign_signal(self, payload: dict[str, Any]) -> None:
        async with self.lock:
            caller = _operator(payload)
            try:
                assigned_to = _text(payload, "assigned_to", required=True, limit=128)
                note = _text(payload, "note", limit=1000)
                require(DISPUTE, "assign", self.status, self.dispute.dispute_id)
            except ApplicationError as exc:
                await self._reject("DISPUTE_ASSIGNED", payload, caller, exc)
                return
            await db_step(
                steps.DISPUTE_ASSIGNED,
                DisputeStep(dispute_id=self.dispute.dispute_id, caller=caller, assigned_to=assigned_to, note=note),
            )
            self.assigned_to = assigned_to
            self._moved(DisputeStatus.UNDER_REVIEW)

    @workflow.signal(name="resolve")
    async def resolve_signal(self, payload: dict[str, Any]) -> None:
        async with self.lock:
            caller = _operator(payload)
            try:
                req = ResolveDispute(
                    caller=caller,
                    decision=_text(payload, "decision", required=True, limit=20) or "",
                    release_amount=_money(payload, "release_amount"),
                    refund_amount=_money(payload, "refund_amount"),
                    note=_text(payload, "note", limit=2000),
                    resolved_by=_text(payload, "resolved_by", limit=128) or caller.actor_id,
                )
                self._validate_resolve(req)
            except ApplicationError as exc:
                await self._reject("DISPUTE_RESOLVED", payload, caller, exc)
                return
            try:
                await self._settle(req)
            except ApplicationError as exc:
                self.rejections.append(f"{exc.type}: {exc.message}")
                set_status(self.status, self._details)

    async def _reject(self, action: str, payload: dict[str, Any], caller: Caller, error: ApplicationError) -> None:
        self.rejections.append(f"{action} refused: {error.type}: {error.message}")
        set_status(self.status, self._details)
        await db_step(
            steps.DISPUTE_SIGNAL_REJECTED,
            DisputeStep(
                dispute_id=self.dispute.dispute_id,
                caller=caller,
                error_code=error.type,
                error_message=error.message,
                rejected={"action": action, "payload": printable(payload, drop=("actor",))},
            ),
        )


def _operator(payload: dict[str, Any]) -> Caller:
    """The identity the Signal claims (audited as claimed): text only, controls removed."""
    actor = payload.get("actor") if isinstance(payload, dict) else None
    claimed = UNSTORABLE.sub("", actor)[:128] if isinstance(actor, str) else None
    return Caller(actor_type="operator", actor_id=claimed or None)


def _text(payload: dict[str, Any], field: str, *, required: bool = False, limit: int) -> str | None:
    value = payload.get(field) if isinstance(payload, dict) else None
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= limit or has_control(value):
        raise refusal(
            OfferhubError(
                ErrorCode.VALIDATION_ERROR,
                f"{field} must be a string of 1-{limit} characters without control characters",
                {"fields": [{"field": field, "message": "invalid"}]},
            )
        )
    return value


def _money(payload: dict[str, Any], field: str) -> int | None:
    value = payload.get(field) if isinstance(payload, dict) else None
    if value is None:
        return None
    try:
        return parse_amount(value)
    except AmountFormatError as exc:
        raise refusal(
            OfferhubError(
                ErrorCode.INVALID_AMOUNT_FORMAT, f"{field} {exc}", {"fields": [{"field": field, "message": str(exc)}]}
            )
        ) from None
