"""`make dev` stopped and started again resumes where it stopped (issue 11, point 5).

The real `offerhub dev` runs twice on one temporary project directory, on free ports: the
second run finds PostgreSQL, Temporal, the secrets and the sandbox's chain under `.data/`,
so old wallets keep their money, new users get working wallets and orders reserve.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.demo import dev_database_url
from cli.dev import SANDBOX_DB_PATH, DevStack, load_secrets
from cli.stack import LOOPBACK, free_port
from cli.throwaway import CHOSEN_PREFIXES, own_environment
from sandbox.world import GENESIS_NAMES, World, derived_keypair
from tests.api.orders_support import funded_user, order_in
from tests.api.test_users import balance_of
from tests.support import Stack, assert_books_balanced, assert_eventually, bearer, crypto_user

READY_SECONDS = 40
STOP_SECONDS = 30


def clean_environment() -> dict[str, str]:
    return own_environment(dict(os.environ))


def proc_stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, from /proc (Linux); None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0], int(fields[19])


def descendants(pid: int) -> dict[int, int]:
    """pid -> start time of every process below `pid` (the start time tells a reused pid apart)."""
    table: dict[int, tuple[int, str, int]] = {}
    for entry in Path("/proc").iterdir():
        stat = proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None:
            table[int(entry.name)] = stat
    found: dict[int, int] = {}
    frontier = {pid}
    while frontier:
        frontier = {child for child, (parent, _, _) in table.items() if parent in frontier and child not in found}
        found.update({child: table[child][2] for child in frontier})
    return found


def end_process(pid: int, start_time: int | None, sig: int = signal.SIGKILL) -> bool:
    """Signal one process we started (if it is still that process) and wait for it to go."""
    stat = proc_stat(pid)
    if stat is None or stat[1] == "Z" or (start_time is not None and stat[2] != start_time):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stat = proc_stat(pid)
        if stat is None or stat[1] == "Z":
            break
        time.sleep(0.05)
    return True


@dataclass
class DevRun:
    """One `offerhub dev` process in `root`; `stop()` ends it and everything it started."""

    root: Path
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    started: dict[int, int] = field(default_factory=dict)  # pid -> start time
    leftovers: list[str] = field(default_factory=list)  # what the test had to end itself

    def start(self) -> None:
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "dev"],
                cwd=self.root,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> str:
        """Wait for the banner; return the API key it shows."""
        assert self.process is not None
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            self._remember_children()
            found = re.search(r"API key\s+(ohk_\S+)", self.output())
            if found and "Press Ctrl-C to stop." in self.output():
                return found.group(1)
            assert self.process.poll() is None, f"offerhub dev exited:\n{self.output()}"
            time.sleep(0.2)
        raise AssertionError(f"offerhub dev not ready within {READY_SECONDS} s:\n{self.output()}")

    def _remember_children(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.started.update(descendants(self.process.pid))

    def stop(self) -> int | None:
        """Ctrl-C, as an operator would; then make sure nothing it started is left running."""
        if self.process is None:
            return None
        self._remember_children()
        code: int | None = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                code = self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        else:
            code = self.process.returncode
        for pid, start_time in self.started.items():
            if end_process(pid, start_time):
                self.leftovers.append(f"pid {pid}")
        # PostgreSQL daemonises (pg_ctl): its postmaster is no child of ours
        postmaster = postmaster_pid(self.root)
        if postmaster is not None and end_process(postmaster, None, signal.SIGQUIT):  # immediate shutdown
            self.leftovers.append("postgres")
        return code


def postmaster_lines(root: Path) -> list[str]:
    path = root / ".data" / "postgres" / "postmaster.pid"
    return path.read_text().splitlines() if path.exists() else []


def postmaster_pid(root: Path) -> int | None:
    lines = postmaster_lines(root)
    return int(lines[0]) if lines and lines[0].strip().isdigit() else None


def database_url(root: Path) -> str:
    """The embedded PostgreSQL's URL, as `offerhub dev` built it (socket directory: line 5)."""
    lines = postmaster_lines(root)
    assert len(lines) >= 5, "PostgreSQL is not running"
    return f"postgresql+asyncpg://postgres@/offerhub?host={lines[4].strip()}"


