"""A verified provider webhook becomes a Signal (api.md §12, architecture.md "Webhooks").

Deduplicated on (provider, provider event id); the dedupe row is committed only once
Temporal accepted the Signal, so a failure answers 503 with nothing recorded and the
provider's retry is processed normally (workflows treat a repeated Signal as a no-op).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy.exc import InterfaceError, OperationalError
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from api.outages import TEMPORAL_UNREACHABLE, service_unavailable
from api.policy import RequestContext
from api.repositories import webhooks as repo
from api.services import Services
from models.inbound_webhooks import InboundEvent, WebhookStatus, target_of
from models.redaction import redact
from models.timefmt import iso
from models.webhooks_io import ProviderEvent

log = logging.getLogger("offerhub.api.webhooks")
SIGNAL_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True)
class WebhookAck:
    duplicate: bool
    processed: bool

    def body(self) -> dict[str, object]:
        return {"status": "ok", "duplicate": self.duplicate, "processed": self.processed}


class Delivery(Enum):
    SIGNALLED = "signalled"
    WORKFLOW_ENDED = "workflow_ended"  # its resource is final: the news changes nothing
    NO_WORKFLOW = "no_workflow"


async def receive(
    services: Services, context: RequestContext, event: InboundEvent, received_at: datetime
) -> WebhookAck:
    target = target_of(event)
    try:
        async with services.sessions() as session:
            if await repo.seen(session, event):
                return WebhookAck(duplicate=True, processed=False)
            routed = await repo.route(session, event, target) if target is not None else None
    except (OperationalError, InterfaceError, OSError) as exc:
        log.warning("webhook intake: database unreachable", extra={"error": type(exc).__name__})
        raise service_unavailable("The database") from None

    status, summary = WebhookStatus.IGNORED, event.summary()
    if routed is not None and target is not None:
        # a CLOSED order's workflow has ended or is ending: a Signal now would only make Temporal
        # refuse its completing task (replayed from scratch), or meet a closed or, past the
        # namespace's retention, deleted workflow
        delivery = Delivery.WORKFLOW_ENDED
        if not routed.final:
            payload = ProviderEvent(
                provider=event.provider.value,
                event_id=event.event_id,
                type=event.type,
                data=redact(event.data),
                received_at=iso(received_at),
            )
            delivery = await _signal(services, routed.resource_id, target.signal, payload)
        if delivery is not Delivery.NO_WORKFLOW:
            status = WebhookStatus.PROCESSED
        if delivery is Delivery.WORKFLOW_ENDED:
            summary["workflow_ended"] = True

    try:
        async with services.sessions() as session, session.begin():
            inserted = await repo.record(
                session,
                event,
                status,
                routed,
                received_at=received_at,
                summary=summary,
                request_id=context.request_id,
                ip=context.ip,
                user_agent=context.user_agent,
            )
    except (OperationalError, InterfaceError, OSError) as exc:
        # the Signal went through; the provider's retry signals again, which workflows ignore
        log.warning("webhook intake: database unreachable", extra={"error": type(exc).__name__})
        raise service_unavailable("The database") from None
    if not inserted:
        return WebhookAck(duplicate=True, processed=False)
    if status is WebhookStatus.IGNORED:
        # an operator alert: a signed event that reached no workflow
        log.warning(
            "inbound webhook ignored",
            extra={
                "alert": "webhook_ignored",
                "provider": event.provider.value,
                "provider_event_id": event.event_id,
                "event_type": event.type,
                "request_id": context.request_id,
            },
        )
    return WebhookAck(duplicate=False, processed=status is WebhookStatus.PROCESSED)


async def _signal(services: Services, workflow_id: str, signal: str, payload: ProviderEvent) -> Delivery:
    try:
        client = await services.temporal()
    except RuntimeError as exc:  # the SDK's "Failed client connect"
        log.warning("webhook intake: Temporal unreachable", extra={"error": str(exc)[:200]})
        raise service_unavailable("The workflow engine") from None
    handle = client.get_workflow_handle(workflow_id)
    try:
        await handle.signal(signal, payload, rpc_timeout=SIGNAL_TIMEOUT)
        return Delivery.SIGNALLED
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return await _ended_or_missing(handle)
        if exc.status in TEMPORAL_UNREACHABLE:
            raise service_unavailable("The workflow engine") from None
        raise


async def _ended_or_missing(handle: WorkflowHandle[object, object]) -> Delivery:
    """Signalling a closed workflow and an unknown one both answer NOT_FOUND: ask which."""
    try:
        await handle.describe(rpc_timeout=SIGNAL_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return Delivery.NO_WORKFLOW
        if exc.status in TEMPORAL_UNREACHABLE:
            raise service_unavailable("The workflow engine") from None
        raise
    return Delivery.WORKFLOW_ENDED
