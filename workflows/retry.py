"""Retry policies shared by workflows (architecture.md: money movements never give up)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Exponential, 1 s doubling to 60 s, no attempt limit; business and integrity errors stop it.
FOREVER = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=0,
    non_retryable_error_types=[
        "INSUFFICIENT_FUNDS",
        "LEDGER_KEY_CONFLICT",
        "RESERVE_NOT_FOUND",
        "ESCROW_OVERDRAWN",
        "TRANSITION_CONFLICT",
        "WalletIntegrityError",
        "UnexpectedProviderData",
        "ProviderNotSupported",
    ],
)
DB_STEP = timedelta(seconds=30)
PROVIDER_STEP = timedelta(minutes=5)