def dev_environment(ports: dict[str, int]) -> dict[str, str]:
    return {
        **clean_environment(),
        "API_PORT": str(ports["api"]),
        "SANDBOX_PORT": str(ports["sandbox"]),
        "OFFERHUB_DEV_REDIS_PORT": str(ports["redis"]),
        "OFFERHUB_DEV_TEMPORAL_PORT": str(ports["temporal"]),
        "OFFERHUB_DEV_TEMPORAL_UI_PORT": str(ports["temporal_ui"]),
        # the test polls balances; the default 100/minute would throttle it
        "RATE_LIMIT_PER_KEY_PER_MINUTE": "100000",
    }


async def healthy(http: httpx.AsyncClient) -> dict[str, Any]:
    async def report() -> dict[str, Any] | None:
        response = await http.get("/health")
        data: dict[str, Any] = response.json()
        return data if response.status_code == 200 else None

    found = await assert_eventually(report, timeout=15, interval=0.5, message="GET /health never became healthy")
    assert found is not None and found["status"] == "healthy", found
    return found


@pytest.mark.timeout(120)
async def test_make_dev_stopped_and_started_again_then_new_user_funded_and_order_reserved(tmp_path: Path) -> None:
    started = time.monotonic()
    ports = {name: free_port() for name in ("api", "sandbox", "redis", "temporal", "temporal_ui")}
    env = dev_environment(ports)
    api_url = f"http://{LOOPBACK}:{ports['api']}/api/v1"
    # the helpers of the other API tests only need these of a stack
    stack = Stack(tmp_path, sandbox_port=ports["sandbox"], api_url=api_url)
    first = DevRun(tmp_path, env, tmp_path / "dev-1.log")
    second: DevRun | None = None
    try:
        first.start()
        key = bearer(first.wait_ready())
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
            await healthy(http)
            old_buyer = await funded_user(http, stack, key, "40.00")
        assert first.stop() == 0, first.output()
        assert first.leftovers == [], f"offerhub dev left {first.leftovers} running"
        assert (tmp_path / ".data" / SANDBOX_DB_PATH).exists()
        stored_master = load_secrets(tmp_path / ".data" / "secrets.env")["OFFERHUB_MASTER_KEY"]

        # the operator exports a master key of their own: it wins over .data/secrets.env
        exported_master = "ohk_master_" + secrets.token_urlsafe(32)
        second = DevRun(tmp_path, {**env, "OFFERHUB_MASTER_KEY": exported_master}, tmp_path / "dev-2.log")
        second.start()
        key = bearer(second.wait_ready())
        assert "OFFERHUB_MASTER_KEY from the environment" in second.output()
        stack.env["DATABASE_URL"] = database_url(tmp_path)
        # what `make demo`'s ledger check finds beside a running `make dev`
        assert dev_database_url(tmp_path) == stack.env["DATABASE_URL"]
        async with (
            httpx.AsyncClient(base_url=api_url, timeout=30) as http,
            httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{ports['sandbox']}/_sandbox", timeout=30) as sandbox,
        ):
            report = await healthy(http)
            assert report["checks"]["stellar_horizon"]["status"] == "ok", report
            refused = await http.get("/auth/api-keys", headers=bearer(stored_master))
            assert refused.status_code == 401, refused.text
            assert (await http.get("/auth/api-keys", headers=bearer(exported_master))).status_code == 200

            # the first run's money is where it was, in PostgreSQL and on the resumed chain
            assert (await balance_of(http, key, old_buyer["id"]))["available"] == "40.00"
            synced = await http.post(f"/users/{old_buyer['id']}/balance/sync", headers=key)
            assert synced.status_code == 200 and synced.json()["provider_verified"] is True, synced.text

            # a new user gets a working wallet, is funded through the faucet and buys
            buyer = await funded_user(http, stack, key, "25.00")
            seller = await crypto_user(http, key)
            order = await order_in(http, key, buyer["id"], seller["id"], "25.00", ["reserve"])
            assert order["status"] == "FUNDS_RESERVED", order
            balance = await balance_of(http, key, buyer["id"])
            assert (balance["available"], balance["reserved"]) == ("0.00", "25.00"), balance
            # an order between the first run's buyer and the new seller reserves too
            old_order = await order_in(http, key, old_buyer["id"], seller["id"], "15.00", ["reserve"])
            assert old_order["status"] == "FUNDS_RESERVED", old_order

            await healthy(http)
            invariants = (await sandbox.get("/invariants")).json()
            assert invariants["ok"], invariants
        await assert_books_balanced(stack)
    finally:
        for run in (second, first):
            if run is not None:
                run.stop()
    assert time.monotonic() - started < 90, f"took {time.monotonic() - started:.0f} s"


