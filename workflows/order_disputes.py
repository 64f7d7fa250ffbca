"""OrderWorkflow's disputes (domain.md §4.6): opening one freezes the order and starts its
DisputeWorkflow child, which settles the escrow and tells the order when it closed it."""

from __future__ import annotations

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.disputes_io import DisputeOutcome, OpenDispute
    from models.money import format_cents
    from models.orders_io import Caller, OrderOutcome
    from models.search import attributes
    from models.states import DisputeStatus, MilestoneStatus, OrderStatus
    from workflows.common import db_step
    from workflows.dispute import DisputeWorkflow
    from workflows.order_base import OrderBase


class OrderDisputes(OrderBase):
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
