"""The chaos run's own embedded stack: PostgreSQL, Redis, Temporal, the sandbox, workers, APIs.

Built from the pieces `offerhub dev` uses (cli/stack.py for the services, cli/dev.py for the
sandbox wiring and the supervised `Child`), in a temporary directory on free loopback
ports, so a run never touches `.data/` nor a `make dev` running beside it. Children are
supervised as `offerhub dev` supervises them: one that dies comes back by itself (here after
one second, since the run kills them on purpose).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cli.dev import Child, sandbox_env
from cli.stack import (
    LOOPBACK,
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedTemporal,
    free_port,
    stop_process,
    wait_for_port,
)

# settings the run chooses itself: the caller's environment must not leak into them
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
# what the run passes on: the bug hook of the tests (activities/ledger.py), inert unless set
PASSED_THROUGH = ("OFFERHUB_CHAOS_BUG",)
RESTART_DELAY_SECONDS = 1.0


def run_environment(base: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in base.items() if not k.startswith(CHOSEN_PREFIXES) or k in PASSED_THROUGH}


@dataclass
class ChaosStack:
    provider: str
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="offerhub-chaos-")))
    env: dict[str, str] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)
    parked: set[str] = field(default_factory=set)  # children stopped on purpose (not restarted)
    restarts: dict[str, int] = field(default_factory=dict)
    redis: EmbeddedRedis | None = None
    services: list[EmbeddedPostgres | EmbeddedRedis | EmbeddedTemporal] = field(default_factory=list)
    api_ports: dict[str, int] = field(default_factory=dict)
    sandbox_port: int = 0

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def master_key(self) -> str:
        return self.env["OFFERHUB_MASTER_KEY"]

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    @property
    def sandbox_url(self) -> str:
        return f"http://{LOOPBACK}:{self.sandbox_port}"

    def api_url(self, name: str = "api") -> str:
        return f"http://{LOOPBACK}:{self.api_ports[name]}/api/v1"

    def start(self) -> None:
        pg = EmbeddedPostgres(self.root / "postgres")
        self.services.append(pg)
        self.redis = EmbeddedRedis(self.root / "redis", free_port())
        self.services.append(self.redis)
        temporal = EmbeddedTemporal(self.root / "temporal", free_port(), ui_port=None, retry_ports=True)
        self.services.append(temporal)
        database_url = pg.start()
        redis_url = self.redis.start()
        temporal_address = temporal.start()
        self.sandbox_port = free_port()
        self.api_ports = {"api": free_port(), "api-2": free_port()}
        self.env = {
            **run_environment(dict(os.environ)),
            **sandbox_env(self.api_ports["api"], self.sandbox_port),
            "OFFERHUB_ENVIRONMENT": "test",
            "OFFERHUB_MASTER_KEY": "ohk_master_" + secrets.token_urlsafe(32),
            "WALLET_ENCRYPTION_KEY": secrets.token_hex(32),
            "TEMPORAL_PAYLOAD_ENCRYPTION_KEY": secrets.token_hex(32),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "TEMPORAL_ADDRESS": temporal_address,
            "TEMPORAL_TASK_QUEUE": "offerhub-chaos",
            "PAYMENT_PROVIDER": self.provider,
            "API_PORT": str(self.api_ports["api"]),
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            # the run is one client with many users: the per-key limits would only throttle it
            "RATE_LIMIT_PER_KEY_PER_MINUTE": "100000",
            "RATE_LIMIT_TOPUPS_PER_USER_PER_MINUTE": "1000",
            "RATE_LIMIT_WITHDRAWALS_PER_USER_PER_MINUTE": "1000",
            "RATE_LIMIT_UNAUTHENTICATED_PER_IP_PER_MINUTE": "100000",
            # outbound webhooks retry within seconds; Airtm flows are polled every few seconds
            "WEBHOOK_RETRY_SCHEDULE_SECONDS": "0.5,1,1,2,4",
            "TOPUP_POLL_INTERVAL_SECONDS": "3",
            "WITHDRAWAL_POLL_INTERVAL_SECONDS": "3",
            # the run asks for its own reconciliation at the end
            "RECONCILIATION_INTERVAL_SECONDS": "3600",
            # the sandbox keeps its chain on disk: a restart of it resumes the same chain
            "SANDBOX_DB": str(self.root / "sandbox" / "chain.db"),
        }
        (self.root / "sandbox").mkdir(parents=True, exist_ok=True)
        import migrations

        migrations.upgrade(database_url)
        offerhub = [sys.executable, "-m", "cli.main"]
        self._add(
            Child("sandbox", [*offerhub, "sandbox", "run", "--port", str(self.sandbox_port)], self._log("sandbox"))
        )
        self._add(Child("worker", [*offerhub, "worker"], self._log("worker")))
        self._add(Child("api", [*offerhub, "api"], self._log("api"), self.api_ports["api"]))
        self._add(Child("worker-2", [*offerhub, "worker"], self._log("worker-2")), parked=True)
        self._add(Child("api-2", [*offerhub, "api"], self._log("api-2"), self.api_ports["api-2"]), parked=True)
        for name in ("sandbox", "worker", "api"):
            self.start_child(name)
        wait_healthy(self.api_url(), timeout=120)

    def _log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def _add(self, child: Child, *, parked: bool = False) -> None:
        self.children[child.name] = child
        self.restarts[child.name] = 0
        if parked:
            self.parked.add(child.name)

    def _child_env(self, name: str) -> dict[str, str]:
        if name in self.api_ports:
            return {**self.env, "API_PORT": str(self.api_ports[name])}
        return self.env

    def start_child(self, name: str) -> None:
        child = self.children[name]
        child.start(self._child_env(name))
        child.restart_at = 0.0
        self.parked.discard(name)  # after the start: the supervisor never sees it half-started
        if child.port is not None:
            wait_for_port(child.port, timeout=60, process=child.process, name=name)

    def park(self, name: str) -> None:
        """Stop a child gracefully and leave it stopped."""
        self.parked.add(name)
        stop_process(self.children[name].process)

    def alive(self, name: str) -> bool:
        child = self.children[name]
        return name not in self.parked and child.process is not None and child.process.poll() is None

    def supervise(self) -> None:
        """Restart a child that died (`offerhub dev`'s supervision, with a fixed short delay)."""
        now = time.monotonic()
        for name, child in self.children.items():
            if name in self.parked or child.process is None or child.process.poll() is None:
                continue
            if child.restart_at == 0.0:
                child.restart_at = now + RESTART_DELAY_SECONDS
            elif now >= child.restart_at:
                child.start(self._child_env(name))
                child.restart_at = 0.0
                self.restarts[name] += 1

    def kill(self, name: str) -> bool:
        """SIGKILL one child (its process group: the ids we started); the supervisor restarts it."""
        process = self.children[name].process
        if name in self.parked or process is None or process.poll() is not None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return True

    def restart_redis(self, down_seconds: float) -> None:
        assert self.redis is not None
        self.redis.stop()
        time.sleep(down_seconds)
        self.redis.start()

    def stop(self, *, keep: bool = False) -> None:
        for child in reversed(list(self.children.values())):
            stop_process(child.process)
        for service in reversed(self.services):
            service.stop()
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)


def wait_healthy(api_url: str, *, timeout: float) -> None:
    """Until `GET /health` answers 200 (every dependency, a worker on the queue included)."""
    deadline = time.monotonic() + timeout
    detail = ""
    while time.monotonic() < deadline:
        try:
            report = httpx.get(f"{api_url}/health", timeout=5)
            if report.status_code == 200:
                return
            detail = report.text
        except httpx.TransportError as exc:
            detail = repr(exc)
        time.sleep(0.3)
    raise RuntimeError(f"{api_url} not healthy within {timeout:.0f} s: {detail[:300]}")
