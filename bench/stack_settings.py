"""The settings the benchmarks' embedded stacks run with (beside the test stack's own)."""

from __future__ import annotations

BENCH_STACK = {
    # wallets are funded once at set-up; polling dozens of idle wallets every second only adds noise
    "DEPOSIT_POLL_INTERVAL_SECONDS": "20",
    # the sandbox posts every provider webhook from one loopback address, five per order
    # lifecycle: at a sustained peak that passes the per-IP limit (600 a minute), and refused
    # webhooks would reach their orders only on the sandbox's retries, after they completed
    "RATE_LIMIT_UNAUTHENTICATED_PER_IP_PER_MINUTE": "100000000",
}
