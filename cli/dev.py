"""`offerhub dev`: the whole system on one machine, data under `.data/`, Ctrl-C stops it.

PostgreSQL, Redis and Temporal come from pip wheels (cli/stack.py) unless DATABASE_URL,
REDIS_URL or TEMPORAL_ADDRESS point at existing services. The sandbox, worker and API run
as supervised children: one that dies is restarted with backoff (1 s doubling to 30 s).

Everything that must survive a restart lives under `.data/`: PostgreSQL, Temporal's SQLite
file, the generated secrets and the sandbox's chain (`SANDBOX_DB`), so a second `make dev`
resumes where the first stopped. A variable already in the environment always wins over
`.data/secrets.env` and over the sandbox values written here.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection
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
# what `make dev` invents when neither the environment nor `.data/secrets.env` has it
SECRET_GENERATORS: dict[str, Callable[[], str]] = {
    "OFFERHUB_MASTER_KEY": lambda: "ohk_master_" + secrets.token_urlsafe(32),
    "WALLET_ENCRYPTION_KEY": lambda: secrets.token_hex(32),
}
# the sandbox's chain, beside the PostgreSQL that records the wallets living on it
SANDBOX_DB_PATH = Path("sandbox") / "chain.db"
NEW_CHAIN_BESIDE_OLD_DATABASE = (
    "the sandbox starts a new chain beside an existing database (a .data/ from before the sandbox kept "
    "its chain?): wallets recorded there are not on it; `offerhub dev --reset` starts over"
)


def load_secrets(path: Path, preset: Collection[str] = ()) -> dict[str, str]:
    """The secrets of `.data/secrets.env`, generating (once per `.data/`) those it lacks.

    A second `make dev` reads the same keys, so its wallets stay readable. A name in
    `preset` (already in the environment) is never generated: the environment wins and the
    file only fills what is unset.
    """
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, value = line.partition("=")
            if name and value:
                values[name.strip()] = value.strip()
    missing = [name for name in SECRET_GENERATORS if name not in values and name not in preset]
    for name in missing:
        values[name] = SECRET_GENERATORS[name]()
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        path.chmod(0o600)
    return values


def sandbox_env(
    api_port: int, sandbox_port: int, *, seed: str | None = None, passphrase: str | None = None
) -> dict[str, str]:
    """Product settings that point every provider client at the local sandbox (providers.md §5.1).

    `seed` and `passphrase` are the sandbox's (`SANDBOX_SEED`, `SANDBOX_NETWORK_PASSPHRASE`):
    the USDC issuer is derived from the seed exactly as the sandbox's genesis derives it.
    """
    from sandbox.core import DEFAULTS
    from sandbox.world import derived_keypair

    base = f"http://{LOOPBACK}:{sandbox_port}"
    seed = seed or DEFAULTS["SANDBOX_SEED"]
    return {
        "STELLAR_NETWORK": "testnet",
        "STELLAR_NETWORK_PASSPHRASE": passphrase or DEFAULTS["SANDBOX_NETWORK_PASSPHRASE"],
        "STELLAR_HORIZON_URL": f"{base}/horizon",
        "STELLAR_FRIENDBOT_URL": f"{base}/friendbot",
        "STELLAR_USDC_ISSUER": derived_keypair(seed, "usdc-issuer").public_key,
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


WORKER_METRICS_PORT = 9464
DATABASE_URL_FILE = "database.url"  # under .data/: the embedded PostgreSQL of a running `make dev`


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def port_from_env(name: str, default: int) -> int:
    """A port the operator (or a test) chose through the environment, else the fixed default."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SystemExit(f"{name} must be a TCP port, got {value!r}")
    return int(value)


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
    # API_PORT and SANDBOX_PORT are the product's own settings; the embedded services'
    # ports have dev-only names (tests run a second stack beside an operator's)
    api_port: int = field(default_factory=lambda: port_from_env("API_PORT", API_PORT))
    sandbox_port: int = field(default_factory=lambda: port_from_env("SANDBOX_PORT", SANDBOX_PORT))
    redis_port: int = field(default_factory=lambda: port_from_env("OFFERHUB_DEV_REDIS_PORT", REDIS_PORT))
    temporal_port: int = field(default_factory=lambda: port_from_env("OFFERHUB_DEV_TEMPORAL_PORT", TEMPORAL_PORT))
    temporal_ui_port: int = field(
        default_factory=lambda: port_from_env("OFFERHUB_DEV_TEMPORAL_UI_PORT", TEMPORAL_UI_PORT)
    )
    children: list[Child] = field(default_factory=list)
    services: list[object] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / ".data"

    def environment(self) -> dict[str, str]:
        """The children's settings: the environment first, then `.data/secrets.env`, then ours."""
        env = dict(os.environ)
        stored = load_secrets(self.data / "secrets.env", preset=env.keys())
        for name, value in stored.items():
            if name in env and env[name] != value:
                print(f"{name} from the environment (not the one in .data/secrets.env)", flush=True)
            env.setdefault(name, value)
        sandbox = sandbox_env(
            self.api_port,
            self.sandbox_port,
            seed=env.get("SANDBOX_SEED"),
            passphrase=env.get("SANDBOX_NETWORK_PASSPHRASE"),
        )
        for name, value in sandbox.items():
            env.setdefault(name, value)
        if "SANDBOX_DB" not in env:
            chain = self.data / SANDBOX_DB_PATH
            if not chain.exists() and (self.data / "postgres" / "PG_VERSION").exists():
                print(f"warning: {NEW_CHAIN_BESIDE_OLD_DATABASE}", flush=True)
            chain.parent.mkdir(parents=True, exist_ok=True)
            env["SANDBOX_DB"] = str(chain)
        env["PAYMENT_PROVIDER"] = self.provider
        env["API_PORT"] = str(self.api_port)
        if "TEMPORAL_METRICS_BIND_ADDRESS" not in env and port_is_free(WORKER_METRICS_PORT):
            # the worker's Temporal SDK metrics beside the API's /metrics (docs/operators.md)
            env["TEMPORAL_METRICS_BIND_ADDRESS"] = f"{LOOPBACK}:{WORKER_METRICS_PORT}"
        if "DATABASE_URL" not in os.environ:
            pg = EmbeddedPostgres(self.data / "postgres")
            env["DATABASE_URL"] = pg.start()
            # for the commands run beside the stack (`make demo`'s ledger check): not a secret,
            # the socket only accepts local connections
            (self.data / DATABASE_URL_FILE).write_text(env["DATABASE_URL"] + "\n")
            self.services.append(pg)
        if "REDIS_URL" not in os.environ:
            redis = EmbeddedRedis(self.data / "redis", self.redis_port)
            env["REDIS_URL"] = redis.start()
            self.services.append(redis)
        if "TEMPORAL_ADDRESS" not in os.environ:
            temporal = EmbeddedTemporal(self.data / "temporal", self.temporal_port, self.temporal_ui_port)
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
            if "not on the chain" in str(report.get("checks")):
                print(f"warning: {NEW_CHAIN_BESIDE_OLD_DATABASE}", flush=True)
        created = httpx.post(
            f"{base}/auth/api-keys",
            json={"name": f"dev-{time.strftime('%Y%m%d-%H%M%S')}", "scopes": ["read", "write", "support"]},
            headers={"Authorization": f"Bearer {env['OFFERHUB_MASTER_KEY']}"},
            timeout=10,
        )
        created.raise_for_status()
        return str(created.json()["key"])

    def _banner(self, key: str, seconds: float) -> None:
        ui = "" if "TEMPORAL_ADDRESS" in os.environ else f"http://{LOOPBACK}:{self.temporal_ui_port}"
        master = "from the environment" if "OFFERHUB_MASTER_KEY" in os.environ else "in .data/secrets.env"
        print(
            "\nOFFER-HUB Orchestrator is running "
            f"({self.provider} mode, ready in {seconds:.1f} s)\n"
            f"  API docs      http://{LOOPBACK}:{self.api_port}/docs\n"
            f"  API base      http://{LOOPBACK}:{self.api_port}/api/v1\n"
            f"  Temporal UI   {ui or '(external Temporal: see its own UI)'}\n"
            f"  Sandbox       http://{LOOPBACK}:{self.sandbox_port}/_sandbox/docs\n"
            f"  API key       {key}   (read, write, support; shown once)\n"
            f"  Master key    {master}\n"
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
