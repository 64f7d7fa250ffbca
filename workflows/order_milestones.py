"""OrderWorkflow's milestones (domain.md §4.5): it starts one MilestoneWorkflow child per
milestone once the escrow is funded, hears when a milestone is completed, and pays an approved
one on chain under the order's lock (the child answers the API)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.errors import ErrorCode
    from models.money import format_cents
    from models.orders_io import (
        Caller,
        EscrowCallInput,
        EscrowPlan,
        MilestoneInput,
        MilestoneInputs,
        MilestoneOutcome,
        MilestonePaid,
        MilestonePayment,
        MilestoneStep,
    )
    from models.search import attributes
    from models.states import MilestoneStatus, OrderStatus
    from workflows.common import business_cause, db_step, provider_step
    from workflows.milestone import MilestoneWorkflow
    from workflows.order_base import OrderBase


class OrderMilestones(OrderBase):
    def _all_milestones_paid(self) -> bool:
        return (
            self.status == OrderStatus.IN_PROGRESS
            and bool(self.milestones)
            and all(s == MilestoneStatus.RELEASED for s in self.milestones.values())
        )

    async def _start_milestones(self, plan: EscrowPlan) -> None:
        assert plan.contract_id is not None
        parties = [self.order.buyer_id, self.order.seller_id]
        for milestone in self.order.milestones:
            await workflow.start_child_workflow(
                MilestoneWorkflow.run,
                MilestoneInputs(
                    milestone=milestone,
                    order_id=self.order.id,
                    buyer_id=self.order.buyer_id,
                    seller_id=self.order.seller_id,
                    escrow_id=plan.escrow_id,
                    contract_id=plan.contract_id,
                ),
                id=milestone.id,
                search_attributes=attributes("milestone", MilestoneStatus.OPEN, parties, milestone.amount),
                static_summary=f"Milestone {milestone.milestone_ref} of {self.order.id}: "
                f"{format_cents(milestone.amount)} USD",
            )

    @workflow.signal
    def milestone_settled(self, outcome: MilestoneOutcome) -> None:
        """A milestone reports its completion (payments run here, so they need no report).
        Anything else, or a milestone that is not this order's, is ignored: a Signal can be
        sent by anyone with access to the Temporal UI."""
        if (
            self.milestones.get(outcome.milestone_id) == MilestoneStatus.OPEN
            and outcome.status == MilestoneStatus.COMPLETED
        ):
            self.milestones[outcome.milestone_id] = outcome.status
            workflow.set_current_details(self._summary())
        else:
            self._ignored("milestone_settled", outcome.milestone_id)

    @workflow.signal
    async def pay_milestone(self, req: MilestonePayment) -> None:
        """The buyer approved a milestone: approve and release it on chain under the order's
        lock, then answer the milestone workflow (which answers the API)."""
        milestone = next((m for m in self.order.milestones if m.id == req.milestone_id), None)
        if milestone is None:
            self._ignored("pay_milestone", req.milestone_id)
            return
        async with self.lock:
            answer = await self._milestone_payment(milestone, req)
        await workflow.get_external_workflow_handle(milestone.id).signal("payment_done", answer)

    async def _milestone_payment(self, milestone: MilestoneInput, req: MilestonePayment) -> MilestonePaid:
        state = self.milestones[milestone.id]
        if self.status != OrderStatus.IN_PROGRESS or state not in (
            MilestoneStatus.COMPLETED,
            MilestoneStatus.APPROVED,
        ):
            frozen = self.status != OrderStatus.IN_PROGRESS
            return MilestonePaid(
                milestone_id=milestone.id,
                status=state,
                error_code=ErrorCode.INVALID_STATE.value,
                error_message=f"the order is {self.status}: milestones are frozen"
                if frozen
                else f"milestone {milestone.id} is {state}",
                error_details={
                    "order_id": self.order.id,
                    "milestone_id": milestone.id,
                    "current_state": self.status if frozen else state,
                    "allowed_states": [OrderStatus.IN_PROGRESS]
                    if frozen
                    else [MilestoneStatus.COMPLETED, MilestoneStatus.APPROVED],
                },
            )
        try:
            await self._pay_milestone(milestone, req.caller)
        except (ActivityError, ApplicationError) as exc:  # a signal handler answers, it never raises
            cause = business_cause(exc)
            await self._step_failed(req.caller, f"milestone_release:{milestone.milestone_ref}", cause)
            error = self._provider_error("the provider refused the milestone payment", cause)
            return MilestonePaid(
                milestone_id=milestone.id,
                status=self.milestones[milestone.id],
                error_code=error.type,
                error_message=error.message,
                error_details=error.details[0] if error.details else {},
            )
        return MilestonePaid(milestone_id=milestone.id, status=MilestoneStatus.RELEASED)

    async def _pay_milestone(self, milestone: MilestoneInput, caller: Caller) -> str:
        """Approve (unless already approved) and release one milestone: on chain, then its keyed credit."""
        assert self.plan is not None
        per = {**self._escrow_call(self.plan), "milestone_id": milestone.id, "milestone_index": milestone.position}
        step = MilestoneStep(milestone_id=milestone.id, order_id=self.order.id, caller=caller)
        if self.milestones[milestone.id] != MilestoneStatus.APPROVED:
            await provider_step(steps.ESCROW_CALL, EscrowCallInput(kind="approve", **per))
            await db_step(steps.MILESTONE_APPROVED, step)
            self.milestones[milestone.id] = MilestoneStatus.APPROVED
        done = await provider_step(steps.ESCROW_CALL, EscrowCallInput(kind="release", **per))
        step.tx_hash = done.tx_hash
        await db_step(steps.MILESTONE_RELEASED, step)
        self.milestones[milestone.id] = MilestoneStatus.RELEASED
        workflow.set_current_details(self._summary())
        return done.tx_hash
