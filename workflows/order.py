"""OrderWorkflow (id = ord_…): the order state machine of domain.md §4.3, as Updates.

created -> reserve -> create_escrow -> fund_escrow -> (milestones | release | refund) -> CLOSED,
or cancel before escrow. Each Update's validator refuses an illegal transition before
anything is recorded; handlers run one action at a time under a lock and validate again
once they hold it, so the later of two concurrent actions is judged against the state the
earlier produced (api.md §1.3). Milestone payments run here too, under the same lock.

A chain step that fails for good is compensated and recorded (`last_error`); retrying the
action runs the next *round* of its chain steps under new operation keys, skipping those
that already landed (models/operation_keys.py).

This file holds the order's start, reservation and escrow; the rest is one file per job:
workflows/order_base.py (state, refusals, escrow calls), order_milestones.py,
order_settlement.py (release, refund) and order_disputes.py.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.errors import ErrorCode, OfferhubError
    from models.money import format_cents
    from models.orders_io import (
        Caller,
        Cancel,
        CreateOrder,
        EscrowAction,
        EscrowPlan,
        OrderCreated,
        OrderInput,
        OrderOutcome,
        Reserve,
    )
    from models.states import MilestoneStatus, OrderStatus
    from models.webhooks_io import TRUSTLESS_WORK_SIGNAL, ProviderEvent
    from workflows.common import business_cause, db_step, provider_step, refusal
    from workflows.order_disputes import OrderDisputes
    from workflows.order_settlement import OrderSettlement


NOT_CREATED = "NOT_CREATED"  # the workflow's own end state when `order_create` was refused


@workflow.defn(name="OrderWorkflow")
class OrderWorkflow(OrderSettlement, OrderDisputes):
    @workflow.init
    def __init__(self, order: OrderInput) -> None:
        self.order = order
        self.status = "NEW"
        self.plan: EscrowPlan | None = None
        self.milestones = {m.id: MilestoneStatus.OPEN.value for m in order.milestones}
        self.lock = asyncio.Lock()
        self.dispute = None
        self.chain_round = 1
        self.provider_news = None

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

    @workflow.signal(name=TRUSTLESS_WORK_SIGNAL)
    def trustless_work_event(self, event: ProviderEvent) -> None:
        """A Trustless Work webhook about this escrow: the workflow confirms its own steps by
        reading the chain, so the news is only shown to operators (reconciliation compares)."""
        self.provider_news = f"{event.type} ({event.event_id})"
        workflow.set_current_details(f"{self._summary()}; last Trustless Work event {self.provider_news}")
