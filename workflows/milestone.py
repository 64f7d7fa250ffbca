"""MilestoneWorkflow (child of the order, id = ms_…): the seller completes, the buyer approves,
that milestone's amount is released on chain and credited to the seller (domain.md §4.5).

The payment itself runs in the parent order (Signal `pay_milestone`, answered by
`payment_done`) under the order's lock, so a release, a refund or a dispute of the order
is never half-way through while this milestone is paid. Every status this workflow reaches
is reported to the order, so an order-level release knows which milestones are complete.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.errors import ErrorCode, OfferhubError
    from models.orders_io import (
        Caller,
        EscrowCallInput,
        MilestoneAction,
        MilestoneInputs,
        MilestoneOutcome,
        MilestonePaid,
        MilestonePayment,
        MilestoneStep,
        OrderStatusNote,
        OrderStep,
    )
    from models.states import MILESTONE, MilestoneStatus, OrderStatus
    from models.webhooks_io import TRUSTLESS_WORK_SIGNAL, ProviderEvent
    from workflows.common import business_cause, db_step, provider_step, refusal, require, set_status


KNOWN_CODES = frozenset(code.value for code in ErrorCode)
ORDER_STATES = frozenset(status.value for status in OrderStatus)
SETTLED = (MilestoneStatus.RELEASED, MilestoneStatus.CANCELED)


@workflow.defn(name="MilestoneWorkflow")
class MilestoneWorkflow:
    @workflow.init
    def __init__(self, inputs: MilestoneInputs) -> None:
        self.inputs = inputs
        self.status: str = MilestoneStatus.OPEN
        self.order_state = inputs.order_status
        self.lock = asyncio.Lock()
        self.payment: MilestonePaid | None = None
        self.awaiting_payment = False
        self.chain_round = 1  # a completion retried after it failed for good is a new round
        self.provider_news: str | None = None

    @workflow.run
    async def run(self, inputs: MilestoneInputs) -> MilestoneOutcome:
        set_status(self.status, self._details)
        await workflow.wait_condition(lambda: self.status in (MilestoneStatus.RELEASED, MilestoneStatus.CANCELED))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return MilestoneOutcome(milestone_id=inputs.milestone.id, status=self.status)

    def _details(self) -> str:
        m = self.inputs.milestone
        return f"Milestone {m.milestone_ref} of {self.inputs.order_id}: {self.status} (order {self.order_state})"

    def _moved(self, status: str) -> None:
        self.status = status
        set_status(status, self._details)

    async def _report(self) -> None:
        await workflow.get_external_workflow_handle(self.inputs.order_id).signal(
            "milestone_settled", MilestoneOutcome(milestone_id=self.inputs.milestone.id, status=self.status)
        )

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
            round=self.chain_round,
        )

    def _step(self, caller: Caller, **kw: object) -> MilestoneStep:
        return MilestoneStep(milestone_id=self.inputs.milestone.id, order_id=self.inputs.order_id, caller=caller, **kw)

    def _require_order_in_progress(self) -> None:
        if self.order_state != OrderStatus.IN_PROGRESS:
            raise refusal(
                OfferhubError(
                    ErrorCode.INVALID_STATE,
                    f"the order is {self.order_state}: milestones are frozen",
                    {
                        "order_id": self.inputs.order_id,
                        "milestone_id": self.inputs.milestone.id,
                        "current_state": self.order_state,
                        "allowed_states": [OrderStatus.IN_PROGRESS],
                    },
                )
            )

    def _outcome(self) -> MilestoneOutcome:
        return MilestoneOutcome(milestone_id=self.inputs.milestone.id, status=self.status)

    @workflow.update
    async def complete(self, req: MilestoneAction) -> MilestoneOutcome:
        async with self.lock:
            self._check_complete(req)
            try:
                await provider_step(steps.ESCROW_CALL, self._call("complete", req.note or ""))
            except ActivityError as exc:
                cause = business_cause(exc)
                operation = f"milestone_complete:{self.inputs.milestone.milestone_ref}"
                await db_step(
                    steps.ORDER_STEP_FAILED,
                    OrderStep(
                        order_id=self.inputs.order_id,
                        caller=req.caller,
                        operation=operation,
                        error_code=cause.type,
                        error_message=cause.message,
                    ),
                )
                self.chain_round += 1
                raise refusal(
                    OfferhubError(
                        ErrorCode.PROVIDER_ERROR,
                        "the provider refused the milestone step",
                        {
                            "provider": "trustless_work",
                            "provider_message": cause.message,
                            "order_id": self.inputs.order_id,
                        },
                    )
                ) from None
            await db_step(steps.MILESTONE_COMPLETED, self._step(req.caller, note=req.note))
            self._moved(MilestoneStatus.COMPLETED)
            await self._report()
            return self._outcome()

    @complete.validator
    def _check_complete(self, req: MilestoneAction) -> None:
        self._require_order_in_progress()
        require(MILESTONE, "complete", self.status, self.inputs.milestone.id)

    @workflow.update
    async def approve(self, req: MilestoneAction) -> MilestoneOutcome:
        async with self.lock:
            self._check_approve(req)
            self.payment = None
            self.awaiting_payment = True
            await workflow.get_external_workflow_handle(self.inputs.order_id).signal(
                "pay_milestone", MilestonePayment(milestone_id=self.inputs.milestone.id, caller=req.caller)
            )
            await workflow.wait_condition(lambda: self.payment is not None)
            self.awaiting_payment = False
            paid = self.payment
            assert paid is not None
            if self.status not in (MilestoneStatus.RELEASED, MilestoneStatus.CANCELED):
                self._moved(paid.status)
            if paid.error_code is not None:
                code = ErrorCode(paid.error_code) if paid.error_code in KNOWN_CODES else ErrorCode.INTERNAL_ERROR
                raise refusal(OfferhubError(code, paid.error_message or "", paid.error_details))
            return self._outcome()

    @approve.validator
    def _check_approve(self, req: MilestoneAction) -> None:
        self._require_order_in_progress()
        require(MILESTONE, "approve", self.status, self.inputs.milestone.id)

    @workflow.signal
    def payment_done(self, paid: MilestonePaid) -> None:
        """The order's answer to `pay_milestone`; taken only while one is awaited."""
        if self.awaiting_payment and paid.milestone_id == self.inputs.milestone.id:
            self.payment = paid

    @workflow.signal(name=TRUSTLESS_WORK_SIGNAL)
    def trustless_work_event(self, event: ProviderEvent) -> None:
        """A Trustless Work webhook about this escrow: the workflow confirms its own steps by
        reading the chain, so the news is only shown to operators (reconciliation compares)."""
        self.provider_news = f"{event.type} ({event.event_id})"
        workflow.set_current_details(f"{self._details()}; last Trustless Work event {self.provider_news}")

    @workflow.signal
    def order_status(self, note: OrderStatusNote) -> None:
        if note.status not in ORDER_STATES:
            return
        self.order_state = note.status
        workflow.set_current_details(self._details())

    @workflow.signal
    async def settled_by_order(self, outcome: MilestoneOutcome) -> None:
        """The order paid or canceled this milestone itself (release, refund, dispute).
        Believed once the record agrees (the order writes it first): a forged Signal cannot
        end a milestone that is still to be paid."""
        if outcome.milestone_id != self.inputs.milestone.id or outcome.status not in SETTLED:
            return
        recorded = await db_step(steps.MILESTONE_RECORD, self._step(Caller(actor_id=self.inputs.order_id)))
        if recorded.status == outcome.status:
            self._moved(outcome.status)
