"""WithdrawalWorkflow (id = wd_…): the withdrawal state machine of domain.md §4.7.

created (hold) -> commit -> pending -> completed, or failed / canceled with the hold returned.
The crypto rail pays with one USDC payment from the user's wallet (signed and confirmed by
the ChainSubmitter); the Airtm rail creates an uncommitted payout at creation, commits it,
then follows it by webhook Signal, `refresh` and polling. An uncommitted withdrawal is
canceled by a timer at `expires_at`. Every Update's validator refuses an illegal action
before anything is recorded; handlers run one at a time under a lock and validate again once
they hold it (api.md §1.3).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.errors import ErrorCode, OfferhubError
    from models.money import format_cents
    from models.orders_io import Caller
    from models.states import WITHDRAWAL, WithdrawalStatus
    from models.webhooks_io import AIRTM_PAYOUT_SIGNAL, ProviderEvent
    from models.withdrawals_io import (
        AIRTM_RECIPIENT_REASONS,
        IN_FLIGHT,
        CreateWithdrawal,
        DestinationCheck,
        PayoutApplied,
        PayoutRef,
        PayoutState,
        WithdrawalAction,
        WithdrawalCreated,
        WithdrawalInput,
        WithdrawalOutcome,
        WithdrawalStep,
    )
    from workflows.common import (
        HEARTBEAT_TIMEOUT,
        business_cause,
        db_step,
        provider_step,
        refusal,
        require,
        set_status,
    )

W = WithdrawalStatus
NEW = "NEW"  # before the `created` Update ran
NOT_CREATED = "NOT_CREATED"  # the workflow's own end state when creation was refused (nothing recorded)
WEBHOOK = Caller(actor_type="webhook", actor_id="airtm")
# A read of the payout answers a caller (refresh) or only looks (Signal, poll): a few attempts,
# then the caller hears of the outage and the record is unchanged (api.md §9.5); the next poll
# reads again. Money movements (create, commit, cancel) retry forever.
READ_RETRIES = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=4),
    maximum_attempts=3,
    non_retryable_error_types=["ProviderRejected", "ProviderNotFound", "UnexpectedProviderData"],
)


@workflow.defn(name="WithdrawalWorkflow")
class WithdrawalWorkflow:
    @workflow.init
    def __init__(self, wd: WithdrawalInput) -> None:
        self.wd = wd
        self.status = NEW
        self.lock = asyncio.Lock()
        self.expires_at: datetime | None = None
        self.news = 0  # Airtm Signals received
        self.read_news = 0  # ... of which a provider read has followed
        self.last_news: str | None = None

    @workflow.run
    async def run(self, wd: WithdrawalInput) -> WithdrawalOutcome:
        workflow.set_current_details(self._summary())
        await workflow.wait_condition(lambda: self.status != NEW)
        while not self._finished():
            if self.status == W.WITHDRAWAL_CREATED:
                await self._until_committed_or_expired()
            elif self.wd.rail == "airtm" and self.status in IN_FLIGHT:
                await self._follow_payout()
            else:  # a crypto payment: its commit handler drives it to the end
                await self._until_moved_from(self.status)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._outcome()

    async def _until_moved_from(self, status: str) -> None:
        await workflow.wait_condition(lambda: self.status != status)

    # state ---------------------------------------------------------------------------------

    def _finished(self) -> bool:
        return self.status == NOT_CREATED or self.status in WITHDRAWAL.terminal

    def _summary(self) -> str:
        wd = self.wd
        text = f"Withdrawal {wd.id}: {format_cents(wd.amount)} USD {wd.user_id} -> {wd.destination_type}; {self.status}"
        if self.status == W.WITHDRAWAL_CREATED and self.expires_at is not None:
            text += f"; waiting for commit until {self.expires_at.isoformat()}"
        elif self.status in IN_FLIGHT:
            text += "; waiting for the payout to complete" + (
                f" (polled every {wd.poll_interval_seconds} s)" if wd.rail == "airtm" else ""
            )
        if self.last_news:
            text += f"; last Airtm event {self.last_news}"
        return text

    def _moved(self, status: str) -> None:
        self.status = status
        set_status(status, self._summary)

    def _outcome(self) -> WithdrawalOutcome:
        return WithdrawalOutcome(
            withdrawal_id=self.wd.id,
            status=self.status,
            expires_at=self.expires_at.isoformat() if self.expires_at and self.status == W.WITHDRAWAL_CREATED else None,
        )

    def _step(self, caller: Caller, **kw: object) -> WithdrawalStep:
        return WithdrawalStep(withdrawal_id=self.wd.id, caller=caller, **kw)

    def _system(self) -> Caller:
        return Caller(actor_id=self.wd.id)

    # created -------------------------------------------------------------------------------

    @workflow.update
    async def created(self, req: WithdrawalCreated) -> WithdrawalOutcome:
        async with self.lock:
            if self.status != NEW:
                return self._outcome()
            wd = self.wd
            try:
                if wd.rail == "crypto":
                    await provider_step(
                        steps.WITHDRAWAL_CHECK_DESTINATION,
                        DestinationCheck(
                            withdrawal_id=wd.id, user_id=wd.user_id, destination=wd.destination_ref, memo=wd.memo
                        ),
                    )
                outcome = await db_step(steps.WITHDRAWAL_CREATE, CreateWithdrawal(withdrawal=wd, caller=req.caller))
            except (ActivityError, ApplicationError) as exc:
                # refused before anything was recorded (destination, funds): the workflow ends
                self._moved(NOT_CREATED)
                raise business_cause(exc) from None
            assert outcome.expires_at is not None
            self.expires_at = datetime.fromisoformat(outcome.expires_at)
            self._moved(outcome.status)
            if wd.rail == "airtm":
                await self._provider_call(req.caller, steps.WITHDRAWAL_PAYOUT_CREATE, "the payout was refused")
            if wd.commit and self.status == W.WITHDRAWAL_CREATED:
                await self._commit(req.caller)
            return self._outcome()

    # commit --------------------------------------------------------------------------------

    @workflow.update
    async def commit(self, req: WithdrawalAction) -> WithdrawalOutcome:
        async with self.lock:
            self._check_commit(req)
            await self._commit(req.caller)
            return self._outcome()

    @commit.validator
    def _check_commit(self, req: WithdrawalAction) -> None:
        if self.status != W.WITHDRAWAL_CREATED:
            raise refusal(
                OfferhubError(
                    ErrorCode.WITHDRAWAL_NOT_COMMITTABLE,
                    f"withdrawal {self.wd.id} is {self.status}: only WITHDRAWAL_CREATED can be committed",
                    {"withdrawal_id": self.wd.id, "current_status": self.status},
                )
            )

    async def _commit(self, caller: Caller) -> None:
        outcome = await db_step(steps.WITHDRAWAL_COMMIT, self._step(caller))
        self._moved(outcome.status)
        if self.wd.rail == "crypto":
            await self._provider_call(caller, steps.WITHDRAWAL_PAY_CRYPTO, "the Stellar payment failed")
        else:
            await self._provider_call(caller, steps.WITHDRAWAL_PAYOUT_COMMIT, "the payout commit was refused")

    async def _provider_call(self, caller: Caller, step: steps.Step[PayoutRef, PayoutState], message: str) -> None:
        """Run a payout step and record what it revealed; a refusal for good fails the withdrawal
        and returns the hold (compensation), then answers 502 PROVIDER_ERROR
        (422 AIRTM_USER_INVALID when Airtm refused the recipient)."""
        provider = "stellar" if self.wd.rail == "crypto" else "airtm"
        try:
            state = await provider_step(step, PayoutRef(withdrawal_id=self.wd.id))
        except ActivityError as exc:
            cause = business_cause(exc)
            details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
            state = PayoutState(
                withdrawal_id=self.wd.id,
                target=W.WITHDRAWAL_FAILED,
                failure_code=str(details.get("provider_code") or "PROVIDER_REJECTED"),
                failure_reason=cause.message,
            )
        await self._apply(caller, state)
        reason = AIRTM_RECIPIENT_REASONS.get(state.failure_code or "") if provider == "airtm" else None
        if self.status == W.WITHDRAWAL_FAILED and reason is not None:
            # the recipient's account cannot receive: the withdrawal failed, the hold is back
            raise refusal(
                OfferhubError(
                    ErrorCode.AIRTM_USER_INVALID,
                    "The linked Airtm account cannot receive the payout",
                    {"reason": reason, "provider_code": state.failure_code, "withdrawal_id": self.wd.id},
                )
            )
        if self.status == W.WITHDRAWAL_FAILED:
            raise refusal(
                OfferhubError(
                    ErrorCode.PROVIDER_ERROR,
                    message,
                    {
                        "provider": provider,
                        "provider_message": state.failure_reason or state.failure_code,
                        "withdrawal_id": self.wd.id,
                    },
                )
            )

    async def _apply(self, caller: Caller, state: PayoutState) -> None:
        outcome = await db_step(
            steps.WITHDRAWAL_APPLY, PayoutApplied(withdrawal_id=self.wd.id, caller=caller, state=state)
        )
        self._moved(outcome.status)

    # refresh, Airtm news, polling ----------------------------------------------------------

    @workflow.update
    async def refresh(self, req: WithdrawalAction) -> WithdrawalOutcome:
        async with self.lock:
            try:
                await self._read_payout(req.caller)
            except ActivityError as exc:  # Airtm unreachable: 502/504, the withdrawal unchanged
                raise self._read_failure(business_cause(exc)) from None
            return self._outcome()

    def _read_failure(self, cause: ApplicationError) -> ApplicationError:
        if cause.type == "ProviderTimeout":
            details: dict[str, object] = {"provider": "airtm", "timeout_ms": 30000, "withdrawal_id": self.wd.id}
            return refusal(OfferhubError(ErrorCode.PROVIDER_TIMEOUT, "Airtm did not answer in time", details))
        details = {"provider": "airtm", "provider_message": cause.message, "withdrawal_id": self.wd.id}
        return refusal(OfferhubError(ErrorCode.PROVIDER_ERROR, "Airtm could not be read", details))

    @refresh.validator
    def _check_refresh(self, req: WithdrawalAction) -> None:
        require(WITHDRAWAL, "refresh", self.status, self.wd.id)

    async def _read_payout(self, caller: Caller) -> None:
        """Re-read the Airtm payout and apply the state it reveals (terminal ones are final).
        A crypto payment is confirmed by its commit handler, which holds the lock meanwhile."""
        if self.wd.rail != "airtm" or self._finished():
            return
        state: PayoutState = await workflow.execute_activity(
            steps.WITHDRAWAL_PAYOUT_READ.name,
            PayoutRef(withdrawal_id=self.wd.id),
            result_type=steps.WITHDRAWAL_PAYOUT_READ.output,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=READ_RETRIES,
        )
        await self._apply(caller, state)

    async def _look(self, caller: Caller) -> None:
        """A read nobody waits for (Signal, poll): an outage only delays it to the next poll."""
        try:
            await self._read_payout(caller)
        except ActivityError as exc:
            workflow.set_current_details(f"{self._summary()}; last read failed: {business_cause(exc).message}")

    @workflow.signal(name=AIRTM_PAYOUT_SIGNAL)
    def airtm_payout_event(self, event: ProviderEvent) -> None:
        """An Airtm webhook about this payout: never trusted, only a reason to read the payout
        (the run loop does it under the lock; a repeated or stale event reads the same state)."""
        self.news += 1
        self.last_news = f"{event.type} ({event.event_id})"
        workflow.set_current_details(self._summary())

    async def _follow_payout(self) -> None:
        status = self.status
        with contextlib.suppress(TimeoutError):  # a timeout is the poll
            await workflow.wait_condition(
                lambda: self.news > self.read_news or self.status != status,
                timeout=timedelta(seconds=self.wd.poll_interval_seconds),
            )
        async with self.lock:
            signalled = self.news > self.read_news
            self.read_news = self.news
            if self.status in IN_FLIGHT:
                await self._look(WEBHOOK if signalled else self._system())

    # cancel and expiry ---------------------------------------------------------------------

    @workflow.update
    async def cancel(self, req: WithdrawalAction) -> WithdrawalOutcome:
        async with self.lock:
            self._check_cancel(req)
            await self._cancel(req.caller, req.reason, by="api")
            return self._outcome()

    @cancel.validator
    def _check_cancel(self, req: WithdrawalAction) -> None:
        require(WITHDRAWAL, "cancel", self.status, self.wd.id)

    async def _until_committed_or_expired(self) -> None:
        assert self.expires_at is not None
        remaining = (self.expires_at - workflow.now()).total_seconds()
        try:
            await workflow.wait_condition(
                lambda: self.status != W.WITHDRAWAL_CREATED or self.news > self.read_news,
                timeout=timedelta(seconds=max(remaining, 0.5)),
            )
        except TimeoutError:
            async with self.lock:
                if self.status == W.WITHDRAWAL_CREATED:
                    await self._cancel(self._system(), None, by="expiry")
            return
        if self.news > self.read_news:
            async with self.lock:
                self.read_news = self.news
                if self.status == W.WITHDRAWAL_CREATED:
                    await self._look(WEBHOOK)

    async def _cancel(self, caller: Caller, reason: str | None, *, by: str) -> None:
        """Cancel the payout at Airtm first (if it moved on meanwhile, its state decides), then
        return the hold."""
        if self.wd.rail == "airtm":
            state = await provider_step(steps.WITHDRAWAL_PAYOUT_CANCEL, PayoutRef(withdrawal_id=self.wd.id))
            if state.target != W.WITHDRAWAL_CANCELED:
                await self._apply(caller, state)
                if self.status != W.WITHDRAWAL_CANCELED:
                    raise refusal(
                        OfferhubError(
                            ErrorCode.PROVIDER_ERROR,
                            "Airtm did not cancel the payout",
                            {
                                "provider": "airtm",
                                "provider_message": f"payout is {state.provider_status}",
                                "withdrawal_id": self.wd.id,
                            },
                        )
                    )
                return
        code = "EXPIRED" if by == "expiry" else "CANCELED"
        outcome = await db_step(
            steps.WITHDRAWAL_CANCEL,
            self._step(caller, failure_code=code, failure_reason=reason, canceled_by=by),
        )
        self._moved(outcome.status)
