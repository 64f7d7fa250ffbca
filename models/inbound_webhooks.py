"""Inbound provider webhooks once their signature holds (api.md §12): the body read into one
`InboundEvent`, which workflow kind it concerns, and the redacted summary that is recorded
in place of the body (domain.md §2.18, §6.4). Pure: the lookups that find the workflow
live with the API's SQL."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from models.hostile_input import HostileInput, parse_json_document
from models.ids import IdPrefix
from models.redaction import redact
from models.webhooks_io import AIRTM_PAYIN_SIGNAL, AIRTM_PAYOUT_SIGNAL, TRUSTLESS_WORK_SIGNAL

MAX_EVENT_ID_CHARS = 255
_EVENT_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_EVENT_ID_CHARS}}}")
_MILESTONE_INDEX = re.compile(r"[0-9]{1,4}")

# Trustless Work types that concern the escrow as a whole (api.md §12.2); any other type is ignored
ESCROW_EVENT_TYPES = frozenset(
    {
        "escrow.created",
        "escrow.funding_started",
        "escrow.funded",
        "escrow.released",
        "escrow.refunded",
        "escrow.disputed",
    }
)
MILESTONE_COMPLETED = "escrow.milestone_completed"

_SUMMARY_FIELDS = {
    "airtm": ("id", "code", "status", "amount", "currency", "reasonCode"),
    "trustless_work": (
        "contract_id",
        "order_id",
        "status",
        "amount",
        "currency",
        "milestone_ref",
        "transaction_hash",
    ),
}


class WebhookProvider(StrEnum):
    AIRTM = "airtm"
    TRUSTLESS_WORK = "trustless_work"


class WebhookStatus(StrEnum):
    PROCESSED = "PROCESSED"  # the Signal was delivered (or its workflow had already ended)
    IGNORED = "IGNORED"  # signed, but of an unknown type or for no known workflow


class MalformedWebhook(Exception):
    """Signed, but not a webhook we can read: answered 400 VALIDATION_ERROR."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class InboundEvent:
    provider: WebhookProvider
    event_id: str  # the dedupe key: svix-id for Airtm, event_id for Trustless Work
    type: str
    data: dict[str, Any]
    body_sha256: str

    def summary(self) -> dict[str, Any]:
        """What is kept of the body: status, amounts and provider IDs, redacted."""
        kept = {name: self.data[name] for name in _SUMMARY_FIELDS[self.provider] if name in self.data}
        return dict(redact(kept))


@dataclass(frozen=True)
class Target:
    """The kind of workflow an event concerns, before the lookup that finds its ID."""

    resource_type: str  # "topup", "withdrawal" or "escrow" (the order or one of its milestones)
    signal: str
    prefix: IdPrefix  # a `data.code` routes only if it carries this prefix


def _document(raw: bytes) -> dict[str, Any]:
    try:
        document = parse_json_document(raw)
    except HostileInput as exc:
        raise MalformedWebhook(exc.field, exc.message) from None
    if not isinstance(document, dict):
        raise MalformedWebhook("body", "must be a JSON object")
    return document


def _text(document: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = document.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _data(document: dict[str, Any]) -> dict[str, Any]:
    data = document.get("data", {})
    if not isinstance(data, dict):
        raise MalformedWebhook("data", "must be a JSON object")
    return data


def read_airtm(raw: bytes, svix_id: str) -> InboundEvent:
    """`{"type", "data"}`, or the earlier `{"eventType", "eventId", "occurredAt", "data"}`;
    the dedupe key is the signed `svix-id` header."""
    document = _document(raw)
    event_type = _text(document, "type", "eventType")
    if event_type is None:
        raise MalformedWebhook("type", "a non-empty string is required")
    if not _EVENT_ID.fullmatch(svix_id):
        raise MalformedWebhook("svix-id", f"1-{MAX_EVENT_ID_CHARS} visible ASCII characters")
    return InboundEvent(WebhookProvider.AIRTM, svix_id, event_type, _data(document), _sha256(raw))


def read_trustless_work(raw: bytes) -> InboundEvent:
    document = _document(raw)
    event_id = _text(document, "event_id")
    if event_id is None or not _EVENT_ID.fullmatch(event_id):
        raise MalformedWebhook("event_id", f"1-{MAX_EVENT_ID_CHARS} visible ASCII characters are required")
    event_type = _text(document, "type")
    if event_type is None:
        raise MalformedWebhook("type", "a non-empty string is required")
    return InboundEvent(WebhookProvider.TRUSTLESS_WORK, event_id, event_type, _data(document), _sha256(raw))


def target_of(event: InboundEvent) -> Target | None:
    """Which workflow kind the event's type routes to; None for a type we do not know."""
    if event.provider is WebhookProvider.AIRTM:
        if event.type.startswith("payin."):
            return Target("topup", AIRTM_PAYIN_SIGNAL, IdPrefix.TOPUP)
        if event.type.startswith("payout."):
            return Target("withdrawal", AIRTM_PAYOUT_SIGNAL, IdPrefix.WITHDRAWAL)
        return None
    if event.type in ESCROW_EVENT_TYPES or event.type == MILESTONE_COMPLETED:
        return Target("escrow", TRUSTLESS_WORK_SIGNAL, IdPrefix.ORDER)
    return None


def milestone_position(event: InboundEvent, *, multi_release: bool) -> int | None:
    """The contract milestone index (= the milestone's `position`) when the event is for a
    milestone's workflow: every `escrow.milestone_completed`, and any event of a
    multi-release escrow that names a milestone."""
    ref = event.data.get("milestone_ref")
    if isinstance(ref, int) and not isinstance(ref, bool):
        ref = str(ref)
    if not isinstance(ref, str) or not _MILESTONE_INDEX.fullmatch(ref):
        return None
    if event.type == MILESTONE_COMPLETED or multi_release:
        return int(ref)
    return None


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()
