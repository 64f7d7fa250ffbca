"""Typed provider errors (providers.md §1.6): each says whether a retry can help.

Activities turn them into `ApplicationError(type=<class name>, non_retryable=...)`; their
messages never hold credentials, seeds or e-mail addresses.
"""

from __future__ import annotations

from typing import Any


class ProviderError(Exception):
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        operation: str = "",
        http_status: int | None = None,
        provider_code: str | None = None,
        result_codes: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.operation = operation
        self.http_status = http_status
        self.provider_code = provider_code
        self.result_codes = result_codes

    def details(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "operation": self.operation,
            "http_status": self.http_status,
            "provider_code": self.provider_code,
            "result_codes": self.result_codes,
        }


class ProviderUnavailable(ProviderError):
    """Connection refused/reset, DNS, 5xx on a call without effect."""


class ProviderTimeout(ProviderError):
    """A read-only call timed out."""


class ProviderOutcomeUnknown(ProviderError):
    """A call that may have had an effect ended without an answer; the retry resolves it first."""


class ProviderRateLimited(ProviderError):
    def __init__(self, message: str, *, retry_after: float = 2.0, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ProviderAuthError(ProviderError):
    """401, or 403 without a business code: retried slowly, operators alerted."""


class ProviderRejected(ProviderError):
    retryable = False


class ProviderNotFound(ProviderError):
    retryable = False


class ProviderConflict(ProviderError):
    retryable = False


class ChainTxFailed(ProviderError):
    retryable = False


class DestinationInvalid(ProviderError):
    retryable = False

    def __init__(self, reason: str, **kw: Any) -> None:
        super().__init__(f"withdrawal destination invalid: {reason}", **kw)
        self.reason = reason


class UnexpectedProviderData(ProviderError):
    retryable = False


class WalletIntegrityError(ProviderError):
    retryable = False


class ProviderNotSupported(ProviderError):
    retryable = False
