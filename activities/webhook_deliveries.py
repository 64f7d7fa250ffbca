"""Outbound webhook delivery (api.md §11.6): one signed POST per attempt, and the attempt
recorded on its `webhook_deliveries` row.

`webhook_send` decides nothing about retries: it reads the endpoint (no longer ACTIVE: nothing
is sent), the event (as `GET /events` shows it) and the secrets (opened here, never in workflow
history), POSTs once without following redirects, and reports what happened. The workflow
chooses the next step and `webhook_delivery_record` writes it."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from temporalio import activity

from activities.context import WorkerContext
from models import steps
from models.events import event_view
from models.tables import Event, WebhookDelivery, WebhookEndpoint
from models.timefmt import iso, utcnow
from models.webhook_delivery import (
    USER_AGENT,
    Attempt,
    AttemptOutcome,
    AttemptRecord,
    AttemptResult,
    DeliveryOutcome,
    DeliveryStatus,
    EndpointStatus,
    secret_context,
    signature_header,
    url_problem,
)

log = logging.getLogger("offerhub.webhooks")
ATTEMPT_LOG_KEEP = 50
ERROR_CHARS = 500


class WebhookDeliveryActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            # redirects are not followed (api.md §11.6); the timeout is set per request
            self._http = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        return self._http

    @activity.defn(name=steps.WEBHOOK_SEND.name)
    async def send(self, req: Attempt) -> AttemptResult:
        async with self.ctx.sessions() as session:
            endpoint = await session.get(WebhookEndpoint, req.endpoint_id)
            event = await session.get(Event, req.event_id)
        now = utcnow()
        if endpoint is None or endpoint.status != EndpointStatus.ACTIVE:
            return AttemptResult(outcome=AttemptOutcome.ENDPOINT_DELETED, sent=False, at=now, error="ENDPOINT_DELETED")
        if event is None:
            return AttemptResult(outcome=AttemptOutcome.EVENT_MISSING, sent=False, at=now, error="EVENT_NOT_RETAINED")
        problem = url_problem(endpoint.url, self.ctx.settings.offerhub_environment)
        if problem is not None:  # stored before a rule tightened (e.g. an http URL, now in live)
            return AttemptResult(outcome=AttemptOutcome.GONE, sent=False, at=now, error=f"URL_REFUSED: {problem}")
        body = json.dumps(event_view(event), separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "OfferHub-Event-Id": event.id,
            "OfferHub-Event-Type": event.type,
            "OfferHub-Delivery-Id": req.delivery_id,
            "OfferHub-Delivery-Attempt": str(req.attempt),
            "OfferHub-Signature": signature_header(self._secrets(endpoint, now), timestamp, body),
        }
        started = time.monotonic()
        try:
            response = await self.http.post(endpoint.url, content=body, headers=headers, timeout=req.timeout_seconds)
        except httpx.TimeoutException:
            return self._failed(now, started, f"TIMEOUT: no answer within {req.timeout_seconds} s")
        except httpx.HTTPError as exc:
            return self._failed(now, started, f"CONNECTION_ERROR: {type(exc).__name__}: {exc}"[:ERROR_CHARS])
        duration_ms = int((time.monotonic() - started) * 1000)
        status = response.status_code
        if 200 <= status < 300:
            return AttemptResult(
                outcome=AttemptOutcome.SUCCEEDED, sent=True, at=now, response_status=status, duration_ms=duration_ms
            )
        return AttemptResult(
            outcome=AttemptOutcome.GONE if status == 410 else AttemptOutcome.RETRY,
            sent=True,
            at=now,
            response_status=status,
            duration_ms=duration_ms,
            error=f"HTTP_{status}",
        )

    def _secrets(self, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
        """The current secret, and the previous one while its rotation overlap lasts."""
        context = secret_context(endpoint.id)
        sealed = [endpoint.secret_encrypted]
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret_encrypted and expires is not None and expires > now:
            sealed.append(endpoint.previous_secret_encrypted)
        return [self.ctx.vault.open_bytes(s, context).decode() for s in sealed]

    @staticmethod
    def _failed(at: datetime, started: float, error: str) -> AttemptResult:
        duration_ms = int((time.monotonic() - started) * 1000)
        return AttemptResult(outcome=AttemptOutcome.RETRY, sent=True, at=at, duration_ms=duration_ms, error=error)

    @activity.defn(name=steps.WEBHOOK_DELIVERY_RECORD.name)
    async def record(self, req: AttemptRecord) -> DeliveryOutcome:
        """Write the attempt on the delivery row (created by the relay; upserted here in case the
        relay's transaction had not committed yet). Re-running it for the same attempt changes
        nothing more: the log keeps one entry per attempt number."""
        result = req.result
        now = utcnow()
        entry: dict[str, Any] = {
            "attempt": req.attempt,
            "at": iso(result.at),
            "response_status": result.response_status,
            "duration_ms": result.duration_ms,
            "error": result.error,
        }
        values: dict[str, Any] = {
            "status": req.status.value,
            "next_attempt_at": req.next_attempt_at,
            "updated_at": now,
        }
        if req.status is DeliveryStatus.SUCCEEDED:
            values["succeeded_at"] = result.at
        if result.sent:
            values |= {
                "attempts": req.attempt,
                "last_attempt_at": result.at,
                "last_response_status": result.response_status,
                "last_error": result.error,
            }
        elif result.error is not None:
            values["last_error"] = result.error
        table = WebhookDelivery.__table__  # type: ignore[attr-defined]
        new_log = _appended_log(entry, req.attempt) if result.sent else table.c.attempt_log
        initial = {
            "id": req.delivery_id,
            "endpoint_id": req.endpoint_id,
            "event_id": req.event_id,
            "event_type": req.event_type,
            "created_at": now,
            **values,
            "attempt_log": [entry] if result.sent else [],
        }
        statement = (
            insert(table)
            .values(**initial)
            .on_conflict_do_update(
                index_elements=["id"],
                set_={**values, "attempt_log": new_log},
                # a finished delivery stays finished (e.g. FAILED by its endpoint's deletion)
                where=table.c.status == DeliveryStatus.PENDING.value,
            )
            .returning(table.c.status, table.c.attempts)
        )
        async with self.ctx.sessions() as session, session.begin():
            row = (await session.execute(statement)).first()
            if row is None:
                row = (
                    await session.execute(select(table.c.status, table.c.attempts).where(table.c.id == req.delivery_id))
                ).one()
        log.info(
            "webhook attempt recorded",
            extra={
                "delivery_id": req.delivery_id,
                "attempt": req.attempt,
                "status": req.status.value,
                "response_status": result.response_status,
                "duration_ms": result.duration_ms,
                "error": result.error,
            },
        )
        return DeliveryOutcome(delivery_id=req.delivery_id, status=DeliveryStatus(row.status), attempts=row.attempts)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()


def _appended_log(entry: dict[str, Any], attempt: int) -> Any:
    """SQL for the row's attempt log with `entry` added: entries of other attempt numbers kept,
    oldest first, at most ATTEMPT_LOG_KEEP."""
    return text(
        "(SELECT coalesce(jsonb_agg(e ORDER BY (e->>'attempt')::int), '[]'::jsonb) FROM ("
        " SELECT e FROM jsonb_array_elements(webhook_deliveries.attempt_log) e"
        " WHERE (e->>'attempt')::int <> :log_attempt AND (e->>'attempt')::int > :log_attempt - :log_keep"
        " UNION ALL SELECT CAST(:log_entry AS jsonb)) kept(e))"
    ).bindparams(log_attempt=attempt, log_keep=ATTEMPT_LOG_KEEP, log_entry=json.dumps(entry))
