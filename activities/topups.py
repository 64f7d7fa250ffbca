"""Top-up effects: a recorded crypto deposit becomes TOPUP_SUCCEEDED with its DEPOSIT entry,
event and audit entry, in one transaction, exactly once."""

from __future__ import annotations

from temporalio import activity

from activities.context import WorkerContext
from activities.ledger import apply_effect
from activities.records import compare_and_set
from models import steps
from models.audit import audit_entry
from models.events import new_event
from models.ledger import LedgerEffect
from models.money import format_cents
from models.tables import Topup
from models.timefmt import utcnow
from models.workflow_io import TopUpInput, TopUpResult


class TopupActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    @activity.defn(name=steps.TOPUP_CREDIT_CRYPTO.name)
    async def credit_crypto(self, req: TopUpInput) -> TopUpResult:
        workflow_id = activity.info().workflow_id or req.topup_id
        actor = ("system", workflow_id)
        async with self.ctx.sessions() as session, session.begin():
            topup = await session.get(Topup, req.topup_id, with_for_update=True)
            assert topup is not None and topup.provider == "crypto" and topup.stellar_operation_id is not None
            if topup.status == "TOPUP_SUCCEEDED":
                return TopUpResult(topup_id=topup.id, status=topup.status, credited=False)
            now = utcnow()
            await compare_and_set(
                session,
                Topup,
                topup.id,
                field="status",
                expected=("TOPUP_CREATED",),
                target="TOPUP_SUCCEEDED",
                values={"completed_at": now},
            )
            await apply_effect(
                session,
                LedgerEffect.crypto_deposit(
                    topup_id=topup.id,
                    operation_id=topup.stellar_operation_id,
                    user_id=topup.user_id,
                    amount=topup.amount,
                    workflow_id=workflow_id,
                ),
                actor=actor,
            )
            session.add(
                new_event(
                    type="topup.succeeded",
                    resource=("topup", topup.id),
                    user_ids=[topup.user_id],
                    actor=actor,
                    correlation_id=topup.id,
                    payload={
                        "topup_id": topup.id,
                        "user_id": topup.user_id,
                        "provider": "crypto",
                        "amount": format_cents(topup.amount),
                        "currency": "USD",
                        "airtm_payin_id": None,
                        "stellar_transaction_hash": topup.stellar_transaction_hash,
                        "status": "TOPUP_SUCCEEDED",
                    },
                )
            )
            session.add(
                audit_entry(
                    action="TOPUP_SUCCEEDED",
                    resource_type="topup",
                    resource_id=topup.id,
                    user_id=topup.user_id,
                    actor=actor,
                    correlation_id=topup.id,
                    before={"status": "TOPUP_CREATED"},
                    after={"status": "TOPUP_SUCCEEDED", "amount": format_cents(topup.amount)},
                )
            )
        return TopUpResult(topup_id=req.topup_id, status="TOPUP_SUCCEEDED", credited=True)
