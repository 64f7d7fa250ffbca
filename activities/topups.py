"""Top-up effects. Crypto: a recorded on-chain deposit becomes TOPUP_SUCCEEDED with its
DEPOSIT entry, event and audit entry, in one transaction, exactly once. Airtm: the top-up is
recorded, its pay-in created (code = top-up ID, so a retry finds it), read and canceled at
Airtm, and every state the pay-in reveals is applied by one compare-and-set step that
credits `topup:<id>:credit` once when it reaches TOPUP_SUCCEEDED (domain.md §4.2)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio import activity

from activities.context import WorkerContext, provider_errors
from activities.ledger import apply_effect
from activities.records import compare_and_set
from models import steps
from models.audit import audit_entry
from models.events import new_event
from models.ledger import LedgerEffect
from models.money import format_cents, json_number_to_cents
from models.orders_io import Caller
from models.states import TOPUP, TopupStatus
from models.tables import Topup, User
from models.timefmt import iso, utcnow
from models.topups_io import PayinRef, PayinSnapshot, TopUpMove, TopUpOutcome, TopUpRecord
from models.workflow_io import TopUpInput, TopUpResult
from providers.airtm.client import AirtmClient, payin_body
from providers.airtm.status import topup_state
from providers.errors import ProviderNotFound

log = logging.getLogger("offerhub.topups")
T = TopupStatus
REASON_CODE = re.compile(r"^[A-Z0-9_]{2,64}$")


class TopupActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self._airtm: AirtmClient | None = None

    @property
    def airtm(self) -> AirtmClient:
        """The worker's Airtm client, built on first use (crypto-mode workers never need one)."""
        if self._airtm is None:
            settings = self.ctx.settings
            assert settings.airtm_api_key is not None and settings.airtm_api_secret is not None
            self._airtm = AirtmClient(
                settings.airtm_url,
                settings.airtm_api_key.get_secret_value(),
                settings.airtm_api_secret.get_secret_value(),
                timeout=settings.airtm_timeout_seconds,
                rate_per_second=settings.airtm_rate_limit_per_second,
            )
        return self._airtm

    # crypto ---------------------------------------------------------------------------------

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

    # airtm: records (local activities) ----------------------------------------------------

    @activity.defn(name=steps.TOPUP_CREATE.name)
    async def create(self, req: TopUpRecord) -> TopUpOutcome:
        """Record TOPUP_CREATED with `topup.created` (once: a retry finds the row and answers it)."""
        topup, settings = req.topup, self.ctx.settings
        assert topup.user_id is not None and topup.amount is not None
        now = utcnow()
        async with self.ctx.sessions() as session, session.begin():
            inserted = await session.execute(
                insert(Topup)
                .values(
                    id=topup.topup_id,
                    user_id=topup.user_id,
                    provider="airtm",
                    status=T.TOPUP_CREATED.value,
                    amount=topup.amount,
                    currency="USD",
                    description=topup.description,
                    metadata=topup.metadata,
                    return_url=topup.return_url,
                    cancel_url=topup.cancel_url,
                    expires_at=now + timedelta(seconds=settings.topup_expiry_seconds),
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(col(Topup.id))
            )
            if inserted.first() is not None:
                actor = _actor(req.caller, topup.topup_id)
                session.add(
                    new_event(
                        type="topup.created",
                        resource=("topup", topup.topup_id),
                        user_ids=[topup.user_id],
                        actor=actor,
                        correlation_id=topup.topup_id,
                        request_id=req.caller.request_id,
                        payload={
                            "topup_id": topup.topup_id,
                            "user_id": topup.user_id,
                            "provider": "airtm",
                            "amount": format_cents(topup.amount),
                            "currency": "USD",
                            "status": T.TOPUP_CREATED.value,
                            "stellar_transaction_hash": None,
                        },
                    )
                )
                session.add(
                    _audit(
                        req.caller,
                        actor,
                        topup.topup_id,
                        topup.user_id,
                        "TOPUP_CREATED",
                        before=None,
                        after={"status": T.TOPUP_CREATED.value, "amount": format_cents(topup.amount)},
                    )
                )
            row = await session.get(Topup, topup.topup_id)
            assert row is not None
        return TopUpOutcome(
            topup_id=row.id,
            status=row.status,
            expires_at=row.expires_at,
            poll_interval_seconds=float(settings.topup_poll_interval_seconds),
        )

    @activity.defn(name=steps.TOPUP_APPLY.name)
    async def apply(self, move: TopUpMove) -> TopUpOutcome:
        """Move the top-up where the pay-in (or the workflow) says, if that is forward from where
        it is: compare-and-set, the credit on TOPUP_SUCCEEDED, its event and audit entry, in one
        transaction. Stale or backward news is a no-op; news contradicting a terminal state is
        audited as FAILURE (domain.md §4.0)."""
        workflow_id = activity.info().workflow_id or move.topup_id
        actor = _actor(move.caller, workflow_id)
        payin = move.payin
        target = move.target or (payin.state if payin else None)
        async with self.ctx.sessions() as session, session.begin():
            topup = await session.get(Topup, move.topup_id, with_for_update=True)
            assert topup is not None and topup.provider == "airtm"
            current = topup.status
            if target is None:
                log.warning(
                    "unknown Airtm pay-in status: no transition",
                    extra={"topup_id": topup.id, "payin_status": payin.status if payin else None},
                )
                return _outcome(topup)
            if current == target or not TOPUP.can_transition(current, target):
                if current in TOPUP.terminal and target != current:
                    session.add(
                        _audit(
                            move.caller,
                            actor,
                            topup.id,
                            topup.user_id,
                            target,
                            before={"status": current},
                            after={"status": target, "airtm_status": payin.status if payin else None},
                            result="FAILURE",
                            error={"code": "TRANSITION_CONFLICT", "message": f"Airtm says {target}; kept {current}"},
                        )
                    )
                return _outcome(topup)
            credited = await self._move(session, topup, move, target, actor, workflow_id)
            return _outcome(topup, credited=credited)

    async def _move(
        self,
        session: AsyncSession,
        topup: Topup,
        move: TopUpMove,
        target: str,
        actor: tuple[str, str | None],
        workflow_id: str,
    ) -> bool:
        payin, current, now = move.payin, topup.status, utcnow()
        values: dict[str, Any] = {}
        if payin is not None:
            values["airtm_payin_id"] = payin.payin_id
            if payin.confirmation_uri and topup.confirmation_uri is None:
                values["confirmation_uri"] = payin.confirmation_uri
        if target in TOPUP.terminal:
            values["completed_at"] = now
        failure_code = failure_reason = None
        if target in (T.TOPUP_FAILED, T.TOPUP_CANCELED):
            failure_code, failure_reason = _failure(move, target)
            values["failure_code"], values["failure_reason"] = failure_code, failure_reason
        requested = topup.amount
        if target == T.TOPUP_SUCCEEDED:
            assert payin is not None, "only a pay-in read as CONFIRMED credits a top-up"
            values["amount"] = payin.amount  # the confirmed amount is the one credited
        await compare_and_set(
            session, Topup, topup.id, field="status", expected=(current,), target=target, values=values
        )
        payload: dict[str, Any] = {"topup_id": topup.id, "user_id": topup.user_id, "status": target}
        audit_after: dict[str, Any] = {"status": target}
        if target == T.TOPUP_AWAITING_USER_CONFIRMATION:
            payload |= {
                "confirmation_uri": topup.confirmation_uri,
                "expires_at": iso(topup.expires_at),
                "airtm_payin_id": topup.airtm_payin_id,
            }
            audit_after["airtm_payin_id"] = topup.airtm_payin_id
        elif target == T.TOPUP_PROCESSING:
            payload["airtm_payin_id"] = topup.airtm_payin_id
        elif target == T.TOPUP_SUCCEEDED:
            assert payin is not None
            await self._credit(session, topup, payin, requested, move.caller, actor, workflow_id)
            payload |= {
                "provider": "airtm",
                "amount": format_cents(topup.amount),
                "currency": "USD",
                "airtm_payin_id": topup.airtm_payin_id,
                "stellar_transaction_hash": None,
            }
            audit_after |= {"amount": format_cents(topup.amount), "payer_airtm_user_id": payin.payer_airtm_user_id}
        else:
            payload |= {"failure_code": failure_code, "failure_reason": failure_reason}
            audit_after |= {"failure_code": failure_code}
            if target == T.TOPUP_CANCELED:
                payload["canceled_by"] = move.canceled_by or "provider"
        session.add(
            new_event(
                type=EVENT_OF[target],
                resource=("topup", topup.id),
                user_ids=[topup.user_id],
                actor=actor,
                correlation_id=topup.id,
                request_id=move.caller.request_id,
                payload=payload,
            )
        )
        session.add(
            _audit(move.caller, actor, topup.id, topup.user_id, target, before={"status": current}, after=audit_after)
        )
        return target == T.TOPUP_SUCCEEDED

    async def _credit(
        self,
        session: AsyncSession,
        topup: Topup,
        payin: PayinSnapshot,
        requested: int,
        caller: Caller,
        actor: tuple[str, str | None],
        workflow_id: str,
    ) -> None:
        """The DEPOSIT of the confirmed amount, once (`topup:<id>:credit`); a different amount
        than requested, or a payer other than the linked account, is audited and logged."""
        effect = LedgerEffect.airtm_deposit(
            topup_id=topup.id, user_id=topup.user_id, amount=payin.amount, workflow_id=workflow_id
        )
        await apply_effect(session, effect, actor=actor)
        if payin.amount != requested:
            log.error("Airtm confirmed another amount than requested", extra={"topup_id": topup.id})
            session.add(
                _audit(
                    caller,
                    actor,
                    topup.id,
                    topup.user_id,
                    "TOPUP_AMOUNT_ADJUSTED",
                    before={"amount": format_cents(requested)},
                    after={"amount": format_cents(payin.amount)},
                )
            )
        user = await session.get(User, topup.user_id)
        if payin.payer_airtm_user_id and user is not None and user.airtm_user_id != payin.payer_airtm_user_id:
            log.error("a top-up was paid by another Airtm account than the linked one", extra={"topup_id": topup.id})

    # airtm: provider calls (regular activities) -------------------------------------------

    @activity.defn(name=steps.TOPUP_START.name)
    @provider_errors
    async def start(self, ref: PayinRef) -> PayinSnapshot:
        """Create the pay-in with code = the top-up ID (found, not duplicated, on a retry)."""
        async with self.ctx.sessions() as session:
            topup = await session.get(Topup, ref.topup_id)
        assert topup is not None
        description = topup.description or f"Top-up {topup.id}"
        body = payin_body(topup.id, topup.amount, description, self.ctx.settings.public_base_url)
        return self._snapshot(await self.airtm.create_payin_once(body))

    @activity.defn(name=steps.TOPUP_READ.name)
    @provider_errors
    async def read(self, ref: PayinRef) -> PayinSnapshot:
        if ref.payin_id is not None:
            return self._snapshot(await self.airtm.payin(ref.payin_id))
        found = await self.airtm.payin_by_code(ref.topup_id)
        if found is None:
            raise ProviderNotFound(f"no pay-in with code {ref.topup_id}", provider="airtm", operation="payin_read")
        return self._snapshot(found)

    @activity.defn(name=steps.TOPUP_CANCEL.name)
    @provider_errors
    async def cancel(self, ref: PayinRef) -> PayinSnapshot:
        """Cancel at Airtm; when it can no longer be canceled the pay-in as read decides."""
        assert ref.payin_id is not None
        return self._snapshot(await self.airtm.cancel_payin(ref.payin_id))

    def _snapshot(self, payin: dict[str, Any]) -> PayinSnapshot:
        status = str(payin.get("status", "")).upper()
        payin_id = str(payin["id"])
        return PayinSnapshot(
            payin_id=payin_id,
            status=status,
            state=topup_state(status),
            amount=json_number_to_cents(payin.get("amount", 0), max_decimals=2),
            failure_reason=payin.get("failureReason"),
            payer_airtm_user_id=payin.get("airtmUserId"),
            confirmation_uri=f"{self.ctx.settings.airtm_checkout_url}/payin/{payin_id}",
        )


EVENT_OF: dict[str, str] = {
    T.TOPUP_AWAITING_USER_CONFIRMATION: "topup.confirmation_required",
    T.TOPUP_PROCESSING: "topup.processing",
    T.TOPUP_SUCCEEDED: "topup.succeeded",
    T.TOPUP_FAILED: "topup.failed",
    T.TOPUP_CANCELED: "topup.canceled",
}


def _actor(caller: Caller, workflow_id: str) -> tuple[str, str | None]:
    """The caller for API-driven steps; the workflow itself for timers and its own reads."""
    return caller.actor if caller.actor_type != "system" else ("system", caller.actor_id or workflow_id)


def _failure(move: TopUpMove, target: str) -> tuple[str, str | None]:
    """Airtm's reason code when it gives one, else EXPIRED / CANCELED / PROVIDER_REJECTED (§4.2)."""
    reason = move.failure_reason or (move.payin.failure_reason if move.payin else None)
    if move.failure_code is not None:
        return move.failure_code, reason
    if reason and REASON_CODE.fullmatch(reason):
        return reason, reason
    return ("CANCELED" if target == T.TOPUP_CANCELED else "PROVIDER_REJECTED"), reason


def _outcome(topup: Topup, *, credited: bool = False) -> TopUpOutcome:
    return TopUpOutcome(topup_id=topup.id, status=topup.status, credited=credited, expires_at=topup.expires_at)


def _audit(
    caller: Caller,
    actor: tuple[str, str | None],
    topup_id: str,
    user_id: str,
    action: str,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    result: str = "SUCCESS",
    error: dict[str, Any] | None = None,
) -> Any:
    return audit_entry(
        action=action,
        resource_type="topup",
        resource_id=topup_id,
        user_id=user_id,
        actor=actor,
        result=result,
        before=before,
        after=after,
        error=error,
        request_id=caller.request_id,
        idempotency_key=caller.idempotency_key,
        correlation_id=topup_id,
    )
