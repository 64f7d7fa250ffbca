"""`POST /webhooks/airtm` and `POST /webhooks/trustless-work` (api.md §12): no API
credential, the raw body verified before it is parsed, then one Signal per new event."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from pydantic import BaseModel

from api.errors import ApiJSONResponse
from api.inbound_webhooks import receive
from api.policy import Access, ContextDep, GuardedRoute, ServicesDep, policy
from models.errors import ErrorCode, OfferhubError
from models.inbound_webhooks import MalformedWebhook, read_airtm, read_trustless_work
from models.timefmt import utcnow
from models.webhook_signatures import SignatureInvalid, verify_svix, verify_trustless_work

router = APIRouter(route_class=GuardedRoute, tags=["webhooks"])


class WebhookAckPublic(BaseModel):
    status: str = "ok"
    duplicate: bool
    processed: bool


def _refused(reason: SignatureInvalid) -> OfferhubError:
    # the reason says which check failed (header missing, timestamp, mismatch), never a value
    return OfferhubError(ErrorCode.WEBHOOK_SIGNATURE_INVALID, f"Webhook signature invalid: {reason}", {})


def _malformed(exc: MalformedWebhook) -> OfferhubError:
    return OfferhubError(
        ErrorCode.VALIDATION_ERROR,
        "The webhook body is malformed",
        {"fields": [{"field": exc.field, "message": exc.message}]},
    )


@router.post(
    "/webhooks/airtm",
    operation_id="webhooks-airtm",
    summary="Airtm pay-in and payout events (Svix-signed)",
    response_model=WebhookAckPublic,
)
@policy(Access.PUBLIC, maintenance_exempt=True, mode="airtm", raw_body=True)
async def airtm_webhook(request: Request, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    received_at = utcnow()
    raw = await request.body()
    secret = services.settings.airtm_webhook_secret
    headers = request.headers
    try:
        if secret is None:
            raise SignatureInvalid("no Airtm webhook secret is configured")
        verify_svix(
            secret.get_secret_value(),
            raw,
            message_id=headers.get("svix-id"),
            timestamp=headers.get("svix-timestamp"),
            signature=headers.get("svix-signature"),
            now=time.time(),
            tolerance_seconds=services.settings.provider_webhook_tolerance_seconds,
        )
    except SignatureInvalid as exc:
        raise _refused(exc) from None
    try:
        event = read_airtm(raw, headers["svix-id"])
    except MalformedWebhook as exc:
        raise _malformed(exc) from None
    return ApiJSONResponse((await receive(services, context, event, received_at)).body())


@router.post(
    "/webhooks/trustless-work",
    operation_id="webhooks-trustless-work",
    summary="Trustless Work escrow events (X-TW-Signature)",
    response_model=WebhookAckPublic,
)
@policy(Access.PUBLIC, maintenance_exempt=True, raw_body=True)
async def trustless_work_webhook(request: Request, services: ServicesDep, context: ContextDep) -> ApiJSONResponse:
    received_at = utcnow()
    raw = await request.body()
    try:
        verify_trustless_work(
            services.settings.trustless_work_webhook_secret.get_secret_value(),
            raw,
            request.headers.get("x-tw-signature"),
        )
    except SignatureInvalid as exc:
        raise _refused(exc) from None
    try:
        event = read_trustless_work(raw)
    except MalformedWebhook as exc:
        raise _malformed(exc) from None
    return ApiJSONResponse((await receive(services, context, event, received_at)).body())
