"""OrderWorkflow (id = ord_…): the order state machine of domain.md §4.3, as Updates.

created -> reserve -> create_escrow -> fund_escrow -> (milestones | release | refund) -> CLOSED,
or cancel before escrow. Each Update's validator refuses an illegal transition before
anything is recorded; handlers run one action at a time under a lock.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from models.disputes_io import DisputeInput, DisputeOutcome, OpenDispute
    from models.errors import ErrorCode, OfferhubError
    from models.money import format_cents
    from models.orders_io import (
        Caller,
        Cancel,
        ChainDone,
        CreateOrder,
        EscrowAction,
        EscrowCallInput,
        EscrowPlan,
        MilestoneInputs,
        MilestoneOutcome,
        OrderCreated,
        OrderInput,
        OrderOutcome,
        OrderStatusNote,
        OrderStep,
        Reserve,
        Settle,
    )
    from models.search import attributes
    from models.states import ORDER
    from workflows.common import business_cause, db_step, provider_step, refusal, require, set_status
    from workflows.dispute import DisputeWorkflow
    from workflows.milestone import MilestoneWorkflow


@workflow.defn(name="OrderWorkflow")
class OrderWorkflow:
    @workflow.init
    def __init__(self, order: OrderInput) -> None:
        self.order = order
        self.status = "NEW"
        self.plan: EscrowPlan | None = None
        self.milestones = {m.id: "OPEN" for m in order.milestones}
        self.lock = asyncio.Lock()
        self.dispute: workflow.ChildWorkflowHandle[Any, Any] | None = None

    @workflow.run
    async def run(self, order: OrderInput) -> OrderOutcome:
        workflow.set_current_details(self._summary())
        while self.status != "CLOSED":
            await workflow.wait_condition(lambda: self.status == "CLOSED" or self._all_milestones_paid())
            if self.status != "CLOSED":
                async with self.lock:
                    if self._all_milestones_paid():
                        await self._close_released(Caller(actor_id=self.order.id), reason=None)
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.dispute is not None:
            await self.dispute  # its resolve answer goes back to support staff before the order completes
        return OrderOutcome(order_id=self.order.id, status=self.status)

    def _summary(self) -> str:
        o = self.order
        return f"Order {o.id}: {format_cents(o.amount)} USD {o.buyer_id} -> {o.seller_id}; status {self.status}" + (
            f"; milestones {self.milestones}" if self.milestones else ""
        )

    def _moved(self, status: str) -> None:
        self.status = status
        set_status(status, self._summary)

    def _all_milestones_paid(self) -> bool:
        return (
            self.status == "IN_PROGRESS"
            and bool(self.milestones)
            and all(s == "RELEASED" for s in self.milestones.values())
        )

    def _step(self, caller: Caller, **kw: object) -> OrderStep:
        return OrderStep(order_id=self.order.id, caller=caller, **kw)

    # created ---------------------------------------------------------------------------

    @workflow.update
    async def created(self, req: OrderCreated) -> OrderOutcome:
        async with self.lock:
            if self.status == "NEW":
                outcome = await db_step("order_create", CreateOrder(order=self.order, caller=req.caller), OrderOutcome)
                self._moved(outcome.status)
        return OrderOutcome(order_id=self.order.id, status=self.status)

    # reserve / cancel ------------------------------------------------------------------

    @workflow.update
    async def reserve(self, req: Reserve) -> OrderOutcome:
        async with self.lock:
            try:
                outcome = await db_step("order_reserve", self._step(req.caller), OrderOutcome)
            except ActivityError as exc:
                raise business_cause(exc) from None
            self._moved(outcome.status)
            return outcome

    @reserve.validator
    def _check_reserve(self, req: Reserve) -> None:
        require(ORDER, "reserve", self.status, self.order.id)
        if req.amount is not None and req.amount != self.order.amount:
            raise refusal(
                OfferhubError(
                    ErrorCode.RESERVE_MISMATCH_AMOUNT,
                    "amount must equal the order amount",
                    {"order_amount": format_cents(self.order.amount), "requested": format_cents(req.amount)},
                )
            )

    @workflow.update
    async def cancel(self, req: Cancel) -> OrderOutcome:
        async with self.lock:
            outcome = await db_step("order_cancel", self._step(req.caller, reason=req.reason), OrderOutcome)
            self._moved(outcome.status)
            return outcome

    @cancel.validator
    def _check_cancel(self, req: Cancel) -> None:
        require(ORDER, "cancel", self.status, self.order.id)

    # escrow ------------------------------------------------------------------------------

    @workflow.update
    async def create_escrow(self, req: EscrowAction) -> OrderOutcome:
        async with self.lock:
            try:
                plan = await db_step("escrow_prepare", self._step(req.caller), EscrowPlan)
            except ActivityError as exc:
                raise business_cause(exc) from None
            self._moved("ESCROW_CREATING")
            try:
                done = await provider_step("escrow_deploy", plan, ChainDone)
            except ActivityError as exc:
                cause = business_cause(exc)
                outcome = await db_step(
                    "escrow_deploy_failed",
                    self._step(req.caller, error_code=cause.type, error_message=cause.message),
                    OrderOutcome,
                )
                self._moved(outcome.status)
                raise refusal(
                    OfferhubError(
                        ErrorCode.PROVIDER_ERROR,
                        "the escrow deployment was refused",
                        {
                            "provider": "trustless_work",
                            "provider_message": cause.message,
                            "order_id": self.order.id,
                        },
                    )
                ) from None
            self.plan = await db_step("escrow_deployed", done, EscrowPlan)
            self._moved("ESCROW_FUNDING")
            return OrderOutcome(order_id=self.order.id, status=self.status)

    @create_escrow.validator
    def _check_create_escrow(self, req: EscrowAction) -> None:
        require(ORDER, "create_escrow", self.status, self.order.id)

    @workflow.update
    async def fund_escrow(self, req: EscrowAction) -> OrderOutcome:
        async with self.lock:
            plan = await db_step("escrow_funding_started", self._step(req.caller), EscrowPlan)
            try:
                done = await provider_step("escrow_fund", plan, ChainDone)
            except ActivityError as exc:
                cause = business_cause(exc)
                await db_step(
                    "escrow_funding_failed",
                    self._step(req.caller, error_code=cause.type, error_message=cause.message),
                    OrderOutcome,
                )
                raise refusal(
                    OfferhubError(
                        ErrorCode.ESCROW_FUNDING_FAILED,
                        "the escrow funding was refused",
                        {
                            "order_id": self.order.id,
                            "provider_message": cause.message,
                        },
                    )
                ) from None
            outcome = await db_step("escrow_funded", done, OrderOutcome)
            self.plan = plan
            self._moved(outcome.status)
            await self._start_milestones(plan)
            return outcome

    @fund_escrow.validator
    def _check_fund_escrow(self, req: EscrowAction) -> None:
        require(ORDER, "fund_escrow", self.status, self.order.id)

    async def _start_milestones(self, plan: EscrowPlan) -> None:
        assert plan.contract_id is not None
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
                static_summary=f"Milestone {milestone.milestone_ref} of {self.order.id}: "
                f"{format_cents(milestone.amount)} USD",
            )

    async def _notify_milestones(self, status: str) -> None:
        for milestone_id, state in self.milestones.items():
            if state not in ("RELEASED", "CANCELED"):
                await workflow.get_external_workflow_handle(milestone_id).signal(
                    "order_status", OrderStatusNote(status=status)
                )

    # milestone reports ---------------------------------------------------------------------

    @workflow.signal
    def milestone_settled(self, outcome: MilestoneOutcome) -> None:
        if outcome.milestone_id in self.milestones:
            self.milestones[outcome.milestone_id] = outcome.status
            workflow.set_current_details(self._summary())

    # disputes ------------------------------------------------------------------------------

    @workflow.update
    async def open_dispute(self, req: OpenDispute) -> OrderOutcome:
        async with self.lock:
            dispute = await db_step("dispute_open", req, DisputeInput)
            self._moved("DISPUTED")
            await self._notify_milestones("DISPUTED")
            self.dispute = await workflow.start_child_workflow(
                DisputeWorkflow.run,
                dispute,
                id=dispute.dispute_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=attributes(
                    "dispute", "OPEN", [self.order.buyer_id, self.order.seller_id], dispute.disputed_amount
                ),
                static_summary=f"Dispute {dispute.dispute_id} on order {self.order.id}: "
                f"{format_cents(dispute.disputed_amount)} USD, opened by {dispute.opened_by}",
            )
            return OrderOutcome(order_id=self.order.id, status=self.status)

    @open_dispute.validator
    def _check_open_dispute(self, req: OpenDispute) -> None:
        require(ORDER, "open_dispute", self.status, self.order.id)

    @workflow.signal
    async def dispute_settled(self, outcome: DisputeOutcome) -> None:
        """The dispute child settled the escrow and closed the order's record."""
        for milestone_id, state in self.milestones.items():
            if state != "RELEASED":
                self.milestones[milestone_id] = "CANCELED"
                await workflow.get_external_workflow_handle(milestone_id).signal(
                    "settled_by_order", MilestoneOutcome(milestone_id=milestone_id, status="CANCELED")
                )
        self._moved("CLOSED")

    # release / refund ------------------------------------------------------------------

    @workflow.update
    async def release(self, req: Settle) -> OrderOutcome:
        async with self.lock:
            if self.status != "IN_PROGRESS":  # the last milestone closed the order meanwhile
                return OrderOutcome(order_id=self.order.id, status=self.status)
            plan = await db_step(
                "settlement_requested", self._step(req.caller, reason=req.reason, operation="release"), EscrowPlan
            )
            self._moved("RELEASE_REQUESTED")
            await self._notify_milestones("RELEASE_REQUESTED")
            try:
                tx_hash = await self._pay_seller(plan, req.caller)
            except ActivityError as exc:
                await self._settlement_failed(req.caller, "release", business_cause(exc))
            await self._close_released(req.caller, reason=req.reason, tx_hash=tx_hash)
            return OrderOutcome(order_id=self.order.id, status=self.status)

    @release.validator
    def _check_release(self, req: Settle) -> None:
        require(ORDER, "release", self.status, self.order.id)
        incomplete = [m.milestone_ref for m in self.order.milestones if self.milestones.get(m.id) == "OPEN"]
        if incomplete:
            raise refusal(
                OfferhubError(
                    ErrorCode.INVALID_STATE,
                    "every unreleased milestone must be COMPLETED or APPROVED first",
                    {
                        "order_id": self.order.id,
                        "current_state": self.status,
                        "allowed_states": ["IN_PROGRESS"],
                        "incomplete_milestones": incomplete,
                    },
                )
            )

    def _escrow_call(self, plan: EscrowPlan) -> dict[str, Any]:
        """What every escrow_call of this order names: the order, its escrow and its parties."""
        assert plan.contract_id is not None
        return {
            "order_id": self.order.id,
            "escrow_id": plan.escrow_id,
            "contract_id": plan.contract_id,
            "escrow_type": plan.escrow_type,
            "buyer_id": self.order.buyer_id,
            "seller_id": self.order.seller_id,
        }

    async def _pay_seller(self, plan: EscrowPlan, caller: Caller) -> str | None:
        call = self._escrow_call(plan)
        if not self.order.milestones:
            for kind in ("complete", "approve", "release"):
                done = await provider_step(
                    "escrow_call", EscrowCallInput(kind=kind, milestone_index=0, **call), ChainDone
                )
            return done.tx_hash
        from models.orders_io import MilestoneStep

        tx_hash = None
        for milestone in self.order.milestones:
            if self.milestones[milestone.id] == "RELEASED":
                continue
            per = {**call, "milestone_id": milestone.id, "milestone_index": milestone.position}
            step = MilestoneStep(milestone_id=milestone.id, order_id=self.order.id, caller=caller)
            if self.milestones[milestone.id] != "APPROVED":
                await provider_step("escrow_call", EscrowCallInput(kind="approve", **per), ChainDone)
                await db_step("milestone_approved", step, OrderOutcome)
                self.milestones[milestone.id] = "APPROVED"
            done = await provider_step("escrow_call", EscrowCallInput(kind="release", **per), ChainDone)
            step.tx_hash = tx_hash = done.tx_hash
            await db_step("milestone_released", step, OrderOutcome)
            self.milestones[milestone.id] = "RELEASED"
            await workflow.get_external_workflow_handle(milestone.id).signal(
                "settled_by_order", MilestoneOutcome(milestone_id=milestone.id, status="RELEASED")
            )
        return tx_hash

    async def _close_released(self, caller: Caller, *, reason: str | None, tx_hash: str | None = None) -> None:
        outcome = await db_step("order_released", self._step(caller, reason="RELEASED", tx_hash=tx_hash), OrderOutcome)
        self._moved(outcome.status)

    @workflow.update
    async def refund(self, req: Settle) -> OrderOutcome:
        async with self.lock:
            plan = await db_step(
                "settlement_requested", self._step(req.caller, reason=req.reason, operation="refund"), EscrowPlan
            )
            self._moved("REFUND_REQUESTED")
            await self._notify_milestones("REFUND_REQUESTED")
            call = self._escrow_call(plan)
            tx_hash = None
            try:
                if not self.order.milestones:
                    await provider_step("escrow_call", EscrowCallInput(kind="dispute", **call), ChainDone)
                    remaining = plan.amount
                    done = await provider_step(
                        "escrow_call", EscrowCallInput(kind="resolve", to_buyer=remaining, **call), ChainDone
                    )
                    tx_hash = done.tx_hash
                for milestone in self.order.milestones:
                    if self.milestones[milestone.id] == "RELEASED":
                        continue
                    per = {**call, "milestone_id": milestone.id, "milestone_index": milestone.position}
                    await provider_step("escrow_call", EscrowCallInput(kind="dispute", **per), ChainDone)
                    done = await provider_step(
                        "escrow_call", EscrowCallInput(kind="resolve", to_buyer=milestone.amount, **per), ChainDone
                    )
                    tx_hash = done.tx_hash
            except ActivityError as exc:
                await self._settlement_failed(req.caller, "refund", business_cause(exc))
            outcome = await db_step("order_refunded", self._step(req.caller, tx_hash=tx_hash), OrderOutcome)
            for milestone_id, state in self.milestones.items():
                if state != "RELEASED":
                    self.milestones[milestone_id] = "CANCELED"
                    await workflow.get_external_workflow_handle(milestone_id).signal(
                        "settled_by_order", MilestoneOutcome(milestone_id=milestone_id, status="CANCELED")
                    )
            self._moved(outcome.status)
            return outcome

    @refund.validator
    def _check_refund(self, req: Settle) -> None:
        require(ORDER, "refund", self.status, self.order.id)

    async def _settlement_failed(self, caller: Caller, operation: str, cause: Exception) -> None:
        message = str(cause)
        code = getattr(cause, "type", None) or "PROVIDER_ERROR"
        outcome = await db_step(
            "settlement_failed",
            self._step(caller, operation=operation, error_code=code, error_message=message),
            OrderOutcome,
        )
        self._moved(outcome.status)
        await self._notify_milestones("IN_PROGRESS")
        raise refusal(
            OfferhubError(
                ErrorCode.PROVIDER_ERROR,
                f"the {operation} was refused by the provider",
                {
                    "provider": "trustless_work",
                    "provider_message": message,
                    "order_id": self.order.id,
                },
            )
        )
