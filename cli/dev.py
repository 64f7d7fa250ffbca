"""`offerhub dev`: the whole system on one machine, data under `.data/`, Ctrl-C stops it.

PostgreSQL, Redis and Temporal come from pip wheels (cli/stack.py) unless DATABASE_URL,
REDIS_URL or TEMPORAL_ADDRESS point at existing services. The sandbox, worker and API run
as supervised children: one that dies is restarted with backoff (1 s doubling to 30 s).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cli.stack import (
    LOOPBACK,
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedTemporal,
    spawn,
    stop_process,
    wait_for_port,
)

API_PORT, SANDBOX_PORT, TEMPORAL_PORT, TEMPORAL_UI_PORT, REDIS_PORT = 4000, 8700, 7233, 8233, 6379
HEALTH_DEADLINE_SECONDS = 60


def load_secrets(path: Path) -> dict[str, str]:
    """Generated once per `.data/`, so a second `make dev` keeps its keys and wallets readable."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, value = line.partition("=")
            if name and value:
                values[name.strip()] = value.strip()
    changed = False
    generated = {
        "OFFERHUB_MASTER_KEY": "ohk_master_" + secrets.token_urlsafe(32),
        "WALLET_ENCRYPTION_KEY": secrets.token_hex(32),
    }
    for name, value in generated.items():
        if name not in values:
            values[name] = value
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        path.chmod(0o600)
    return values


def sandbox_env(api_port: int, sandbox_port: int) -> dict[str, str]:
    """Product settings that point every provider client at the local sandbox (providers.md §5.1)."""
    from sandbox.core import DEFAULTS
    from sandbox.world import derived_keypair

    base = f"http://{LOOPBACK}:{sandbox_port}"
    return {
        "STELLAR_NETWORK": "testnet",
        "STELLAR_NETWORK_PASSPHRASE": DEFAULTS["SANDBOX_NETWORK_PASSPHRASE"],
        "STELLAR_HORIZON_URL": f"{base}/horizon",
        "STELLAR_FRIENDBOT_URL": f"{base}/friendbot",
        "STELLAR_USDC_ISSUER": derived_keypair(DEFAULTS["SANDBOX_SEED"], "usdc-issuer").public_key,
        "TRUSTLESS_WORK_BASE_URL": f"{base}/tw",
        "TRUSTLESS_WORK_API_KEY": DEFAULTS["SANDBOX_TW_API_KEY"],
        "TRUSTLESS_WORK_WEBHOOK_SECRET": DEFAULTS["SANDBOX_TW_WEBHOOK_SECRET"],
        "AIRTM_BASE_URL": f"{base}/airtm/v2",
        "AIRTM_CHECKOUT_BASE_URL": f"{base}/airtm/checkout",
        "AIRTM_API_KEY": DEFAULTS["SANDBOX_AIRTM_API_KEY"],
        "AIRTM_API_SECRET": DEFAULTS["SANDBOX_AIRTM_API_SECRET"],
        "AIRTM_WEBHOOK_SECRET": DEFAULTS["SANDBOX_AIRTM_WEBHOOK_SECRET"],
        "PUBLIC_BASE_URL": f"http://{LOOPBACK}:{api_port}",
        # the sandbox is local and cheap to poll: deposits show within a second or two
        "DEPOSIT_POLL_INTERVAL_SECONDS": "1",
        # the real services throttle (50/min, 10/s); the sandbox does not, so neither do its clients
        "TRUSTLESS_WORK_RATE_LIMIT_PER_MINUTE": "100000",
        "AIRTM_RATE_LIMIT_PER_SECOND": "1000",
        "SANDBOX_PORT": str(sandbox_port),
        "SANDBOX_TW_WEBHOOK_URL": f"http://{LOOPBACK}:{api_port}/api/v1/webhooks/trustless-work",
        "SANDBOX_AIRTM_WEBHOOK_URL": f"http://{LOOPBACK}:{api_port}/api/v1/webhooks/airtm",
    }


@dataclass
class Child:
    name: str
    args: list[str]
    log: Path
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    backoff: float = 1.0
    restart_at: float = 0.0

    def start(self, env: dict[str, str]) -> None:
        self.process = spawn(self.args, log=self.log, env=env)


