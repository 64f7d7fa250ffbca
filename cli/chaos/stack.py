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

from cli.dev import Child
from cli.stack import LOOPBACK, free_port, stop_process, wait_for_port
from cli.throwaway import EmbeddedServices, StackEnvironment, own_environment, throwaway_environment, wait_healthy

# what the run passes on: the bug hook of the tests (activities/ledger.py), inert unless set
PASSED_THROUGH = ("OFFERHUB_CHAOS_BUG",)
RESTART_DELAY_SECONDS = 1.0


@dataclass
class ChaosStack(StackEnvironment):
    provider: str
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="offerhub-chaos-")))
    env: dict[str, str] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)
    parked: set[str] = field(default_factory=set)  # children stopped on purpose (not restarted)
    restarts: dict[str, int] = field(default_factory=dict)
    services: EmbeddedServices | None = None
    api_ports: dict[str, int] = field(default_factory=dict)
    sandbox_port: int = 0

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def sandbox_url(self) -> str:
        return f"http://{LOOPBACK}:{self.sandbox_port}"

    def api_url(self, name: str = "api") -> str:
        return f"http://{LOOPBACK}:{self.api_ports[name]}/api/v1"

    def start(self) -> None:
        self.services = services = EmbeddedServices(self.root).start()
        database_url = services.database_url
        self.sandbox_port = free_port()
        self.api_ports = {"api": free_port(), "api-2": free_port()}
        self.env = {
            **own_environment(dict(os.environ), keep=PASSED_THROUGH),
            **throwaway_environment(
                services, api_port=self.api_ports["api"], sandbox_port=self.sandbox_port, task_queue="offerhub-chaos"
            ),
            "TEMPORAL_PAYLOAD_ENCRYPTION_KEY": secrets.token_hex(32),
            "PAYMENT_PROVIDER": self.provider,
            # the run is one client with many users: the per-user limits would only throttle it
            "RATE_LIMIT_TOPUPS_PER_USER_PER_MINUTE": "1000",
            "RATE_LIMIT_WITHDRAWALS_PER_USER_PER_MINUTE": "1000",
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
        assert self.services is not None
        self.services.redis.stop()
        time.sleep(down_seconds)
        self.services.redis.start()

    def stop(self, *, keep: bool = False) -> None:
        for child in reversed(list(self.children.values())):
            stop_process(child.process)
        if self.services is not None:
            self.services.stop()
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)
