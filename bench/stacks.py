"""The benchmarks' embedded stacks: the settings they run with (beside the test stack's own),
and the set-up they share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import httpx

BENCH_STACK = {
    # wallets are funded once at set-up; polling dozens of idle wallets every second only adds noise
    "DEPOSIT_POLL_INTERVAL_SECONDS": "20",
    # the sandbox posts every provider webhook from one loopback address, five per order
    # lifecycle: at a sustained peak that passes the per-IP limit (600 a minute), and refused
    # webhooks would reach their orders only on the sandbox's retries, after they completed
    "RATE_LIMIT_UNAUTHENTICATED_PER_IP_PER_MINUTE": "100000000",
}
CREDIT_WAIT_SECONDS = 180  # the deposit monitor polls every 20 s; a busy machine is slower


async def deposits_credited(
    api: httpx.AsyncClient, headers: dict[str, str], users: Iterable[dict[str, Any]], available: str
) -> None:
    """Until every user's available balance is `available` (the faucet's deposit, credited by the
    deposit monitor): a reserve or a withdrawal would otherwise be refused for want of funds."""
    deadline = time.monotonic() + CREDIT_WAIT_SECONDS
    for user in users:
        while (await api.get(f"/users/{user['id']}/balance", headers=headers)).json()["available"] != available:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the deposit of {user['id']} was never credited")
            await asyncio.sleep(0.5)
