"""What every part of OrderWorkflow shares: its state, how it moves, how it refuses, and the
calls it makes to its escrow and its milestone children (workflows/order.py assembles them)."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.errors import ErrorCode, OfferhubError
    from models.money import format_cents
    from models.orders_io import (
        Caller,
        ChainDone,
        EscrowCallInput,
        EscrowCalls,
        EscrowPlan,
        MilestoneOutcome,
        OrderInput,
        OrderStatusNote,
        OrderStep,
    )
    from models.states import ORDER, MilestoneStatus
    from workflows.common import db_step, provider_step, refusal, set_status

# Since this patch, escrow steps that always go together (complete, approve, release; dispute,
# resolve) run as one provider activity; histories recorded before it ran one activity each.
ESCROW_STEPS_TOGETHER = "escrow-steps-in-one-activity"


class OrderBase:
    order: OrderInput
    status: str
    plan: EscrowPlan | None
    milestones: dict[str, str]  # milestone ID -> MilestoneStatus, as this order knows it
    lock: asyncio.Lock
    dispute: workflow.ChildWorkflowHandle[Any, Any] | None
    chain_round: int  # grows each time a chain action failed for good (the next try is a new round)
    provider_news: str | None

    def _summary(self) -> str:
        o = self.order
        return f"Order {o.id}: {format_cents(o.amount)} USD {o.buyer_id} -> {o.seller_id}; status {self.status}" + (
            f"; milestones {self.milestones}" if self.milestones else ""
        )

    def _moved(self, status: str) -> None:
        self.status = status
        set_status(status, self._summary)

    def _require(self, action: str) -> None:
        """The order machine's refusal, with the details the error catalog names for it."""
        try:
            ORDER.require(action, self.status, self.order.id)
        except OfferhubError as exc:
            details = dict(exc.details)
            if exc.code is ErrorCode.DISPUTE_ALREADY_OPEN and self.dispute is not None:
                details["dispute_id"] = self.dispute.id
            if exc.code is ErrorCode.ESCROW_ALREADY_FUNDED and self.plan is not None:
                details["escrow_id"] = self.plan.escrow_id
            raise refusal(OfferhubError(exc.code, exc.message, details)) from None

    def _ignored(self, signal: str, about: str) -> None:
        """A Signal this order did not expect in its state: shown to operators, nothing changes."""
        workflow.logger.warning("ignored %s Signal about %s in %s", signal, about, self.status)
        workflow.set_current_details(f"{self._summary()}; ignored a {signal} Signal about {about}")

    def _step(self, caller: Caller, **kw: object) -> OrderStep:
        return OrderStep(order_id=self.order.id, caller=caller, **kw)

    def _provider_error(self, message: str, cause: ApplicationError) -> ApplicationError:
        return refusal(
            OfferhubError(
                ErrorCode.PROVIDER_ERROR,
                message,
                {"provider": "trustless_work", "provider_message": cause.message, "order_id": self.order.id},
            )
        )

    async def _step_failed(self, caller: Caller, operation: str, cause: ApplicationError) -> None:
        """A step that failed for good without changing the order's status: `last_error` and audit."""
        await db_step(
            steps.ORDER_STEP_FAILED,
            self._step(
                caller, operation=operation, error_code=cause.type or "PROVIDER_ERROR", error_message=cause.message
            ),
        )
        self.chain_round += 1

    # the escrow --------------------------------------------------------------------------------

    def _escrow_call(self, plan: EscrowPlan) -> dict[str, Any]:
        """What every escrow_call of this order names: the order, its escrow, its parties, the round."""
        assert plan.contract_id is not None
        return {
            "order_id": self.order.id,
            "escrow_id": plan.escrow_id,
            "contract_id": plan.contract_id,
            "escrow_type": plan.escrow_type,
            "buyer_id": self.order.buyer_id,
            "seller_id": self.order.seller_id,
            "round": self.chain_round,
        }

    async def _escrow_steps(self, calls: list[EscrowCallInput]) -> ChainDone:
        """Escrow steps that always go together, in order; the last one's answer."""
        if workflow.patched(ESCROW_STEPS_TOGETHER):
            return await provider_step(steps.ESCROW_CALLS, EscrowCalls(calls=calls))
        for call in calls:
            done = await provider_step(steps.ESCROW_CALL, call)
        return done

    # the milestone children ----------------------------------------------------------------------

    async def _notify_milestones(self, status: str) -> None:
        for milestone_id, state in self.milestones.items():
            if state not in (MilestoneStatus.RELEASED, MilestoneStatus.CANCELED):
                await workflow.get_external_workflow_handle(milestone_id).signal(
                    "order_status", OrderStatusNote(status=status)
                )

    async def _settle_milestone(self, milestone_id: str, status: str) -> None:
        """The order paid or canceled this milestone itself: its workflow learns it and ends."""
        self.milestones[milestone_id] = status
        await workflow.get_external_workflow_handle(milestone_id).signal(
            "settled_by_order", MilestoneOutcome(milestone_id=milestone_id, status=status)
        )