@dataclass
class DevStack:
    root: Path
    provider: str
    api_port: int = API_PORT
    sandbox_port: int = SANDBOX_PORT
    children: list[Child] = field(default_factory=list)
    services: list[object] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / ".data"

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(load_secrets(self.data / "secrets.env"))
        for name, value in sandbox_env(self.api_port, self.sandbox_port).items():
            env.setdefault(name, value)
        env["PAYMENT_PROVIDER"] = self.provider
        env.setdefault("API_PORT", str(self.api_port))
        if "DATABASE_URL" not in os.environ:
            pg = EmbeddedPostgres(self.data / "postgres")
            env["DATABASE_URL"] = pg.start()
            self.services.append(pg)
        if "REDIS_URL" not in os.environ:
            redis = EmbeddedRedis(self.data / "redis", REDIS_PORT)
            env["REDIS_URL"] = redis.start()
            self.services.append(redis)
        if "TEMPORAL_ADDRESS" not in os.environ:
            temporal = EmbeddedTemporal(self.data / "temporal", TEMPORAL_PORT, TEMPORAL_UI_PORT)
            env["TEMPORAL_ADDRESS"] = temporal.start()
            self.services.append(temporal)
        return env

    def run(self) -> int:
        stopping = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        started = time.monotonic()
        try:
            env = self.environment()
            print("applying database migrations ...", flush=True)
            subprocess.run([sys.executable, "-m", "cli.main", "migrate"], env=env, check=True, cwd=self.root)
            offerhub = [sys.executable, "-m", "cli.main"]
            logs = self.data / "logs"
            self.children = [
                Child(
                    "sandbox",
                    [*offerhub, "sandbox", "run", "--port", str(self.sandbox_port)],
                    logs / "sandbox.log",
                    self.sandbox_port,
                ),
                Child("worker", [*offerhub, "worker"], logs / "worker.log"),
                Child("api", [*offerhub, "api"], logs / "api.log", self.api_port),
            ]
            for child in self.children:
                child.start(env)
            key = self._wait_healthy_and_issue_key(env)
            self._banner(key, time.monotonic() - started)
            while not stopping:
                self._supervise(env)
                time.sleep(0.5)
            return 0
        finally:
            print("\nstopping ...", flush=True)
            for child in reversed(self.children):
                stop_process(child.process)
            for service in reversed(self.services):
                service.stop()  # type: ignore[attr-defined]

    def _wait_healthy_and_issue_key(self, env: dict[str, str]) -> str:
        base = f"http://{LOOPBACK}:{self.api_port}/api/v1"
        wait_for_port(self.api_port, timeout=HEALTH_DEADLINE_SECONDS, name="api")
        deadline = time.monotonic() + HEALTH_DEADLINE_SECONDS
        report: dict[str, object] = {}
        while time.monotonic() < deadline:
            response = httpx.get(f"{base}/health", timeout=10)
            report = response.json()
            if response.status_code == 200:
                break
            time.sleep(0.5)
        else:
            print(f"warning: the stack is not healthy yet: {report.get('checks')}", flush=True)
        created = httpx.post(
            f"{base}/auth/api-keys",
            json={"name": f"dev-{time.strftime('%Y%m%d-%H%M%S')}", "scopes": ["read", "write", "support"]},
            headers={"Authorization": f"Bearer {env['OFFERHUB_MASTER_KEY']}"},
            timeout=10,
        )
        created.raise_for_status()
        return str(created.json()["key"])

    def _banner(self, key: str, seconds: float) -> None:
        ui = "" if "TEMPORAL_ADDRESS" in os.environ else f"http://{LOOPBACK}:{TEMPORAL_UI_PORT}"
        print(
            "\nOFFER-HUB Orchestrator is running "
            f"({self.provider} mode, ready in {seconds:.1f} s)\n"
            f"  API docs      http://{LOOPBACK}:{self.api_port}/docs\n"
            f"  API base      http://{LOOPBACK}:{self.api_port}/api/v1\n"
            f"  Temporal UI   {ui or '(external Temporal: see its own UI)'}\n"
            f"  Sandbox       http://{LOOPBACK}:{self.sandbox_port}/_sandbox/docs\n"
            f"  API key       {key}   (read, write, support; shown once)\n"
            f"  Master key    in .data/secrets.env\n"
            f"  Logs          .data/logs/\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )

    def _supervise(self, env: dict[str, str]) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.process is None or child.process.poll() is None:
                continue
            if child.restart_at == 0.0:
                print(
                    f"{child.name} exited with code {child.process.returncode}; restarting in {child.backoff:.0f} s",
                    flush=True,
                )
                child.restart_at = now + child.backoff
            elif now >= child.restart_at:
                child.start(env)
                child.restart_at = 0.0
                child.backoff = min(child.backoff * 2, 30.0)
