"""Sandbox fault injection for the run (providers.md §5.9), drawn from the run's seed.

The run goes through phases; each phase installs a random set of rules through `PUT
/_sandbox/faults`: `5xx` answers and throttling (no effect), timeouts (held, then 504, no
effect), responses dropped after the effect (the effect committed, the answer lost) and
added latency, on Horizon, Trustless Work and Airtm; plus webhook faults (duplicates,
reordering, delays, first attempts dropped). The sandbox's fault log says what fired; the
report counts it by action.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import httpx

# (target, method, path) the orchestrator calls, by provider mode
ENDPOINTS: dict[str, list[tuple[str, str | None, str]]] = {
    "common": [
        ("tw", "POST", "/helper/send-transaction"),
        ("tw", "POST", "/deployer/**"),
        ("tw", "POST", "/escrow/**"),
        ("tw", "GET", "/helper/**"),
        ("horizon", "POST", "/transactions"),
        ("horizon", "GET", "/accounts/**"),
    ],
    "crypto": [("friendbot", None, "/**")],
    "airtm": [
        ("airtm", "POST", "/payins"),
        ("airtm", "GET", "/payins/**"),
        ("airtm", "POST", "/payouts"),
        ("airtm", "POST", "/payouts/*/commit"),
        ("airtm", "GET", "/payouts/**"),
    ],
}
# action -> weight
ACTIONS = {"error": 4, "timeout": 1, "drop_after_effect": 3, "latency_only": 2}


def phase_config(rng: random.Random, provider: str, phase: int) -> dict[str, Any]:
    """One phase's fault configuration: a few rules, webhook faults for both providers."""
    endpoints = ENDPOINTS["common"] + ENDPOINTS[provider]
    rules: list[dict[str, Any]] = []
    for index in range(rng.randint(2, 5)):
        target, method, path = rng.choice(endpoints)
        action = rng.choices(list(ACTIONS), list(ACTIONS.values()))[0]
        rule: dict[str, Any] = {
            "id": f"p{phase}-r{index}-{action}",
            "target": target,
            "path": path,
            "action": action,
            "probability": round(rng.uniform(0.1, 0.35), 2),
            "times": rng.randint(3, 12),
        }
        if method is not None:
            rule["method"] = method
        if action == "error":
            rule["status"] = rng.choice((429, 500, 502, 503, 504))
            if rule["status"] in (429, 503):
                rule["retry_after_s"] = 1
        elif action == "timeout":
            rule["hold_ms"] = rng.randint(1000, 4000)
        elif action == "drop_after_effect":
            rule["drop_mode"] = rng.choice(("hang", "error"))
            rule["hold_ms"] = rng.randint(500, 3000)
        if action == "latency_only" or rng.random() < 0.3:
            low = rng.randint(20, 200)
            rule["latency_ms"] = [low, low + rng.randint(50, 800)]
        rules.append(rule)
    webhooks = {
        provider_name: {
            "duplicate_probability": round(rng.uniform(0.1, 0.5), 2),
            "duplicate_delay_ms": rng.randint(50, 500),
            "reorder": rng.random() < 0.6,
            "reorder_window_ms": rng.randint(100, 800),
            "delay_ms": [0, rng.randint(50, 400)],
            "drop_first_attempt_probability": round(rng.uniform(0.0, 0.3), 2),
        }
        for provider_name in ("tw", "airtm")
    }
    return {"seed": f"chaos-{phase}-{rng.getrandbits(32):08x}", "rules": rules, "webhooks": webhooks}


async def install(sandbox: httpx.AsyncClient, config: dict[str, Any]) -> None:
    answer = await sandbox.put("/_sandbox/faults", json=config)
    answer.raise_for_status()


async def clear(sandbox: httpx.AsyncClient) -> None:
    (await sandbox.delete("/_sandbox/faults")).raise_for_status()


class FaultLog:
    """Counts what fired, by kind, reading the sandbox's fault log as it grows (seq numbers)."""

    def __init__(self) -> None:
        self.fired: Counter[str] = Counter()
        self.last_seq = 0

    async def collect(self, sandbox: httpx.AsyncClient) -> None:
        entries = (await sandbox.get("/_sandbox/faults/log", params={"limit": 1000})).json()
        for entry in entries:
            if int(entry["seq"]) <= self.last_seq:
                continue
            self.last_seq = int(entry["seq"])
            action = entry["action"]
            self.fired[f"{action}:{entry['status']}" if action == "error" else action] += 1

    async def webhook_faults(self, sandbox: httpx.AsyncClient) -> Counter[str]:
        """Provider webhooks sent twice (same event ID) and first attempts dropped on purpose."""
        found: Counter[str] = Counter()
        seen: Counter[str] = Counter()
        for webhook in (await sandbox.get("/_sandbox/webhooks", params={"limit": 100000})).json():
            seen[webhook["event_id"]] += 1
            found["webhook_first_attempt_dropped"] += sum(
                1 for attempt in webhook["attempts"] if attempt.get("error") == "dropped by fault injection"
            )
        found["webhook_duplicate"] = sum(count - 1 for count in seen.values() if count > 1)
        return +found
