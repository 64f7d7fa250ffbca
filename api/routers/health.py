"""`GET /health` (dependencies, 503 when degraded) and `GET /health/live` (bare probe).

The `stellar_horizon` check also proves that the chain holds what PostgreSQL says it
holds: the USDC issuer and every platform wallet recorded as activated. A new chain beside
an old database (a sandbox restarted without its snapshot) fails there by name, instead of
every new wallet staying PENDING behind a healthy report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import APIRouter
from sqlalchemy import select, text
from sqlmodel import col
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from api.errors import ApiJSONResponse
from api.policy import Access, GuardedRoute, ServicesDep, policy
from api.services import Services
from models.tables import Wallet
from models.timefmt import iso, utcnow
from providers import health as probes
from providers.stellar.horizon import usdc_balance_stroops
from settings import VERSION, Settings

router = APIRouter(route_class=GuardedRoute, tags=["health"])
PROVIDER_CACHE_SECONDS = 10.0
_provider_cache: dict[str, tuple[float, dict[str, Any]]] = {}
# accounts do not vanish from a live chain: once seen, they are looked up again only this often
CHAIN_ACCOUNTS_CACHE_SECONDS = 300.0
_chain_accounts_seen: dict[str, float] = {}  # Horizon URL -> when every expected account was last found


async def _timed(check: Callable[[], Awaitable[None]], timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        return {"status": "error", "latency_ms": None, "error": f"timed out after {timeout:g} s"}
    except probes.ProbeFailed as exc:
        error = str(exc)
    except httpx.HTTPError as exc:
        error = f"unreachable ({type(exc).__name__})"
    except Exception as exc:  # the reason is shown, never a secret or a trace
        error = type(exc).__name__
    else:
        return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000), "error": None}
    return {"status": "error", "latency_ms": None, "error": error}


async def _cached_provider(name: str, check: Callable[[], Awaitable[None]], timeout: float) -> dict[str, Any]:
    cached = _provider_cache.get(name)
    if cached and time.monotonic() - cached[0] < PROVIDER_CACHE_SECONDS:
        return cached[1]
    result = await _timed(check, timeout)
    _provider_cache[name] = (time.monotonic(), result)
    return result


async def _database(services: Services) -> None:
    async with services.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _redis(services: Services) -> None:
    await services.redis.ping()


async def _temporal(services: Services) -> None:
    client = await services.temporal()
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=services.settings.temporal_namespace,
            task_queue=TaskQueue(name=services.settings.temporal_task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    if not described.pollers:
        raise probes.ProbeFailed("no worker is polling the task queue")


async def _recorded_platform_wallets(services: Services) -> list[tuple[str, str]]:
    """(purpose, public key) of the platform wallets PostgreSQL records as activated (READY)."""
    async with services.sessions() as session:
        rows = await session.execute(
            select(col(Wallet.purpose), col(Wallet.public_key))
            .where(col(Wallet.user_id).is_(None), col(Wallet.is_active).is_(True), col(Wallet.status) == "READY")
            .order_by(col(Wallet.purpose))
        )
    return [(str(purpose), str(key)) for purpose, key in rows.all()]


async def _horizon_account(http: httpx.AsyncClient, settings: Settings, account_id: str) -> dict[str, Any] | None:
    response = await http.get(f"{settings.horizon_url}/accounts/{account_id}")
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise probes.ProbeFailed(f"HTTP {response.status_code} on an account lookup")
    account: dict[str, Any] = response.json()
    return account


async def _chain_accounts(services: Services, http: httpx.AsyncClient) -> None:
    """The USDC issuer and every recorded platform wallet (with its USDC trustline) exist on the chain."""
    settings = services.settings
    seen = _chain_accounts_seen.get(settings.horizon_url)
    if seen is not None and time.monotonic() - seen < CHAIN_ACCOUNTS_CACHE_SECONDS:
        return
    try:
        wallets: list[tuple[str, str]] | None = await _recorded_platform_wallets(services)
    except Exception:  # the database check reports it; the chain is still checked for the issuer
        wallets = None
    expected = [("USDC issuer", settings.usdc_issuer), *(wallets or [])]
    accounts = await asyncio.gather(*(_horizon_account(http, settings, key) for _, key in expected))
    problems: list[str] = []
    if accounts[0] is None:
        problems.append("USDC issuer (STELLAR_USDC_ISSUER) not on the chain")
    missing = [purpose for (purpose, _), account in zip(expected[1:], accounts[1:], strict=True) if account is None]
    if missing:
        problems.append(f"platform wallets not on the chain: {', '.join(missing)}")
    untrusting = [
        purpose
        for (purpose, _), account in zip(expected[1:], accounts[1:], strict=True)
        if account is not None
        and usdc_balance_stroops(account, settings.stellar_usdc_asset_code, settings.usdc_issuer) is None
    ]
    if untrusting:
        problems.append(f"platform wallets without a USDC trustline: {', '.join(untrusting)}")
    if problems:
        raise probes.ProbeFailed("; ".join(problems))
    if wallets is not None:
        _chain_accounts_seen[settings.horizon_url] = time.monotonic()


async def _stellar(services: Services, http: httpx.AsyncClient) -> None:
    await probes.probe_horizon(http, services.settings)
    await _chain_accounts(services, http)


SKIPPED = {"status": "skipped", "latency_ms": None, "error": None}


async def health_report(services: Services) -> dict[str, Any]:
    settings = services.settings
    timeout = settings.health_check_timeout_seconds
    async with probes.probe_client(timeout) as http:
        names = ["database", "redis", "temporal", "stellar_horizon", "trustless_work"]
        checks: list[Awaitable[dict[str, Any]]] = [
            _timed(lambda: _database(services), timeout),
            _timed(lambda: _redis(services), timeout),
            _timed(lambda: _temporal(services), timeout),
            _cached_provider("stellar_horizon", lambda: _stellar(services, http), timeout),
            _cached_provider("trustless_work", lambda: probes.probe_trustless_work(http, settings), timeout),
        ]
        if settings.payment_provider == "airtm":
            names.append("airtm")
            checks.append(_cached_provider("airtm", lambda: probes.probe_airtm(http, settings), timeout))
        results = dict(zip(names, await asyncio.gather(*checks), strict=True))
    results.setdefault("airtm", SKIPPED)
    healthy = all(check["status"] != "error" for check in results.values())
    maintenance = await _maintenance_flag(services)
    return {
        "status": "healthy" if healthy else "degraded",
        "version": VERSION,
        "environment": settings.offerhub_environment,
        "payment_provider": settings.payment_provider,
        "maintenance": maintenance,
        "checks": results,
        "timestamp": iso(utcnow()),
    }


async def _maintenance_flag(services: Services) -> bool:
    try:
        return (await services.maintenance.current(services)).enabled
    except Exception:
        return False


@router.get("/health", operation_id="health-check", summary="Dependencies and providers")
@policy(Access.PUBLIC)
async def get_health(services: ServicesDep) -> ApiJSONResponse:
    report = await health_report(services)
    return ApiJSONResponse(report, status_code=200 if report["status"] == "healthy" else 503)


@router.get("/health/live", operation_id="health-live", summary="Liveness probe (no dependencies)")
@policy(Access.PUBLIC)
async def get_live() -> dict[str, Any]:
    return {"status": "ok", "timestamp": iso(utcnow())}
