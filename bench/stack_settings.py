"""The settings the benchmarks' embedded stacks run with (beside the test stack's own)."""

from __future__ import annotations

BENCH_STACK = {
    # wallets are funded once at set-up; polling dozens of idle wallets every second only adds noise
    "DEPOSIT_POLL_INTERVAL_SECONDS": "20",
    # the sandbox posts every provider webhook from one loopback address, five per order
    # lifecycle: past the per-IP limit (600 a minute) part of them would be refused 429 and the
    # sandbox's ordered outbox would fall behind the orders, their Signals arriving after the
    # orders completed; the benchmark then measured less than a marketplace's peak costs
    "RATE_LIMIT_UNAUTHENTICATED_PER_IP_PER_MINUTE": "100000000",
}
