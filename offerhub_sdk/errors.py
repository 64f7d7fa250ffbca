"""Errors raised by the SDK: one class per HTTP status family of the error catalog
(domain.md §8), each carrying the catalog `code`, `message`, `details` and `request_id`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class OfferHubError(Exception):
    """Base of every SDK error."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details: dict[str, Any] = dict(details or {})
        self.request_id = request_id
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        prefix = f"{self.code}: " if self.code else ""
        suffix = f" (status {self.status}, request {self.request_id})" if self.status else ""
        return f"{prefix}{self.message}{suffix}"


class APIError(OfferHubError):
    """The API answered with an error status (base of the status classes; a 5xx other than 502-504)."""


class InvalidRequestError(APIError):
    """400 (validation, money format, amount limits) and 413; other 4xx without a class of their own."""


class AuthenticationError(APIError):
    """401, or no API key given to the client."""


class PermissionDeniedError(APIError):
    """403 INSUFFICIENT_SCOPE."""


class NotFoundError(APIError):
    """404: `ORDER_NOT_FOUND`, `USER_NOT_FOUND`, …"""


class ConflictError(APIError):
    """409: `INVALID_STATE`, `DISPUTE_ALREADY_OPEN`, `IDEMPOTENCY_KEY_REUSED`, …"""


class UnprocessableError(APIError):
    """422: `INSUFFICIENT_FUNDS`, `WITHDRAWAL_DESTINATION_INVALID`, …"""


class RateLimitError(APIError):
    """429 RATE_LIMITED; `retry_after` in seconds."""

    @property
    def retry_after(self) -> float | None:
        return retry_after_seconds(self.headers)


class ProviderError(APIError):
    """502 PROVIDER_ERROR, 504 PROVIDER_TIMEOUT."""


class ServiceUnavailableError(APIError):
    """503 MAINTENANCE, SERVICE_UNAVAILABLE."""


class APIConnectionError(OfferHubError):
    """No answer (connection refused or reset, timeout) after the client's retries."""


class APITimeoutError(APIConnectionError):
    """The request timed out after the client's retries."""


class SignatureVerificationError(OfferHubError):
    """An outbound webhook whose `OfferHub-Signature` does not verify (api.md §11.6)."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequestError,
    422: UnprocessableError,
    429: RateLimitError,
    502: ProviderError,
    503: ServiceUnavailableError,
    504: ProviderError,
}


def error_class(status: int) -> type[APIError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return InvalidRequestError if 400 <= status < 500 else APIError


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "ConflictError",
    "InvalidRequestError",
    "NotFoundError",
    "OfferHubError",
    "PermissionDeniedError",
    "ProviderError",
    "RateLimitError",
    "ServiceUnavailableError",
    "SignatureVerificationError",
    "UnprocessableError",
]
