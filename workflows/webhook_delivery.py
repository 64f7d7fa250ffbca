"""WebhookDeliveryWorkflow (id = whd_<event id>_<endpoint id>): one event to one endpoint.

Started by the outbox relay. Each attempt is one signed POST (`webhook_send`), then recorded
on the delivery row (`webhook_delivery_record`). A 2xx ends it SUCCEEDED; anything else waits
the next delay of the schedule (with jitter) and tries again, until the next try would fall
later than `max_age_seconds` after the first one: then FAILED. A 410 Gone, a deleted endpoint
or an event past its retention end it FAILED at once. Deleting the endpoint also cancels the
workflow (the API does): it records ENDPOINT_DELETED and ends without sending anything more.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models import steps
    from models.timefmt import iso
    from models.webhook_delivery import (
        ENDPOINT_DELETED,
        Attempt,
        AttemptOutcome,
        AttemptRecord,
        AttemptResult,
        DeliveryOutcome,
        DeliveryStart,
        DeliveryStatus,
        retry_delay,
    )
    from workflows.common import db_step, set_status
    from workflows.retry import FOREVER

# the send step itself (reading the endpoint, the event) retries on outages like any step;
# the POST's own failures are results, not errors, so they never retry inside one attempt
SEND_MARGIN = timedelta(seconds=20)


@workflow.defn(name="WebhookDeliveryWorkflow")
class WebhookDeliveryWorkflow:
    @workflow.init
    def __init__(self, req: DeliveryStart) -> None:
        self.req = req
        self.attempt = 0  # the number of the attempt in progress or last made
        self.status = DeliveryStatus.PENDING
        self.news = "waiting for its first attempt"

    @workflow.run
    async def run(self, req: DeliveryStart) -> DeliveryOutcome:
        deadline = workflow.now() + timedelta(seconds=req.max_age_seconds)
        try:
            while True:
                self.attempt += 1
                self._note(f"attempt {self.attempt} in progress")
                result = await workflow.execute_activity(
                    steps.WEBHOOK_SEND.name,
                    self._attempt(),
                    result_type=steps.WEBHOOK_SEND.output,
                    start_to_close_timeout=timedelta(seconds=req.timeout_seconds) + SEND_MARGIN,
                    retry_policy=FOREVER,
                )
                delay = retry_delay(req.retry_schedule_seconds, self.attempt, workflow.random().random())
                next_at = workflow.now() + delay
                status = self._status_after(result, next_at <= deadline)
                outcome = await self._record(result, status, next_at if status is DeliveryStatus.PENDING else None)
                if outcome.status is not DeliveryStatus.PENDING:
                    return self._finish(outcome, result)
                self._note(f"attempt {self.attempt} failed ({result.error}); next attempt at {iso(next_at)}")
                await workflow.sleep(delay)
        except asyncio.CancelledError:
            # the endpoint was deleted (the API cancels its pending deliveries): record, send nothing more
            stopped = AttemptResult(
                outcome=AttemptOutcome.ENDPOINT_DELETED, sent=False, at=workflow.now(), error=ENDPOINT_DELETED
            )
            outcome = await self._record(stopped, DeliveryStatus.FAILED, None)
            return self._finish(outcome, stopped)

    def _attempt(self) -> Attempt:
        r = self.req
        return Attempt(
            delivery_id=r.delivery_id,
            event_id=r.event_id,
            endpoint_id=r.endpoint_id,
            attempt=self.attempt,
            timeout_seconds=r.timeout_seconds,
        )

    @staticmethod
    def _status_after(result: AttemptResult, may_retry: bool) -> DeliveryStatus:
        if result.outcome is AttemptOutcome.SUCCEEDED:
            return DeliveryStatus.SUCCEEDED
        if result.outcome is AttemptOutcome.RETRY and may_retry:
            return DeliveryStatus.PENDING
        return DeliveryStatus.FAILED  # 410, endpoint deleted, event gone, or retries exhausted

    async def _record(self, result: AttemptResult, status: DeliveryStatus, next_at: datetime | None) -> DeliveryOutcome:
        r = self.req
        return await db_step(
            steps.WEBHOOK_DELIVERY_RECORD,
            AttemptRecord(
                delivery_id=r.delivery_id,
                endpoint_id=r.endpoint_id,
                event_id=r.event_id,
                event_type=r.event_type,
                attempt=self.attempt,
                result=result,
                status=status,
                next_attempt_at=next_at,
            ),
        )

    def _finish(self, outcome: DeliveryOutcome, result: AttemptResult) -> DeliveryOutcome:
        self.status = outcome.status
        ending = "delivered" if outcome.status is DeliveryStatus.SUCCEEDED else f"gave up ({result.error})"
        self._note(f"{ending} after {outcome.attempts} attempt(s)")
        return outcome

    def _note(self, news: str) -> None:
        self.news = news
        set_status(self.status.value, self._summary)

    def _summary(self) -> str:
        r = self.req
        return f"Webhook {r.event_type} {r.event_id} -> {r.endpoint_id}: {self.status.value}; {self.news}"

    @workflow.query
    def state(self) -> DeliveryOutcome:
        return DeliveryOutcome(delivery_id=self.req.delivery_id, status=self.status, attempts=self.attempt)
