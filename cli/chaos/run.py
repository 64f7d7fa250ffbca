"""`offerhub chaos`: one seeded reliability run on its own embedded stack.

One `random.Random(seed)` draws the whole plan first (process faults and their times, the
users, one seed per actor, the fault phases), then the run goes: actors generate activity
while fault phases change and processes die, until the duration or the operation budget is
spent; then faults are cleared, the second API and worker stop, every flow is settled, and
the checks run. Exit 1 on any violation.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from cli.chaos import faults
from cli.chaos.checks import Checker
from cli.chaos.clients import ClientPool
from cli.chaos.generator import Generator
from cli.chaos.processes import ProcessChaos, plan, supervise
from cli.chaos.receiver import Receiver
from cli.chaos.report import Report
from cli.chaos.stack import ChaosStack
from offerhub_sdk import AsyncOfferHub

DEFAULT_SEED = 16
DEFAULT_DURATION = {"crypto": 180.0, "airtm": 150.0}
DEFAULT_MAX_OPERATIONS = 600
DEFAULT_USERS = 8
ACTORS = 4
FAULT_PHASES = 4
TREASURY_FLOAT = 10_000_000  # cents: airtm mode's on-chain float for escrows


@dataclass(frozen=True)
class Options:
    seed: int = DEFAULT_SEED
    provider: str = "crypto"
    duration: float = DEFAULT_DURATION["crypto"]
    max_operations: int = DEFAULT_MAX_OPERATIONS
    users: int = DEFAULT_USERS
    keep: bool = False  # keep the run's directory (logs, databases) for a post-mortem


def run_chaos(options: Options, echo: Callable[[str], None] = print) -> Report:
    report = Report(options.seed, options.provider, options.duration, options.max_operations, options.users)
    started = time.monotonic()
    stack = ChaosStack(options.provider)
    echo(f"chaos: seed {options.seed}, {options.provider} mode, {options.duration:g} s, data in {stack.root}")
    try:
        stack.start()
        echo(f"chaos: stack ready in {time.monotonic() - started:.0f} s")
        asyncio.run(_run(stack, options, report, echo))
    finally:
        report.wall_seconds = time.monotonic() - started
        report.restarts = {name: count for name, count in stack.restarts.items() if count}
        keep = options.keep or bool(report.violations)
        stack.stop(keep=keep)
        if keep:
            echo(f"chaos: logs and data kept in {stack.root}")
    return report


async def _run(stack: ChaosStack, options: Options, report: Report, echo: Callable[[str], None]) -> None:
    rng = random.Random(options.seed)
    process_steps = plan(rng)
    setup_rng, drain_rng = random.Random(rng.getrandbits(64)), random.Random(rng.getrandbits(64))
    actor_rngs = [random.Random(rng.getrandbits(64)) for _ in range(ACTORS)]
    phases = [faults.phase_config(rng, options.provider, phase) for phase in range(FAULT_PHASES)]

    stop = asyncio.Event()
    supervisor = asyncio.create_task(supervise(stack, stop))
    receiver = Receiver()
    await receiver.start()
    fault_log = faults.FaultLog()
    async with (
        httpx.AsyncClient(base_url=stack.sandbox_url, timeout=60) as sandbox,
        AsyncOfferHub(api_key=stack.master_key, base_url=stack.api_url(), max_retries=5) as master,
    ):
        key = await master.api_keys.create(name=f"chaos-{options.seed}", scopes=["read", "write", "support"])
        assert key.key is not None
        clients = {
            name: AsyncOfferHub(api_key=key.key, base_url=stack.api_url(name), max_retries=0, timeout=60)
            for name in stack.api_ports
        }
        pool = ClientPool(clients, stack.alive)
        secrets = [
            stack.master_key,
            key.key,
            stack.env["WALLET_ENCRYPTION_KEY"],
            stack.env["TEMPORAL_PAYLOAD_ENCRYPTION_KEY"],
        ]
        endpoints: dict[str, str] = {}
        for path in ("/hooks/a", "/hooks/b"):
            endpoint = await pool.call(
                "webhook_endpoint.create",
                setup_rng,
                lambda c, k, p=path: c.webhook_endpoints.create(
                    url=receiver.url(p), event_types=["*"], idempotency_key=k
                ),  # type: ignore[misc]
            )
            endpoints[endpoint.id] = path
            secrets.append(endpoint.secret or "")
        info = (await sandbox.get("/_sandbox/info")).json()
        generator = Generator(
            options.provider,
            pool,
            sandbox,
            passphrase=info["network_passphrase"],
            usdc_issuer=info["usdc"]["issuer"],
            budget=options.max_operations,
        )
        if options.provider == "airtm":
            await generator.fund_treasury(await _treasury(stack.database_url), TREASURY_FLOAT)
        echo(f"chaos: {options.users} users ...")
        await generator.setup(setup_rng, options.users)

        echo(f"chaos: {ACTORS} actors for up to {options.duration:g} s / {options.max_operations} operations ...")
        began = time.monotonic()
        generator.deadline = began + options.duration
        chaos = ProcessChaos(stack, process_steps)
        processes = asyncio.create_task(chaos.run(began, options.duration))
        phasing = asyncio.create_task(_phases(sandbox, phases, fault_log, began, options.duration))
        await asyncio.gather(*(generator.actor(r) for r in actor_rngs))
        echo(f"chaos: activity done after {time.monotonic() - began:.0f} s; settling every flow ...")
        for task in (processes, phasing):
            task.cancel()
        await asyncio.gather(processes, phasing, return_exceptions=True)
        await fault_log.collect(sandbox)
        await faults.clear(sandbox)
        await chaos.finish()
        await asyncio.to_thread(_wait_up, stack)
        await generator.drain(drain_rng)

        echo("chaos: checking ...")
        await fault_log.collect(sandbox)
        report.faults = fault_log.fired + await fault_log.webhook_faults(sandbox)
        checker = Checker(
            database_url=stack.database_url,
            env=stack.env,
            api_url=stack.api_url(),
            sandbox=sandbox,
            provider=options.provider,
            activity=generator.activity,
            receiver=receiver,
            endpoints=endpoints,
            secrets=secrets,
            logs=stack.logs,
            error_bodies=pool.tally.error_bodies,
        )
        findings = await checker.run()
        for problem in pool.tally.internal_errors:
            findings.add("internal_error", "API", problem)
        report.operations = pool.tally.operations
        report.refusals = pool.tally.refusals
        report.retries = pool.tally.retries
        report.processes = chaos.done
        report.timeline = chaos.timeline
        report.decisions = generator.activity.decisions
        report.figures = findings.figures
        report.violations = findings.violations
        await pool.close()
    stop.set()
    await supervisor
    await receiver.stop()


async def _phases(
    sandbox: httpx.AsyncClient, phases: list[dict[str, object]], log: faults.FaultLog, began: float, duration: float
) -> None:
    for index, config in enumerate(phases):
        await asyncio.sleep(max(0.0, began + duration * index / len(phases) - time.monotonic()))
        await log.collect(sandbox)
        await faults.install(sandbox, config)


async def _treasury(database_url: str) -> str:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        deadline = time.monotonic() + 60
        while True:
            async with engine.connect() as conn:
                address = await conn.scalar(
                    text("SELECT public_key FROM wallets WHERE purpose = 'TREASURY' AND is_active LIMIT 1")
                )
            if address or time.monotonic() > deadline:
                assert address, "no treasury wallet"
                return str(address)
            await asyncio.sleep(1)
    finally:
        await engine.dispose()


def _wait_up(stack: ChaosStack) -> None:
    """Every process back (the supervisor restarts the killed ones) and the API healthy."""
    from cli.throwaway import wait_healthy

    wait_healthy(stack.api_url(), timeout=120)
