"""Inbound provider webhooks: the dedupe record, and the lookups that find the workflow an
event routes to (api.md §12, domain.md §2.18)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from models.audit import audit_entry
from models.ids import IdPrefix, is_id
from models.inbound_webhooks import InboundEvent, Target, WebhookStatus, milestone_position
from models.states import OrderStatus
from models.tables import Escrow, InboundWebhookEvent, Milestone, Order, Topup, Withdrawal
from models.timefmt import utcnow


@dataclass(frozen=True)
class Route:
    """The workflow an event is signalled to (its ID is the resource's) and whom it concerns."""

    resource_type: str  # "topup", "withdrawal", "order" or "milestone"
    resource_id: str
    user_id: str | None
    correlation_id: str  # the root flow: the top-up, withdrawal or order
    final: bool = False  # the resource's record is final (a CLOSED order): the news changes nothing


async def seen(session: AsyncSession, event: InboundEvent) -> bool:
    found = await session.scalar(
        select(col(InboundWebhookEvent.id)).where(
            col(InboundWebhookEvent.provider) == event.provider.value,
            col(InboundWebhookEvent.provider_event_id) == event.event_id,
        )
    )
    return found is not None


async def route(session: AsyncSession, event: InboundEvent, target: Target) -> Route | None:
    """Airtm: `data.code` (our resource ID), else `data.id` (the pay-in / payout ID).
    Trustless Work: `data.contract_id` -> escrow -> order (`data.order_id` only while no
    contract is recorded for that order), then the milestone at `milestone_ref` if the
    event is one of a milestone's."""
    if target.resource_type == "topup":
        topup = await _airtm_resource(session, Topup, Topup.airtm_payin_id, event.data, target.prefix)
        return Route("topup", topup.id, topup.user_id, topup.id) if topup is not None else None
    if target.resource_type == "withdrawal":
        wd = await _airtm_resource(session, Withdrawal, Withdrawal.airtm_payout_id, event.data, target.prefix)
        return Route("withdrawal", wd.id, wd.user_id, wd.id) if wd is not None else None
    return await _escrow_route(session, event)


async def _airtm_resource(
    session: AsyncSession, table: Any, provider_id_column: Any, data: dict[str, Any], prefix: IdPrefix
) -> Any:
    code, provider_id = data.get("code"), data.get("id")
    if is_id(code, prefix):
        found = await session.get(table, code)
        if found is not None:
            return found
    if isinstance(provider_id, str) and provider_id:
        return await session.scalar(select(table).where(provider_id_column == provider_id))
    return None


async def _escrow_route(session: AsyncSession, event: InboundEvent) -> Route | None:
    contract_id, order_id = event.data.get("contract_id"), event.data.get("order_id")
    escrow = None
    if isinstance(contract_id, str) and contract_id:
        escrow = await session.scalar(select(Escrow).where(col(Escrow.trustless_contract_id) == contract_id))
    if escrow is not None:
        order = await session.get(Order, escrow.order_id)
    elif is_id(order_id, IdPrefix.ORDER):
        order = await session.get(Order, order_id)
        escrow = await session.scalar(
            select(Escrow).where(col(Escrow.order_id) == order_id, col(Escrow.discarded_at).is_(None))
        )
        if escrow is not None and escrow.trustless_contract_id is not None:
            return None  # the order's live contract is known, and it is not this one
    else:
        return None
    if order is None:
        return None
    position = milestone_position(event, multi_release=escrow is not None and escrow.type == "MULTI_RELEASE")
    if position is not None:
        milestone = await session.scalar(
            select(Milestone).where(col(Milestone.order_id) == order.id, col(Milestone.position) == position)
        )
        if milestone is not None:
            return Route("milestone", milestone.id, order.buyer_id, order.id)
    return Route("order", order.id, order.buyer_id, order.id, final=order.status == OrderStatus.CLOSED)


async def record(
    session: AsyncSession,
    event: InboundEvent,
    status: WebhookStatus,
    routed: Route | None,
    *,
    received_at: datetime,
    summary: dict[str, Any],
    request_id: str,
    ip: str | None,
    user_agent: str | None,
) -> bool:
    """The dedupe row (and, for a processed event, the WEBHOOK_RECEIVED audit entry on the
    resource it maps to) in one transaction; False when a concurrent delivery of the same
    event recorded it first."""
    processed = status is WebhookStatus.PROCESSED
    inserted = await session.scalar(
        insert(InboundWebhookEvent)
        .values(
            provider=event.provider.value,
            provider_event_id=event.event_id,
            event_type=event.type,
            status=status.value,
            target_workflow_id=routed.resource_id if routed and processed else None,
            resource_type=routed.resource_type if routed else None,
            resource_id=routed.resource_id if routed else None,
            body_sha256=event.body_sha256,
            summary=summary,
            received_at=received_at,
            processed_at=utcnow(),
        )
        .on_conflict_do_nothing(constraint="uq_webhook_events_provider_event")
        .returning(col(InboundWebhookEvent.id))
    )
    if inserted is None:
        return False
    if routed is not None and processed:
        session.add(
            audit_entry(
                action="WEBHOOK_RECEIVED",
                resource_type=routed.resource_type,
                resource_id=routed.resource_id,
                user_id=routed.user_id,
                actor=("webhook", event.provider.value),
                after={
                    "provider": event.provider.value,
                    "provider_event_id": event.event_id,
                    "type": event.type,
                    "body_sha256": event.body_sha256,
                },
                request_id=request_id,
                correlation_id=routed.correlation_id,
                ip=ip,
                user_agent=user_agent,
            )
        )
    return True
