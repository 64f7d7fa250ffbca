"""TopUpWorkflow (id = topup_…): the top-up machine of domain.md §4.2.

Crypto: a recorded on-chain deposit is credited exactly once (TOPUP_CREATED -> TOPUP_SUCCEEDED)
and the workflow ends.

Airtm: the `created` Update records the top-up and creates its pay-in (code = top-up ID), which
makes it TOPUP_AWAITING_USER_CONFIRMATION with the checkout URL. From then on the workflow only
acts on the pay-in as it reads it from Airtm: on an `airtm_payin_event` Signal (a webhook wakes
it up; its body is never trusted), on `refresh` (API and the checkout callback), and every
poll interval, so a lost webhook only delays. TOPUP_PROCESSING, then TOPUP_SUCCEEDED credits
`topup:<id>:credit` once; TOPUP_FAILED / TOPUP_CANCELED credit nothing. `cancel` (API) and
the expiry timer cancel the pay-in at Airtm first; if Airtm says the user confirmed meanwhile,
the top-up carries on. Actions run one at a time under a lock and are validated again once
they hold it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.errors import ErrorCode, OfferhubError
    from models.money import format_cents
    from models.orders_io import Caller
    from models.search import STATUS
    from models.states import TOPUP, TopupStatus
    from models.topups_io import (
        PayinRef,
        PayinSnapshot,
        TopUpCancel,
        TopUpCreated,
        TopUpMove,
        TopUpOutcome,
        TopUpRecord,
        TopUpRefresh,
        TopUpStart,
        TopUpState,
    )
    from models.webhooks_io import AIRTM_PAYIN_SIGNAL, ProviderEvent
    from models.workflow_io import TopUpInput, TopUpResult
    from workflows.common import HEARTBEAT_TIMEOUT, business_cause, db_step, provider_step, refusal, require, set_status

T = TopupStatus
NEW = "NEW"  # before the `created` Update recorded the top-up
UNCONFIRMED = (T.TOPUP_CREATED, T.TOPUP_AWAITING_USER_CONFIRMATION)  # what expiry and cancel apply to
# A read answers an operator or an API caller: a few attempts, then the caller hears of the outage
# (the record is unchanged; polling carries on). Movements (create, cancel) retry forever.
READ_RETRIES = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=4),
    maximum_attempts=3,
    non_retryable_error_types=["ProviderRejected", "ProviderNotFound", "UnexpectedProviderData"],
)


@workflow.defn(name="TopUpWorkflow")
class TopUpWorkflow:
    @workflow.init
    def __init__(self, req: TopUpStart) -> None:
        self.req = req
        self.state = req.resume or TopUpState(status=NEW)
        self.lock = asyncio.Lock()
        self.nudged = False  # an Airtm Signal arrived: read the pay-in
        self.news: str | None = None

    @workflow.run
    async def run(self, req: TopUpStart) -> TopUpResult:
        if req.provider == "crypto":
            return await self._credit_crypto(req)
        await workflow.wait_condition(lambda: self.state.status != NEW)
        while not self._settled():
            wait = self._next_wakeup()
            if wait > 0:
                with contextlib.suppress(TimeoutError):  # the poll (or expiry) is due
                    await workflow.wait_condition(lambda: self.nudged or self._settled(), timeout=wait)
            async with self.lock:
                if self._settled():
                    break
                if self._expired():
                    await self._expire()
                else:
                    caller = Caller(actor_type="webhook", actor_id="airtm") if self.nudged else self._system()
                    self.nudged = False
                    await self._poll(caller)
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self.req.model_copy(update={"resume": self.state}))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return TopUpResult(
            topup_id=req.topup_id, status=self.state.status, credited=self.state.status == T.TOPUP_SUCCEEDED
        )

    async def _credit_crypto(self, req: TopUpStart) -> TopUpResult:
        """Unchanged since the first release (its recorded histories replay against it)."""
        workflow.set_current_details(f"Crediting on-chain deposit {req.topup_id} to the ledger")
        result = await db_step(steps.TOPUP_CREDIT_CRYPTO, TopUpInput(topup_id=req.topup_id, provider=req.provider))
        workflow.upsert_search_attributes([STATUS.value_set(result.status)])
        workflow.set_current_details(f"Top-up {req.topup_id} {result.status}")
        return result

    # state ---------------------------------------------------------------------------------

    def _details(self) -> str:
        r, s = self.req, self.state
        head = f"Top-up {r.topup_id}: {format_cents(r.amount or 0)} USD to {r.user_id} via Airtm; status {s.status}"
        if s.status in TOPUP.terminal:
            return head
        waits = f"polling pay-in {s.payin_id} every {s.poll_interval_seconds:.0f} s"
        if s.expires_at is not None and s.status in UNCONFIRMED:
            waits += f", expires {s.expires_at.isoformat()}"
        return f"{head}; {waits}" + (f"; last Airtm event {self.news}" if self.news else "")

    def _moved(self, outcome: TopUpOutcome) -> None:
        self.state.status = outcome.status
        if outcome.expires_at is not None:
            self.state.expires_at = outcome.expires_at
        set_status(outcome.status, self._details)

    def _settled(self) -> bool:
        return self.state.status in TOPUP.terminal

    def _expired(self) -> bool:
        s = self.state
        return s.status in UNCONFIRMED and s.expires_at is not None and workflow.now() >= s.expires_at

    def _next_wakeup(self) -> float:
        s = self.state
        wait = s.poll_interval_seconds
        if s.status in UNCONFIRMED and s.expires_at is not None:
            wait = min(wait, (s.expires_at - workflow.now()).total_seconds())
        return max(wait, 0.0)

    def _system(self) -> Caller:
        return Caller(actor_type="system", actor_id=self.req.topup_id)

    def _ref(self) -> PayinRef:
        return PayinRef(topup_id=self.req.topup_id, payin_id=self.state.payin_id)

    async def _apply(self, move: TopUpMove) -> TopUpOutcome:
        outcome = await db_step(steps.TOPUP_APPLY, move)
        if move.payin is not None:
            self.state.payin_id = move.payin.payin_id
        self._moved(outcome)
        return outcome

    def _outcome(self) -> TopUpOutcome:
        s = self.state
        return TopUpOutcome(topup_id=self.req.topup_id, status=s.status, expires_at=s.expires_at)

    def _provider_error(self, message: str, cause: ApplicationError) -> ApplicationError:
        if cause.type == "ProviderTimeout":
            details: dict[str, object] = {"provider": "airtm", "timeout_ms": 30000, "topup_id": self.req.topup_id}
            return refusal(OfferhubError(ErrorCode.PROVIDER_TIMEOUT, message, details))
        details = {"provider": "airtm", "provider_message": cause.message, "topup_id": self.req.topup_id}
        return refusal(OfferhubError(ErrorCode.PROVIDER_ERROR, message, details))

    # reading the pay-in --------------------------------------------------------------------

    async def _read(self) -> PayinSnapshot:
        result: PayinSnapshot = await workflow.execute_activity(
            steps.TOPUP_READ.name,
            self._ref(),
            result_type=steps.TOPUP_READ.output,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=READ_RETRIES,
        )
        return result

    async def _follow(self, payin: PayinSnapshot, caller: Caller) -> None:
        """Apply what the pay-in says (a no-op when it says nothing new or something stale)."""
        await self._apply(TopUpMove(topup_id=self.req.topup_id, caller=caller, payin=payin))

    async def _poll(self, caller: Caller) -> None:
        try:
            payin = await self._read()
        except ActivityError as exc:
            workflow.set_current_details(f"{self._details()}; last read failed: {business_cause(exc).message}")
            return
        await self._follow(payin, caller)

    async def _expire(self) -> None:
        """Read first; a pay-in still unconfirmed is canceled at Airtm, the top-up with EXPIRED."""
        await self._poll(self._system())
        if self.state.status not in UNCONFIRMED:
            return
        move = TopUpMove(
            topup_id=self.req.topup_id, caller=self._system(), failure_code="EXPIRED", canceled_by="expiry"
        )
        if self.state.payin_id is None:
            await self._apply(move.model_copy(update={"target": T.TOPUP_CANCELED}))
            return
        try:
            payin = await provider_step(steps.TOPUP_CANCEL, self._ref())
        except ActivityError as exc:
            workflow.set_current_details(f"{self._details()}; expiry cancel refused: {business_cause(exc).message}")
            self.state.expires_at = None  # refused for good: polling follows the pay-in from here
            return
        if payin.state == T.TOPUP_CANCELED:
            await self._apply(move.model_copy(update={"payin": payin}))
        else:  # the user confirmed at that moment: the top-up carries on
            await self._follow(payin, self._system())
        if self.state.status in UNCONFIRMED:
            self.state.expires_at = None

    # created ---------------------------------------------------------------------------------

    @workflow.update
    async def created(self, req: TopUpCreated) -> TopUpOutcome:
        async with self.lock:
            if self.state.status == NEW:
                outcome = await db_step(steps.TOPUP_CREATE, TopUpRecord(topup=self.req, caller=req.caller))
                if outcome.poll_interval_seconds is not None:
                    self.state.poll_interval_seconds = outcome.poll_interval_seconds
                self._moved(outcome)
            if self.state.status == T.TOPUP_CREATED:
                await self._start_payin(req.caller)
            return self._outcome()

    @created.validator
    def _check_created(self, req: TopUpCreated) -> None:
        if self.req.provider != "airtm":
            raise ApplicationError("crypto top-ups are created by the deposit monitor", type="INVALID_STATE")

    async def _start_payin(self, caller: Caller) -> None:
        try:
            payin = await provider_step(steps.TOPUP_START, self._ref())
        except ActivityError as exc:
            cause = business_cause(exc)
            await self._apply(
                TopUpMove(
                    topup_id=self.req.topup_id,
                    caller=caller,
                    target=T.TOPUP_FAILED,
                    failure_code="PROVIDER_REJECTED",
                    failure_reason=cause.message[:500],
                )
            )
            raise self._provider_error("Airtm refused the pay-in", cause) from None
        move = TopUpMove(topup_id=self.req.topup_id, caller=caller, payin=payin)
        await self._apply(move.model_copy(update={"target": T.TOPUP_AWAITING_USER_CONFIRMATION}))
        if payin.state not in (None, T.TOPUP_AWAITING_USER_CONFIRMATION):  # found already moving (a retry)
            await self._apply(move)

    # refresh / cancel ------------------------------------------------------------------------

    @workflow.update
    async def refresh(self, req: TopUpRefresh) -> TopUpOutcome:
        async with self.lock:
            self._check_refresh(req)
            if self._settled() or self.state.payin_id is None:
                return self._outcome()
            try:
                payin = await self._read()
            except ActivityError as exc:
                raise self._provider_error("Airtm could not be read", business_cause(exc)) from None
            await self._follow(payin, req.caller)
            return self._outcome()

    @refresh.validator
    def _check_refresh(self, req: TopUpRefresh) -> None:
        if self.req.provider != "airtm":
            return
        require(TOPUP, "refresh", self.state.status if self.state.status != NEW else T.TOPUP_CREATED, self.req.topup_id)

    @workflow.update
    async def cancel(self, req: TopUpCancel) -> TopUpOutcome:
        async with self.lock:
            self._check_cancel(req)
            move = TopUpMove(
                topup_id=self.req.topup_id,
                caller=req.caller,
                failure_code="CANCELED",
                failure_reason=req.reason,
                canceled_by="api",
            )
            if self.state.payin_id is None:
                await self._apply(move.model_copy(update={"target": T.TOPUP_CANCELED}))
                return self._outcome()
            try:
                payin = await provider_step(steps.TOPUP_CANCEL, self._ref())
            except ActivityError as exc:
                raise self._provider_error("Airtm refused to cancel the pay-in", business_cause(exc)) from None
            if payin.state == T.TOPUP_CANCELED:
                await self._apply(move.model_copy(update={"payin": payin}))
                return self._outcome()
            await self._follow(payin, req.caller)  # the user confirmed meanwhile: the top-up proceeds
            raise refusal(
                OfferhubError(
                    ErrorCode.PROVIDER_ERROR,
                    "Airtm refused the cancellation: the user confirmed the pay-in meanwhile",
                    {
                        "provider": "airtm",
                        "provider_message": f"pay-in is {payin.status}",
                        "topup_id": self.req.topup_id,
                    },
                )
            )

    @cancel.validator
    def _check_cancel(self, req: TopUpCancel) -> None:
        current = T.TOPUP_SUCCEEDED if self.req.provider != "airtm" else self.state.status
        require(TOPUP, "cancel", current, self.req.topup_id)

    # provider news ---------------------------------------------------------------------------

    @workflow.signal(name=AIRTM_PAYIN_SIGNAL)
    def airtm_payin_event(self, event: ProviderEvent) -> None:
        """An Airtm webhook about this pay-in: wake up and read the pay-in (the body is not trusted)."""
        self.news = f"{event.type} ({event.event_id})"
        if not self._settled():
            self.nudged = True
