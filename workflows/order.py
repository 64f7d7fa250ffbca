"""OrderWorkflow (id = ord_…): the order state machine of domain.md §4.3, as Updates.

created -> reserve -> create_escrow -> fund_escrow -> (milestones | release | refund) -> CLOSED,
or cancel before escrow. Each Update's validator refuses an illegal transition before
anything is recorded; handlers run one action at a time under a lock and validate again
once they hold it, so the later of two concurrent actions is judged against the state the
earlier produced (api.md §1.3). Milestone payments run here too, under the same lock.

A chain step that fails for good is compensated and recorded (`last_error`); retrying the
action runs the next *round* of its chain steps under new operation keys, skipping those
that already landed (models/operation_keys.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.disputes_io import DisputeOutcome, OpenDispute
    from models.errors import ErrorCode, OfferhubError
    from models.money import format_cents
    from models.orders_io import (
        Caller,
        Cancel,
        CreateOrder,
        EscrowAction,
        EscrowCallInput,
        EscrowPlan,
        MilestoneInput,
        MilestoneInputs,
        MilestoneOutcome,
        MilestonePaid,
        MilestonePayment,
        MilestoneStep,
        OrderCreated,
        OrderInput,
        OrderOutcome,
        OrderStatusNote,
        OrderStep,
        Reserve,
        Settle,
    )
    from models.search import attributes
    from models.states import ORDER, DisputeStatus, MilestoneStatus, OrderStatus
    from models.webhooks_io import TRUSTLESS_WORK_SIGNAL, ProviderEvent
    from workflows.common import business_cause, db_step, provider_step, refusal, set_status
    from workflows.dispute import DisputeWorkflow
    from workflows.milestone import MilestoneWorkflow


NOT_CREATED = "NOT_CREATED"  # the workflow's own end state when `order_create` was refused


@workflow.defn(name="OrderWorkflow")
class OrderWorkflow:
    @workflow.init
    def __init__(self, order: OrderInput) -> None:
        self.order = order
        self.status = "NEW"
        self.plan: EscrowPlan | None = None
        self.milestones = {m.id: MilestoneStatus.OPEN.value for m in order.milestones}
        self.lock = asyncio.Lock()
        self.dispute: workflow.ChildWorkflowHandle[Any, Any] | None = None
        self.chain_round = 1  # grows each time a chain action failed for good (the next try is a new round)
        self.provider_news: str | None = None

    @workflow.run
    async def run(self, order: OrderInput) -> OrderOutcome:
        workflow.set_current_details(self._summary())
        while self.status not in (OrderStatus.CLOSED, NOT_CREATED):
            await workflow.wait_condition(
                lambda: self.status in (OrderStatus.CLOSED, NOT_CREATED) or self._all_milestones_paid()
            )
            if self.status == OrderStatus.IN_PROGRESS:
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
            self.status == OrderStatus.IN_PROGRESS
            and bool(self.milestones)
            and all(s == MilestoneStatus.RELEASED for s in self.milestones.values())
        )

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

    # created ---------------------------------------------------------------------------

    @workflow.update
    async def created(self, req: OrderCreated) -> OrderOutcome:
        async with self.lock:
            if self.status == "NEW":
                try:
                    outcome = await db_step(steps.ORDER_CREATE, CreateOrder(order=self.order, caller=req.caller))
                except (ActivityError, ApplicationError) as exc:
                    # never recorded (its client_order_ref is taken): nothing to run, the workflow ends
                    self._moved(NOT_CREATED)
                    raise business_cause(exc) from None
                self._moved(outcome.status)
        return OrderOutcome(order_id=self.order.id, status=self.status)

    # reserve / cancel ------------------------------------------------------------------

    @workflow.update
    async def reserve(self, req: Reserve) -> OrderOutcome:
        async with self.lock:
            self._check_reserve(req)
            try:
                outcome = await db_step(steps.ORDER_RESERVE, self._step(req.caller))
            except ActivityError as exc:
                raise business_cause(exc) from None
            self._moved(outcome.status)
            return outcome

    @reserve.validator
    def _check_reserve(self, req: Reserve) -> None:
        self._require("reserve")
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
            self._check_cancel(req)
            outcome = await db_step(steps.ORDER_CANCEL, self._step(req.caller, reason=req.reason))
            self._moved(outcome.status)
            return outcome

    @cancel.validator
    def _check_cancel(self, req: Cancel) -> None:
        self._require("cancel")

    # escrow ------------------------------------------------------------------------------

    @workflow.update
    async def create_escrow(self, req: EscrowAction) -> OrderOutcome:
        async with self.lock:
            self._check_create_escrow(req)
            try:
                plan = await db_step(steps.ESCROW_PREPARE, self._step(req.caller))
            except ActivityError as exc:
                raise business_cause(exc) from None
            self._moved(OrderStatus.ESCROW_CREATING)
            try:
                done = await provider_step(steps.ESCROW_DEPLOY, plan)
            except ActivityError as exc:
                cause = business_cause(exc)
                outcome = await db_step(
                    steps.ESCROW_DEPLOY_FAILED,
                    self._step(req.caller, error_code=cause.type, error_message=cause.message),
                )
                self._moved(outcome.status)
                raise self._provider_error("the escrow deployment was refused", cause) from None
            done.escrow_id = plan.escrow_id
            self.plan = await db_step(steps.ESCROW_DEPLOYED, done)
            self._moved(OrderStatus.ESCROW_FUNDING)
            return OrderOutcome(order_id=self.order.id, status=self.status)

    @create_escrow.validator
    def _check_create_escrow(self, req: EscrowAction) -> None:
        self._require("create_escrow")

    @workflow.update
    async def fund_escrow(self, req: EscrowAction) -> OrderOutcome:
        async with self.lock:
            self._check_fund_escrow(req)
            plan = await db_step(steps.ESCROW_FUNDING_STARTED, self._step(req.caller))
            plan.round = self.chain_round
            try:
                done = await provider_step(steps.ESCROW_FUND, plan)
            except ActivityError as exc:
                cause = business_cause(exc)
                await db_step(
                    steps.ESCROW_FUNDING_FAILED,
                    self._step(req.caller, error_code=cause.type, error_message=cause.message),
                )
                self.chain_round += 1  # funding may be retried: as a new round of the chain step
                raise refusal(
                    OfferhubError(
                        ErrorCode.ESCROW_FUNDING_FAILED,
                        "the escrow funding was refused",
                        {"order_id": self.order.id, "provider_message": cause.message},
                    )
                ) from None
            done.escrow_id = plan.escrow_id
            outcome = await db_step(steps.ESCROW_FUNDED, done)
            self.plan = plan
            self._moved(outcome.status)
            await self._start_milestones(plan)
            return outcome

    @fund_escrow.validator
    def _check_fund_escrow(self, req: EscrowAction) -> None:
        self._require("fund_escrow")

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

    @workflow.signal(name=TRUSTLESS_WORK_SIGNAL)
    def trustless_work_event(self, event: ProviderEvent) -> None:
        """A Trustless Work webhook about this escrow: the workflow confirms its own steps by
        reading the chain, so the news is only shown to operators (reconciliation compares)."""
        self.provider_news = f"{event.type} ({event.event_id})"
        workflow.set_current_details(f"{self._summary()}; last Trustless Work event {self.provider_news}")

    # milestones ----------------------------------------------------------------------------

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

    # disputes ------------------------------------------------------------------------------

    @workflow.update
    async def open_dispute(self, req: OpenDispute) -> OrderOutcome:
        async with self.lock:
            self._check_open_dispute(req)
            dispute = await db_step(steps.DISPUTE_OPEN, req)
            dispute.first_round = self.chain_round
            self._moved(OrderStatus.DISPUTED)
            await self._notify_milestones(OrderStatus.DISPUTED)
            self.dispute = await workflow.start_child_workflow(
                DisputeWorkflow.run,
                dispute,
                id=dispute.dispute_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=attributes(
                    "dispute", DisputeStatus.OPEN, [self.order.buyer_id, self.order.seller_id], dispute.disputed_amount
                ),
                static_summary=f"Dispute {dispute.dispute_id} on order {self.order.id}: "
                f"{format_cents(dispute.disputed_amount)} USD, opened by {dispute.opened_by}",
            )
            return OrderOutcome(order_id=self.order.id, status=self.status)

    @open_dispute.validator
    def _check_open_dispute(self, req: OpenDispute) -> None:
        self._require("open_dispute")

    @workflow.signal
    async def dispute_settled(self, outcome: DisputeOutcome) -> None:
        """The dispute child settled the escrow and closed the order's record. Believed only
        for this order's own dispute while DISPUTED, and only once the record says CLOSED
        (the settlement closes it in its own transaction): a forged Signal changes nothing."""
        if self.status != OrderStatus.DISPUTED or self.dispute is None or outcome.dispute_id != self.dispute.id:
            self._ignored("dispute_settled", outcome.dispute_id)
            return
        recorded = await db_step(steps.ORDER_RECORD, self._step(Caller(actor_id=self.order.id)))
        if recorded.status != OrderStatus.CLOSED:
            self._ignored("dispute_settled", outcome.dispute_id)
            return
        for milestone_id, state in list(self.milestones.items()):
            if state not in (MilestoneStatus.RELEASED, MilestoneStatus.CANCELED):
                await self._settle_milestone(milestone_id, MilestoneStatus.CANCELED)
        self._moved(OrderStatus.CLOSED)

    # release / refund ------------------------------------------------------------------

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

    async def _pay_seller(self, plan: EscrowPlan, caller: Caller) -> str | None:
        if not self.order.milestones:
            call = self._escrow_call(plan)
            for kind in ("complete", "approve", "release"):
                done = await provider_step(steps.ESCROW_CALL, EscrowCallInput(kind=kind, milestone_index=0, **call))
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
            await provider_step(steps.ESCROW_CALL, EscrowCallInput(kind="dispute", **call))
            done = await provider_step(steps.ESCROW_CALL, EscrowCallInput(kind="resolve", to_buyer=plan.amount, **call))
            return done.tx_hash
        tx_hash = None
        for milestone in self.order.milestones:
            if self.milestones[milestone.id] in (MilestoneStatus.RELEASED, MilestoneStatus.CANCELED):
                continue
            per = {**call, "milestone_id": milestone.id, "milestone_index": milestone.position}
            await provider_step(steps.ESCROW_CALL, EscrowCallInput(kind="dispute", **per))
            done = await provider_step(
                steps.ESCROW_CALL, EscrowCallInput(kind="resolve", to_buyer=milestone.amount, **per)
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

    async def _step_failed(self, caller: Caller, operation: str, cause: ApplicationError) -> None:
        """A step that failed for good without changing the order's status: `last_error` and audit."""
        await db_step(
            steps.ORDER_STEP_FAILED,
            self._step(
                caller, operation=operation, error_code=cause.type or "PROVIDER_ERROR", error_message=cause.message
            ),
        )
        self.chain_round += 1

    def _provider_error(self, message: str, cause: ApplicationError) -> ApplicationError:
        return refusal(
            OfferhubError(
                ErrorCode.PROVIDER_ERROR,
                message,
                {"provider": "trustless_work", "provider_message": cause.message, "order_id": self.order.id},
            )
        )
