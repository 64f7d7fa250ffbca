"""Test helpers: the session's embedded stack, API processes, polling instead of sleeping."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fastapi import APIRouter

from api.app import create_app
from cli.stack import (
    LOOPBACK,
    free_port,
    spawn,
    stop_process,
    wait_for_port,
)
from cli.throwaway import EmbeddedServices, StackEnvironment, throwaway_environment, wait_healthy
from settings import Settings

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


async def assert_eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.05, message: str = ""
) -> T:
    """Poll `probe` until it returns a truthy value (or stops raising AssertionError)."""
    deadline = time.monotonic() + timeout
    last_error: AssertionError | None = None
    while True:
        try:
            result = await probe()
            if result:
                return result
        except AssertionError as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout} s") from last_error
        await asyncio.sleep(interval)


@dataclass
class Process:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class Stack(StackEnvironment):
    """One real PostgreSQL, Redis and Temporal dev server for the whole test session."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    services: list[Any] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    api_url: str = ""
    sandbox_port: int = 0

    @property
    def task_queue(self) -> str:
        return self.env["TEMPORAL_TASK_QUEUE"]

    def start(self, overrides: dict[str, str]) -> None:
        services = EmbeddedServices(self.root).start()
        self.services.append(services)
        database_url = services.database_url
        self.sandbox_port = free_port()
        self.env = {
            **os.environ,
            **throwaway_environment(
                services, api_port=free_port(), sandbox_port=self.sandbox_port, task_queue="offerhub-test"
            ),
            # outbound webhooks retry within seconds, not minutes (tests/api/test_webhook_delivery.py)
            "WEBHOOK_RETRY_SCHEDULE_SECONDS": "0.5,1,1,2",
            **overrides,
        }
        import migrations

        migrations.upgrade(database_url)
        self.spawn("sandbox", ["sandbox", "run", "--port", str(self.sandbox_port)], port=self.sandbox_port)
        self.spawn("worker", ["worker"])
        self.api_url = self.spawn_api("api", {})

    def spawn(
        self, name: str, args: list[str], *, port: int | None = None, env: dict[str, str] | None = None
    ) -> Process:
        log = self.root / "logs" / f"{name}.log"
        process = spawn([sys.executable, "-m", "cli.main", *args], log=log, env=env or self.env)
        handle = Process(name, process, log)
        self.processes.append(handle)
        if port is not None:
            wait_for_port(port, timeout=30, process=process, name=name)
        return handle

    def spawn_api(self, name: str, overrides: dict[str, str]) -> str:
        """Start an API process (the main one, or one with other settings); return its base URL."""
        env = {**self.env, **overrides}
        if overrides:
            env["API_PORT"] = str(free_port())
        port = int(env["API_PORT"])
        self.spawn(name, ["api"], port=port, env=env)
        return f"http://{LOOPBACK}:{port}/api/v1"

    def start_airtm(self) -> AirtmStack:
        """A worker and an API in airtm mode beside the crypto ones (same PostgreSQL, Redis and
        Temporal; their own task queue), with the sandbox's Airtm webhooks sent to that API."""
        overrides = {"PAYMENT_PROVIDER": "airtm", "TEMPORAL_TASK_QUEUE": "offerhub-test-airtm"}
        self.spawn("worker-airtm", ["worker"], env={**self.env, **overrides})
        api_url = self.spawn_api("api-airtm", overrides)
        webhook_url = api_url + "/webhooks/airtm"
        httpx.put(f"http://{LOOPBACK}:{self.sandbox_port}/_sandbox/webhooks/settings", json={"airtm_url": webhook_url})
        wait_healthy(api_url, timeout=60)  # the worker polls its queue (and made its agent wallets)
        return AirtmStack(api_url=api_url, task_queue=overrides["TEMPORAL_TASK_QUEUE"], webhook_url=webhook_url)

    def log_text(self, name: str) -> str:
        return (self.root / "logs" / f"{name}.log").read_text(errors="replace")

    def stop(self, keep_data: bool = False) -> None:
        for process in reversed(self.processes):
            process.stop()
        for service in reversed(self.services):
            service.stop()
        # ~120 MB per session; OFFERHUB_KEEP_TEST_DATA=1 keeps it (and its logs) for a post-mortem
        if not keep_data and not os.environ.get("OFFERHUB_KEEP_TEST_DATA"):
            shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class AirtmStack:
    """The airtm-mode API of the session (`airtm` fixture): its base URL and task queue."""

    api_url: str
    task_queue: str
    webhook_url: str


def start_stack(overrides: dict[str, str] | None = None) -> Stack:
    stack = Stack(Path(tempfile.mkdtemp(prefix="offerhub-test-")))
    try:
        stack.start(overrides or {})
    except BaseException:
        stack.stop(keep_data=True)  # its logs say why it did not start
        raise
    return stack


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def create_key(
    client: httpx.AsyncClient, master_key: str, scopes: list[str], name: str = "test"
) -> dict[str, Any]:
    response = await client.post("/auth/api-keys", json={"name": name, "scopes": scopes}, headers=bearer(master_key))
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def stack_settings(stack: Stack) -> Settings:
    """The settings the stack's processes run with, as one object (for in-process use)."""
    values = {name.lower(): value for name, value in stack.env.items() if name.lower() in Settings.model_fields}
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@asynccontextmanager
async def in_process_api(stack: Stack, *routers: APIRouter) -> AsyncIterator[httpx.AsyncClient]:
    """The real app factory plus probe routers, driven over ASGI (for behaviour no endpoint shows yet)."""
    app = create_app(stack_settings(stack))
    for router in routers:
        app.include_router(router)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://in-process/api/v1") as http,
    ):
        yield http


async def assert_books_balanced(stack: Stack) -> None:
    """The conservation invariants of domain.md §3.5 hold (every scenario ends with this)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from activities.ledger_check import check_ledger

    engine = create_async_engine(stack.database_url)
    try:
        report = await check_ledger(engine)
    finally:
        await engine.dispose()
    assert report.ok, report.summary()


async def crypto_user(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    """A user whose wallet is READY on the sandbox."""
    external = fields.pop("external_user_id", None) or f"ext-{secrets.token_hex(6)}"
    created = await client.post("/users", json={"external_user_id": external, **fields}, headers=headers)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]

    async def ready() -> dict[str, Any] | None:
        user: dict[str, Any] = (await client.get(f"/users/{user_id}", headers=headers)).json()
        return user if user["wallet"]["status"] == "READY" else None

    ready_user = await assert_eventually(ready, timeout=10, message=f"wallet of {user_id} never became READY")
    assert ready_user is not None
    return ready_user
