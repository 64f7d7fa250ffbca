"""MilestoneWorkflow (child of the order, id = ms_…): the seller completes, the buyer approves,
that milestone's amount is released on chain and credited to the seller (domain.md §4.5)."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from models.errors import ErrorCode, OfferhubError
    from models.orders_io import (
        ChainDone,
        EscrowCallInput,
        MilestoneAction,
        MilestoneInputs,
        MilestoneOutcome,
        MilestoneStep,
        OrderOutcome,
        OrderStatusNote,
    )
    from models.states import MILESTONE
    from workflows.common import business_cause, db_step, provider_step, refusal, require, set_status


@workflow.defn(name="MilestoneWorkflow")
class MilestoneWorkflow:
    @workflow.init
    def __init__(self, inputs: MilestoneInputs) -> None:
        self.inputs = inputs
        self.status = "OPEN"
        self.order_state = inputs.order_status
        self.lock = asyncio.Lock()

    @workflow.run
    async def run(self, inputs: MilestoneInputs) -> MilestoneOutcome:
        set_status(self.status, self._details)
        await workflow.wait_condition(lambda: self.status in ("RELEASED", "CANCELED"))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return MilestoneOutcome(milestone_id=inputs.milestone.id, status=self.status)

    def _details(self) -> str:
        m = self.inputs.milestone
        return f"Milestone {m.milestone_ref} of {self.inputs.order_id}: {self.status} (order {self.order_state})"

    def _moved(self, status: str) -> None:
        self.status = status
        set_status(status, self._details)

    def _call(self, kind: str, note: str = "") -> EscrowCallInput:
        m = self.inputs.milestone
        return EscrowCallInput(
            order_id=self.inputs.order_id,
            escrow_id=self.inputs.escrow_id,
            contract_id=self.inputs.contract_id,
            escrow_type="multi-release",
            kind=kind,
            milestone_id=m.id,
            milestone_index=m.position,
            note=note,
            buyer_id=self.inputs.buyer_id,
            seller_id=self.inputs.seller_id,
        )

    def _step(self, req: MilestoneAction, **kw: object) -> MilestoneStep:
        return MilestoneStep(
            milestone_id=self.inputs.milestone.id, order_id=self.inputs.order_id, caller=req.caller, **kw
        )

    def _require_order_in_progress(self) -> None:
        if self.order_state != "IN_PROGRESS":
            raise refusal(
                OfferhubError(
                    ErrorCode.INVALID_STATE,
                    f"the order is {self.order_state}: milestones are frozen",
                    {
                        "order_id": self.inputs.order_id,
                        "milestone_id": self.inputs.milestone.id,
                        "current_state": self.order_state,
                        "allowed_states": ["IN_PROGRESS"],
                    },
                )
            )

    @workflow.update
    async def complete(self, req: MilestoneAction) -> MilestoneOutcome:
        async with self.lock:
            try:
                await provider_step("escrow_call", self._call("complete", req.note or ""), ChainDone)
            except ActivityError as exc:
                raise _provider_refusal(exc, self.inputs.order_id) from None
            await db_step("milestone_completed", self._step(req, note=req.note), OrderOutcome)
            self._moved("COMPLETED")
            return MilestoneOutcome(milestone_id=self.inputs.milestone.id, status=self.status)

    @complete.validator
    def _check_complete(self, req: MilestoneAction) -> None:
        self._require_order_in_progress()
        require(MILESTONE, "complete", self.status, self.inputs.milestone.id)

    @workflow.update
    async def approve(self, req: MilestoneAction) -> MilestoneOutcome:
        async with self.lock:
            try:
                if self.status == "COMPLETED":
                    await provider_step("escrow_call", self._call("approve"), ChainDone)
                    await db_step("milestone_approved", self._step(req), OrderOutcome)
                    self._moved("APPROVED")
                done = await provider_step("escrow_call", self._call("release"), ChainDone)
            except ActivityError as exc:
                raise _provider_refusal(exc, self.inputs.order_id) from None
            released = await db_step("milestone_released", self._step(req, tx_hash=done.tx_hash), OrderOutcome)
            self._moved("RELEASED")
            await workflow.get_external_workflow_handle(self.inputs.order_id).signal(
                "milestone_settled", MilestoneOutcome(milestone_id=self.inputs.milestone.id, status="RELEASED")
            )
            del released
            return MilestoneOutcome(milestone_id=self.inputs.milestone.id, status=self.status)

    @approve.validator
    def _check_approve(self, req: MilestoneAction) -> None:
        self._require_order_in_progress()
        require(MILESTONE, "approve", self.status, self.inputs.milestone.id)

    @workflow.signal
    def order_status(self, note: OrderStatusNote) -> None:
        self.order_state = note.status
        workflow.set_current_details(self._details())

    @workflow.signal
    def settled_by_order(self, outcome: MilestoneOutcome) -> None:
        """The order paid or canceled this milestone itself (release, refund, dispute)."""
        self._moved(outcome.status)


def _provider_refusal(error: ActivityError, order_id: str) -> Exception:
    cause = business_cause(error)
    return refusal(
        OfferhubError(
            ErrorCode.PROVIDER_ERROR,
            "the provider refused the milestone step",
            {
                "provider": "trustless_work",
                "provider_message": cause.message,
                "order_id": order_id,
            },
        )
    )
