"""What the sync and async clients share and does no I/O: settings, headers, the retry rule,
errors from answers, results from answers, the SSE line decoder, the `wait` rules."""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from offerhub_sdk._version import __version__
from offerhub_sdk.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    error_class,
    retry_after_seconds,
)
from offerhub_sdk.models import OfferHubModel

M = TypeVar("M", bound=OfferHubModel)

DEFAULT_BASE_URL = "http://127.0.0.1:4000/api/v1"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 2
USER_AGENT = f"offerhub-sdk-python/{__version__}"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER = 60.0  # a longer Retry-After is the caller's decision, not a silent wait
STREAM_READ_TIMEOUT = 60.0  # the server pings every 15 s
STREAM_MAX_RECONNECTS = 10  # consecutive failed connection attempts before the stream gives up


@dataclass(frozen=True)
class ClientSettings:
    api_key: str
    base_url: str
    timeout: float
    max_retries: int


def resolve_settings(api_key: str | None, base_url: str | None, timeout: float, max_retries: int) -> ClientSettings:
    key = api_key or os.environ.get("OFFERHUB_API_KEY")
    if not key:
        raise AuthenticationError(
            "No API key: pass api_key= or set OFFERHUB_API_KEY", code="MISSING_API_KEY", status=None
        )
    url = (base_url or os.environ.get("OFFERHUB_API_URL") or DEFAULT_BASE_URL).rstrip("/")
    return ClientSettings(key, url, timeout, max(0, max_retries))


def default_headers(settings: ClientSettings) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {settings.api_key}",
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
    }


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def clean(values: Mapping[str, Any]) -> dict[str, Any]:
    """Request fields without the ones left unset (`None`): the server applies its default."""
    return {k: v for k, v in values.items() if v is not None}


def query(values: Mapping[str, Any]) -> dict[str, str]:
    """Query parameters: unset ones dropped, lists comma-joined, booleans lower-case, datetimes ISO."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, list | tuple | set | frozenset):
            out[name] = ",".join(str(v) for v in value)
        elif hasattr(value, "isoformat"):
            out[name] = value.isoformat()
        else:
            out[name] = str(value)
    return out


# retries -------------------------------------------------------------------------------------


def is_retryable(response: httpx.Response) -> bool:
    """429 (when its Retry-After is reasonable), 502-504, and our own keyed write still running."""
    if response.status_code in RETRY_STATUSES:
        after = retry_after_seconds(response.headers)
        return after is None or after <= MAX_RETRY_AFTER
    return response.status_code == 409 and error_code(response) == "IDEMPOTENCY_KEY_IN_PROGRESS"


def retry_delay(attempt: int, response: httpx.Response | None) -> float:
    """The answer's Retry-After when it gives one, else 0.5 s doubling (cap 8 s) with jitter."""
    if response is not None:
        after = retry_after_seconds(response.headers)
        if after is not None:
            return min(after, MAX_RETRY_AFTER)
    base = min(0.5 * 2.0**attempt, 8.0)
    return base * (0.75 + random.random() / 2)


def connection_error(exc: httpx.TransportError) -> APIConnectionError:
    kind = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
    return kind(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


# answers -------------------------------------------------------------------------------------


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def error_code(response: httpx.Response) -> str | None:
    body = _body(response)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return str(code) if code is not None else None
    return None


def make_error(response: httpx.Response) -> APIError:
    body = _body(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"code": None, "message": response.text[:500] or response.reason_phrase, "details": {}}
    details = error.get("details") if isinstance(error.get("details"), dict) else {}
    return error_class(response.status_code)(
        str(error.get("message") or response.reason_phrase),
        status=response.status_code,
        code=error.get("code"),
        details=details,
        request_id=response.headers.get("x-request-id"),
        headers=dict(response.headers),
    )


def mark(model: M, response: httpx.Response) -> M:
    model._status_code = response.status_code
    model._replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
    return model


def parse(cast: type[M], response: httpx.Response) -> M:
    return mark(cast.model_validate(response.json()), response)


@dataclass
class ListEnvelope:
    data: list[Any]
    has_more: bool
    next_cursor: str | None


def parse_list(response: httpx.Response) -> ListEnvelope:
    body = response.json()
    pagination = body.get("pagination") or {}
    return ListEnvelope(body.get("data") or [], bool(pagination.get("has_more")), pagination.get("next_cursor"))


# server-sent events --------------------------------------------------------------------------


@dataclass
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None


@dataclass
class SSEDecoder:
    """The SSE line protocol (WHATWG): fields until a blank line dispatches an event."""

    retry_ms: int | None = None
    _event: str | None = None
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            if not self._data and self._event is None:
                return None
            sse = ServerSentEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id = None, [], None
            return sse
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


def stream_error(sse: ServerSentEvent) -> APIError:
    """An `event: error` the server sends before ending a stream (e.g. the key was revoked)."""
    try:
        payload = json.loads(sse.data)
    except json.JSONDecodeError:
        payload = {}
    error = payload.get("error", payload) if isinstance(payload, dict) else {}
    code = error.get("code") if isinstance(error, dict) else None
    status = 401 if code in ("INVALID_API_KEY", "UNAUTHORIZED") else 500
    message = error.get("message") if isinstance(error, dict) else None
    return error_class(status)(str(message or sse.data), status=status, code=code)


# wait ----------------------------------------------------------------------------------------

ORDER_TRANSITIONAL = frozenset({"ESCROW_CREATING", "RELEASE_REQUESTED", "REFUND_REQUESTED"})
ESCROW_TRANSITIONAL = frozenset({"CREATING", "FUNDING", "RELEASING", "REFUNDING"})
TOPUP_TERMINAL = frozenset({"TOPUP_SUCCEEDED", "TOPUP_FAILED", "TOPUP_CANCELED"})
WITHDRAWAL_TERMINAL = frozenset({"WITHDRAWAL_COMPLETED", "WITHDRAWAL_FAILED", "WITHDRAWAL_CANCELED"})
MILESTONE_SETTLED = frozenset({"OPEN", "COMPLETED", "RELEASED", "CANCELED"})


def targets(status: str | Iterable[str] | None) -> frozenset[str] | None:
    if status is None:
        return None
    return frozenset({status}) if isinstance(status, str) else frozenset(status)


def order_settled(order: Any) -> bool:
    """Not in a transitional state: what a `202` on an order leaves behind, finished."""
    escrow = getattr(order, "escrow", None)
    return order.status not in ORDER_TRANSITIONAL and (escrow is None or escrow.status not in ESCROW_TRANSITIONAL)


def dispute_settled(dispute: Any) -> bool:
    return bool(dispute.status == "RESOLVED" or dispute.resolution_decision is None)
