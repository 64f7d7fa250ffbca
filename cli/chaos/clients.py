"""The run's view of the API: one SDK client per API process, calls that survive crashes.

A write keeps one `Idempotency-Key` across every attempt, whichever API process answers it,
so a request lost to a SIGKILL, a Redis restart or a `503` is retried until it applies once.
Business refusals (`INSUFFICIENT_FUNDS`, `INVALID_STATE`, ...) are answers, not failures:
they are counted and the scenario goes on.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from offerhub_sdk import AsyncOfferHub
from offerhub_sdk.errors import APIConnectionError, APIError, OfferHubError

T = TypeVar("T")
RETRY_WINDOW_SECONDS = 120.0
# answers that say "try again" rather than "no": outages, crashes mid-request, a twin in flight
RETRYABLE_CODES = frozenset(
    {"SERVICE_UNAVAILABLE", "IDEMPOTENCY_KEY_IN_PROGRESS", "RATE_LIMITED", "INTERNAL_ERROR", "PROVIDER_UNAVAILABLE"}
)


class Refused(Exception):
    """The API said no to a valid request (a business rule): the scenario stops there."""

    def __init__(self, kind: str, code: str) -> None:
        super().__init__(f"{kind}: {code}")
        self.code = code


@dataclass
class Tally:
    """What the generator did, by kind (the report's figures)."""

    operations: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    error_bodies: list[str] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)
    internal_errors: list[str] = field(default_factory=list)  # a 500 is a bug, never an outage

    @property
    def total(self) -> int:
        return sum(self.operations.values())


@dataclass
class ClientPool:
    """SDK clients of the API processes; `live` says which may be asked right now."""

    clients: dict[str, AsyncOfferHub]
    live: Callable[[str], bool]
    tally: Tally = field(default_factory=Tally)

    def pick(self, rng: random.Random) -> AsyncOfferHub:
        names = sorted(name for name in self.clients if self.live(name)) or ["api"]
        return self.clients[rng.choice(names)]

    async def call(
        self, kind: str, rng: random.Random, action: Callable[[AsyncOfferHub, str], Awaitable[T]], *, count: bool = True
    ) -> T:
        """`action(client, idempotency_key)` until it answers; `Refused` on a business refusal."""
        key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if count:
            self.tally.operations[kind] += 1
        deadline = time.monotonic() + RETRY_WINDOW_SECONDS
        while True:
            client = self.pick(rng)
            try:
                return await action(client, key)
            except APIConnectionError:
                reason = "connection"
            except APIError as exc:
                status = exc.status or 500
                self.tally.error_bodies.append(f"{status} {exc.code}: {exc.message} {exc.details}")
                if status == 500:  # a bug answers the same again: recorded once, not retried
                    self.tally.internal_errors.append(f"{kind}: {exc.code} {exc.message} (request {exc.request_id})")
                    raise Refused(kind, "INTERNAL_ERROR") from None
                code = exc.code or f"HTTP_{status}"
                if status < 500 and code not in RETRYABLE_CODES:
                    self.tally.refusals[f"{kind}:{code}"] += 1
                    raise Refused(kind, code) from None
                reason = code
            except OfferHubError as exc:  # anything else the SDK raises: treat as transient
                reason = type(exc).__name__
            self.tally.retries[reason] += 1
            if time.monotonic() > deadline:
                self.tally.gave_up.append(f"{kind} ({reason})")
                raise Refused(kind, f"GAVE_UP_{reason}")
            await asyncio.sleep(0.5 + rng.random())

    async def read(self, rng: random.Random, action: Callable[[AsyncOfferHub], Awaitable[T]]) -> T:
        """A GET: retried like a write, never counted as an operation."""
        return await self.call("read", rng, lambda client, _key: action(client), count=False)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
