"""Outbound webhooks (api.md §11): endpoint rules, the signature of §11.6, the retry schedule,
and the inputs and outputs of WebhookDeliveryWorkflow and its activities.

Pure functions and pydantic models only: the API (endpoint creation), the outbox relay, the
workflow and the sending activity all use them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from models.event_catalog import EVENT_TYPES, FAMILIES
from models.hostile_input import web_url_problem

SECRET_PREFIX = "whsec_"
USER_AGENT = "OfferHub-Webhooks/1.0"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class EndpointStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DELETED = "DELETED"


ENDPOINT_DELETED = "ENDPOINT_DELETED"  # last_error of a delivery canceled by its endpoint's deletion


# endpoint rules --------------------------------------------------------------------------------


def new_secret() -> str:
    """`whsec_` + 32 URL-safe characters (24 random bytes)."""
    return SECRET_PREFIX + secrets.token_urlsafe(24)


def secret_hint(secret: str) -> str:
    return f"{SECRET_PREFIX}…{secret[-4:]}"


def secret_context(endpoint_id: str) -> bytes:
    """Associated data of a sealed endpoint secret (domain.md §2.19): bound to its endpoint."""
    return f"whe:{endpoint_id}".encode()


def url_problem(url: str, environment: str) -> str | None:
    """Why `url` cannot receive webhooks, or None. `https` everywhere, `http` outside `live`;
    absolute, no credentials, no fragment; in `live` no loopback, private or link-local address."""
    problem = web_url_problem(url, environment)
    if problem is not None:
        return problem
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "must not carry credentials"
    if parts.fragment:
        return "must not have a fragment"
    if port == 0:
        return "must not use port 0"
    if environment == "live" and _internal_host(host):
        return "must not point at a loopback, private or link-local address"
    return None


def _internal_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified


def pattern_problem(pattern: str) -> str | None:
    """An `event_types` entry is an exact catalog type, `family.*` or `*` (domain.md §5.3)."""
    if pattern == "*" or pattern in EVENT_TYPES:
        return None
    if pattern.endswith(".*") and pattern[:-2] in FAMILIES:
        return None
    return f"{pattern[:60]!r} matches no event type of the catalog"


def matches(patterns: list[str], event_type: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


# signature (api.md §11.6) ----------------------------------------------------------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(signing_secrets: list[str], timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex>`, one `v1=` per secret (two during a rotation's overlap)."""
    return ",".join([f"t={timestamp}", *(f"v1={signature(s, timestamp, body)}" for s in signing_secrets)])


def verify(secret: str, header: str, body: bytes, now: int, tolerance_seconds: int = 300) -> bool:
    """What a receiver does: any `v1=` matches (constant time) and `t` is recent."""
    fields = [item.split("=", 1) for item in header.split(",") if "=" in item]
    stamps = [v for k, v in fields if k == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit() or abs(now - int(stamps[0])) > tolerance_seconds:
        return False
    expected = signature(secret, int(stamps[0]), body)
    return any(hmac.compare_digest(expected, v) for k, v in fields if k == "v1")


# retry schedule --------------------------------------------------------------------------------


def retry_delay(schedule: list[float], attempt: int, jitter: float) -> timedelta:
    """Wait after failed attempt `attempt` (1-based): the schedule's entry, the last one repeated,
    plus up to 10 % (`jitter` in [0, 1), from the workflow's deterministic random)."""
    base = schedule[min(attempt, len(schedule)) - 1]
    return timedelta(seconds=base * (1 + 0.1 * jitter))


# workflow and activity I/O ---------------------------------------------------------------------


class DeliveryStart(BaseModel):
    """WebhookDeliveryWorkflow's input, fixed by the outbox relay that starts it."""

    delivery_id: str
    event_id: str
    endpoint_id: str
    event_type: str
    user_ids: list[str] = Field(default_factory=list)
    retry_schedule_seconds: list[float] = Field(min_length=1)
    max_age_seconds: int
    timeout_seconds: int


class Attempt(BaseModel):
    """One POST (`webhook_send`)."""

    delivery_id: str
    event_id: str
    endpoint_id: str
    attempt: int = Field(ge=1)
    timeout_seconds: int


class AttemptOutcome(StrEnum):
    SUCCEEDED = "SUCCEEDED"  # 2xx
    RETRY = "RETRY"  # any other status, timeout, connection or TLS error, redirect
    GONE = "GONE"  # 410 Gone: the receiver says never again for this delivery
    ENDPOINT_DELETED = "ENDPOINT_DELETED"  # nothing sent: the endpoint is no longer active
    EVENT_MISSING = "EVENT_MISSING"  # nothing sent: the event is past its retention


class AttemptResult(BaseModel):
    outcome: AttemptOutcome
    sent: bool  # a request went out (counts as an attempt)
    at: datetime
    response_status: int | None = None
    duration_ms: int = 0
    error: str | None = None


class AttemptRecord(BaseModel):
    """What `webhook_delivery_record` writes on the delivery row after an attempt (or a stop)."""

    delivery_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    attempt: int
    result: AttemptResult
    status: DeliveryStatus
    next_attempt_at: datetime | None = None


class DeliveryOutcome(BaseModel):
    delivery_id: str
    status: DeliveryStatus
    attempts: int
