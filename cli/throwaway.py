"""A throwaway embedded stack (the test session, benchmarks, `offerhub chaos`): PostgreSQL,
Redis and Temporal under one directory on free loopback ports, and the settings every
process of such a stack shares. `offerhub dev` keeps its own, persistent, under `.data/`."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cli.dev import sandbox_env
from cli.stack import EmbeddedPostgres, EmbeddedRedis, EmbeddedTemporal, free_port

# settings `offerhub dev` and a throwaway stack choose themselves: a caller's environment
# (a developer's shell, CI) must not leak into them
CHOSEN_PREFIXES = (
    "OFFERHUB_",
    "WALLET_ENCRYPTION_",
    "DATABASE_",
    "REDIS_",
    "TEMPORAL_",
    "SANDBOX_",
    "STELLAR_",
    "TRUSTLESS_WORK_",
    "AIRTM_",
    "API_",
    "PAYMENT_PROVIDER",
    "PUBLIC_BASE_URL",
    "DEPOSIT_",
    "RATE_LIMIT_",
    "WEBHOOK_",
    "RECONCILIATION_",
    "TOPUP_",
    "WITHDRAWAL_",
)


class StackEnvironment:
    """What a stack's environment says about it (mixed into the stack classes)."""

    env: dict[str, str]

    @property
    def master_key(self) -> str:
        return self.env["OFFERHUB_MASTER_KEY"]

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]


def own_environment(base: dict[str, str], *, keep: tuple[str, ...] = ()) -> dict[str, str]:
    """`base` without the settings a stack chooses itself (but those named in `keep`)."""
    return {k: v for k, v in base.items() if not k.startswith(CHOSEN_PREFIXES) or k in keep}


@dataclass
class EmbeddedServices:
    """The three services of a throwaway stack, started in order and stopped in reverse."""

    root: Path
    postgres: EmbeddedPostgres = field(init=False)
    redis: EmbeddedRedis = field(init=False)
    temporal: EmbeddedTemporal = field(init=False)
    database_url: str = ""
    redis_url: str = ""
    temporal_address: str = ""

    def start(self) -> EmbeddedServices:
        self.postgres = EmbeddedPostgres(self.root / "postgres")
        self.redis = EmbeddedRedis(self.root / "redis", free_port())
        self.temporal = EmbeddedTemporal(self.root / "temporal", free_port(), ui_port=None, retry_ports=True)
        self.database_url = self.postgres.start()
        self.redis_url = self.redis.start()
        self.temporal_address = self.temporal.start()
        return self

    def stop(self) -> None:
        for service in (self.temporal, self.redis, self.postgres):
            service.stop()


def throwaway_environment(
    services: EmbeddedServices, *, api_port: int, sandbox_port: int, task_queue: str
) -> dict[str, str]:
    """The environment every process of the stack shares: fresh secrets, the sandbox's
    provider settings, and limits no single test client should hit."""
    return {
        **sandbox_env(api_port, sandbox_port),
        "OFFERHUB_ENVIRONMENT": "test",
        "OFFERHUB_MASTER_KEY": "ohk_master_" + secrets.token_urlsafe(32),
        "WALLET_ENCRYPTION_KEY": secrets.token_hex(32),
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "TEMPORAL_ADDRESS": services.temporal_address,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "API_PORT": str(api_port),
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        # one client drives many users: the per-key limit has its own tests (own API process)
        "RATE_LIMIT_PER_KEY_PER_MINUTE": "100000",
        "RATE_LIMIT_UNAUTHENTICATED_PER_IP_PER_MINUTE": "100000",
    }


def wait_healthy(api_url: str, *, timeout: float) -> None:
    """Until `GET /health` answers 200 (every dependency, a worker on the API's queue included)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            report = httpx.get(f"{api_url}/health", timeout=5)
            if report.status_code == 200:
                return
            detail = report.text
        except httpx.TransportError as exc:
            detail = repr(exc)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{api_url} not healthy within {timeout:.0f} s: {detail[:300]}")
        time.sleep(0.2)
