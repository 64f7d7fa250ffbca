"""OrderWorkflow's settlement (domain.md §4.3): `release` pays the seller what is still in
escrow, `refund` returns it to the buyer, both on chain first and recorded after; a chain
step that fails for good puts the order back IN_PROGRESS with `last_error`, and a retry is a
new round of its chain steps."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.errors import ErrorCode, OfferhubError
    from models.orders_io import Caller, EscrowCallInput, EscrowPlan, MilestoneStep, OrderOutcome, Settle
    from models.states import MilestoneStatus, OrderStatus
    from workflows.common import business_cause, db_step, refusal
    from workflows.order_milestones import OrderMilestones


class OrderSettlement(OrderMilestones):
    @workflow.update
    async def release(self, req: Settle) -> OrderOutcome:
        async with self.lock:
            self._check_release(req)
            plan = await db_step(
                steps.SETTLEMENT_REQUESTED, self._step(req.caller, reason=req.reason, operation="release")
            )
            self._moved(OrderStatus.RELEASE_REQUESTED)
            await self._notify_milestones(OrderStatus.RELEASE_REQUESTED)
            try:
                tx_hash = await self._pay_seller(plan, req.caller)
            except ActivityError as exc:
                await self._settlement_failed(req.caller, "release", business_cause(exc))
            await self._close_released(req.caller, reason=req.reason, tx_hash=tx_hash)
            return OrderOutcome(order_id=self.order.id, status=self.status)

    @release.validator
    def _check_release(self, req: Settle) -> None:
        self._require("release")
        incomplete = [
            m.milestone_ref for m in self.order.milestones if self.milestones.get(m.id) == MilestoneStatus.OPEN
        ]
        if incomplete:
            raise refusal(
                OfferhubError(
                    ErrorCode.INVALID_STATE,
                    "every unreleased milestone must be COMPLETED or APPROVED first",
                    {
                        "order_id": self.order.id,
                        "current_state": self.status,
                        "allowed_states": [OrderStatus.IN_PROGRESS],
                        "incomplete_milestones": incomplete,
                    },
                )
            )

    async def _pay_seller(self, plan: EscrowPlan, caller: Caller) -> str | None:
        if not self.order.milestones:
            call = self._escrow_call(plan)
            kinds = ("complete", "approve", "release")
            done = await self._escrow_steps([EscrowCallInput(kind=k, milestone_index=0, **call) for k in kinds])
            return done.tx_hash
        self.plan = plan
        tx_hash = None
        for milestone in self.order.milestones:
            if self.milestones[milestone.id] == MilestoneStatus.RELEASED:
                continue
            tx_hash = await self._pay_milestone(milestone, caller)
            await self._settle_milestone(milestone.id, MilestoneStatus.RELEASED)
        return tx_hash

    async def _close_released(self, caller: Caller, *, reason: str | None, tx_hash: str | None = None) -> None:
        outcome = await db_step(steps.ORDER_RELEASED, self._step(caller, reason="RELEASED", tx_hash=tx_hash))
        self._moved(outcome.status)

    @workflow.update
    async def refund(self, req: Settle) -> OrderOutcome:
        async with self.lock:
            self._check_refund(req)
            plan = await db_step(
                steps.SETTLEMENT_REQUESTED, self._step(req.caller, reason=req.reason, operation="refund")
            )
            self._moved(OrderStatus.REFUND_REQUESTED)
            await self._notify_milestones(OrderStatus.REFUND_REQUESTED)
            try:
                tx_hash = await self._return_to_buyer(plan, req.caller)
            except ActivityError as exc:
                await self._settlement_failed(req.caller, "refund", business_cause(exc))
            outcome = await db_step(steps.ORDER_REFUNDED, self._step(req.caller, tx_hash=tx_hash))
            for milestone_id, state in list(self.milestones.items()):
                if state != MilestoneStatus.RELEASED and state != MilestoneStatus.CANCELED:
                    await self._settle_milestone(milestone_id, MilestoneStatus.CANCELED)
            self._moved(outcome.status)
            return outcome

    @refund.validator
    def _check_refund(self, req: Settle) -> None:
        self._require("refund")

    async def _return_to_buyer(self, plan: EscrowPlan, caller: Caller) -> str | None:
        """Dispute and resolve everything still in escrow to the buyer. Milestone by milestone,
        each refund is credited as it lands, so a failure at milestone k keeps 0..k-1 recorded."""
        call = self._escrow_call(plan)
        if not self.order.milestones:
            done = await self._escrow_steps(
                [EscrowCallInput(kind="dispute", **call), EscrowCallInput(kind="resolve", to_buyer=plan.amount, **call)]
            )
            return done.tx_hash
        tx_hash = None
        for milestone in self.order.milestones:
            if self.milestones[milestone.id] in (MilestoneStatus.RELEASED, MilestoneStatus.CANCELED):
                continue
            per = {**call, "milestone_id": milestone.id, "milestone_index": milestone.position}
            done = await self._escrow_steps(
                [
                    EscrowCallInput(kind="dispute", **per),
                    EscrowCallInput(kind="resolve", to_buyer=milestone.amount, **per),
                ]
            )
            tx_hash = done.tx_hash
            step = MilestoneStep(milestone_id=milestone.id, order_id=self.order.id, caller=caller, tx_hash=tx_hash)
            await db_step(steps.MILESTONE_REFUNDED, step)
            await self._settle_milestone(milestone.id, MilestoneStatus.CANCELED)
        return tx_hash

    async def _settlement_failed(self, caller: Caller, operation: str, cause: ApplicationError) -> None:
        outcome = await db_step(
            steps.SETTLEMENT_FAILED,
            self._step(
                caller, operation=operation, error_code=cause.type or "PROVIDER_ERROR", error_message=cause.message
            ),
        )
        self._moved(outcome.status)
        self.chain_round += 1  # a retried release or refund is a new round of its chain steps
        await self._notify_milestones(OrderStatus.IN_PROGRESS)
        raise self._provider_error(f"the {operation} was refused by the provider", cause)
