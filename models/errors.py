"""The error catalog (domain.md §8): every code and its HTTP status, in one place.

Workflows and activities raise `ApplicationError(type=<code>)`; the API raises
`OfferhubError`; both are rendered through `HTTP_STATUS`. An unknown code is a 500.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    # request, authentication, platform
    UNAUTHORIZED = "UNAUTHORIZED"
    INVALID_API_KEY = "INVALID_API_KEY"
    INSUFFICIENT_SCOPE = "INSUFFICIENT_SCOPE"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    INVALID_AMOUNT_FORMAT = "INVALID_AMOUNT_FORMAT"
    INVALID_CURRENCY = "INVALID_CURRENCY"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    RATE_LIMITED = "RATE_LIMITED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    IDEMPOTENCY_KEY_IN_PROGRESS = "IDEMPOTENCY_KEY_IN_PROGRESS"
    MAINTENANCE = "MAINTENANCE"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # resources and business rules
    USER_NOT_FOUND = "USER_NOT_FOUND"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    MILESTONE_NOT_FOUND = "MILESTONE_NOT_FOUND"
    TOPUP_NOT_FOUND = "TOPUP_NOT_FOUND"
    DISPUTE_NOT_FOUND = "DISPUTE_NOT_FOUND"
    WITHDRAWAL_NOT_FOUND = "WITHDRAWAL_NOT_FOUND"
    API_KEY_NOT_FOUND = "API_KEY_NOT_FOUND"
    WEBHOOK_ENDPOINT_NOT_FOUND = "WEBHOOK_ENDPOINT_NOT_FOUND"
    INVALID_STATE = "INVALID_STATE"
    ORDER_ALREADY_EXISTS = "ORDER_ALREADY_EXISTS"
    FUNDS_ALREADY_RESERVED = "FUNDS_ALREADY_RESERVED"
    ESCROW_ALREADY_EXISTS = "ESCROW_ALREADY_EXISTS"
    ESCROW_NOT_READY = "ESCROW_NOT_READY"
    ESCROW_ALREADY_FUNDED = "ESCROW_ALREADY_FUNDED"
    DISPUTE_ALREADY_OPEN = "DISPUTE_ALREADY_OPEN"
    WITHDRAWAL_NOT_COMMITTABLE = "WITHDRAWAL_NOT_COMMITTABLE"
    WALLET_NOT_READY = "WALLET_NOT_READY"
    AIRTM_USER_ALREADY_LINKED = "AIRTM_USER_ALREADY_LINKED"
    WEBHOOK_ENDPOINT_LIMIT_REACHED = "WEBHOOK_ENDPOINT_LIMIT_REACHED"
    PROVIDER_NOT_ENABLED = "PROVIDER_NOT_ENABLED"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    RESERVE_MISMATCH_AMOUNT = "RESERVE_MISMATCH_AMOUNT"
    ESCROW_FUNDING_FAILED = "ESCROW_FUNDING_FAILED"
    WITHDRAWAL_DESTINATION_INVALID = "WITHDRAWAL_DESTINATION_INVALID"
    AIRTM_USER_NOT_LINKED = "AIRTM_USER_NOT_LINKED"
    AIRTM_USER_INVALID = "AIRTM_USER_INVALID"
    # providers and webhooks
    PROVIDER_ERROR = "PROVIDER_ERROR"
    PROVIDER_TIMEOUT = "PROVIDER_TIMEOUT"
    WEBHOOK_SIGNATURE_INVALID = "WEBHOOK_SIGNATURE_INVALID"
    # internal integrity alarms: never a status of their own, a waiting caller gets 500
    RESERVE_NOT_FOUND = "RESERVE_NOT_FOUND"
    ESCROW_OVERDRAWN = "ESCROW_OVERDRAWN"
    LEDGER_KEY_CONFLICT = "LEDGER_KEY_CONFLICT"
    TRANSITION_CONFLICT = "TRANSITION_CONFLICT"
    ESCROW_BALANCE_MISMATCH = "ESCROW_BALANCE_MISMATCH"


_BY_STATUS: dict[int, tuple[ErrorCode, ...]] = {
    400: (
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.INVALID_AMOUNT_FORMAT,
        ErrorCode.INVALID_CURRENCY,
        ErrorCode.INVALID_AMOUNT,
        ErrorCode.WEBHOOK_SIGNATURE_INVALID,
    ),
    401: (ErrorCode.UNAUTHORIZED, ErrorCode.INVALID_API_KEY),
    403: (ErrorCode.INSUFFICIENT_SCOPE,),
    404: (
        ErrorCode.NOT_FOUND,
        ErrorCode.USER_NOT_FOUND,
        ErrorCode.ORDER_NOT_FOUND,
        ErrorCode.MILESTONE_NOT_FOUND,
        ErrorCode.TOPUP_NOT_FOUND,
        ErrorCode.DISPUTE_NOT_FOUND,
        ErrorCode.WITHDRAWAL_NOT_FOUND,
        ErrorCode.API_KEY_NOT_FOUND,
        ErrorCode.WEBHOOK_ENDPOINT_NOT_FOUND,
    ),
    405: (ErrorCode.METHOD_NOT_ALLOWED,),
    409: (
        ErrorCode.IDEMPOTENCY_KEY_REUSED,
        ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS,
        ErrorCode.INVALID_STATE,
        ErrorCode.ORDER_ALREADY_EXISTS,
        ErrorCode.FUNDS_ALREADY_RESERVED,
        ErrorCode.ESCROW_ALREADY_EXISTS,
        ErrorCode.ESCROW_NOT_READY,
        ErrorCode.ESCROW_ALREADY_FUNDED,
        ErrorCode.DISPUTE_ALREADY_OPEN,
        ErrorCode.WITHDRAWAL_NOT_COMMITTABLE,
        ErrorCode.WALLET_NOT_READY,
        ErrorCode.AIRTM_USER_ALREADY_LINKED,
        ErrorCode.WEBHOOK_ENDPOINT_LIMIT_REACHED,
        ErrorCode.PROVIDER_NOT_ENABLED,
    ),
    413: (ErrorCode.PAYLOAD_TOO_LARGE,),
    422: (
        ErrorCode.INSUFFICIENT_FUNDS,
        ErrorCode.RESERVE_MISMATCH_AMOUNT,
        ErrorCode.ESCROW_FUNDING_FAILED,
        ErrorCode.WITHDRAWAL_DESTINATION_INVALID,
        ErrorCode.AIRTM_USER_NOT_LINKED,
        ErrorCode.AIRTM_USER_INVALID,
    ),
    429: (ErrorCode.RATE_LIMITED,),
    500: (
        ErrorCode.INTERNAL_ERROR,
        ErrorCode.RESERVE_NOT_FOUND,
        ErrorCode.ESCROW_OVERDRAWN,
        ErrorCode.LEDGER_KEY_CONFLICT,
        ErrorCode.TRANSITION_CONFLICT,
        ErrorCode.ESCROW_BALANCE_MISMATCH,
    ),
    502: (ErrorCode.PROVIDER_ERROR,),
    503: (ErrorCode.MAINTENANCE, ErrorCode.SERVICE_UNAVAILABLE),
    504: (ErrorCode.PROVIDER_TIMEOUT,),
}

HTTP_STATUS: dict[ErrorCode, int] = {code: status for status, codes in _BY_STATUS.items() for code in codes}

INTEGRITY_ALARMS = frozenset(_BY_STATUS[500]) - {ErrorCode.INTERNAL_ERROR}


def status_of(code: str) -> int:
    """HTTP status of a catalog code; anything unknown is an internal error."""
    try:
        return HTTP_STATUS[ErrorCode(code)]
    except ValueError:
        return 500


class OfferhubError(Exception):
    """A business or request error with its catalog code; rendered as the error envelope."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code.value, "message": self.message, "details": self.details}}