def test_exported_settings_win_over_data_secrets_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(CHOSEN_PREFIXES):
            monkeypatch.delenv(name)
    # existing services: nothing embedded is started, only the environment is assembled
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://db.invalid/offerhub")
    monkeypatch.setenv("REDIS_URL", "redis://redis.invalid:6379/0")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.invalid:7233")
    secrets_file = tmp_path / ".data" / "secrets.env"
    stored = load_secrets(secrets_file)
    before = secrets_file.read_text()

    monkeypatch.setenv("OFFERHUB_MASTER_KEY", "ohk_master_exported")
    monkeypatch.setenv("STELLAR_HORIZON_URL", "http://horizon.invalid")
    env = DevStack(tmp_path, "crypto").environment()

    assert env["OFFERHUB_MASTER_KEY"] == "ohk_master_exported"
    assert env["WALLET_ENCRYPTION_KEY"] == stored["WALLET_ENCRYPTION_KEY"]  # unset: the file fills it
    assert env["STELLAR_HORIZON_URL"] == "http://horizon.invalid"
    assert env["SANDBOX_DB"] == str(tmp_path / ".data" / SANDBOX_DB_PATH)
    assert secrets_file.read_text() == before

    # a fresh .data/ never generates what the environment already gives
    fresh = tmp_path / "fresh"
    DevStack(fresh, "crypto").environment()
    assert "OFFERHUB_MASTER_KEY" not in (fresh / ".data" / "secrets.env").read_text()
    assert "WALLET_ENCRYPTION_KEY=" in (fresh / ".data" / "secrets.env").read_text()


def test_sandbox_resumes_its_chain_with_the_same_genesis_accounts(tmp_path: Path) -> None:
    db = str(tmp_path / "chain.db")
    first = World(seed="dev-seed", passphrase="p", db_path=db, webhook_settings={"tw_url": "http://old/hooks"})
    genesis = {name: derived_keypair("dev-seed", name).public_key for name in GENESIS_NAMES}
    assert set(genesis.values()) <= set(first.state.chain.accounts)
    first.next_uuid("payin")
    first.state.chain.accounts[genesis["faucet"]].native -= 7
    first.commit()

    # a restart with the same seed: the same chain, the same issuer and faucet, the counters go on
    again = World(seed="dev-seed", passphrase="p", db_path=db, webhook_settings={"tw_url": "http://new/hooks"})
    assert again.state.chain.accounts[genesis["faucet"]].native == first.state.chain.accounts[genesis["faucet"]].native
    assert again.state.counters == first.state.counters
    # where the orchestrator listens comes from this start's environment
    assert again.state.settings.webhooks["tw_url"] == "http://new/hooks"

    # another seed does not wipe a chain that holds balances: it is resumed as it was
    other = World(seed="other-seed", passphrase="p", db_path=db, webhook_settings={})
    assert other.state.seed == "dev-seed" and genesis["usdc-issuer"] in other.state.chain.accounts
