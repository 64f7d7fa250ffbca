"""`GET /orders/{id}` latency and throughput vs a bare FastAPI + asyncpg read, in the same run.

The real side is the API process as `make dev` runs it (`offerhub api`: uvicorn, JSON logs, an
API key, the rate limit counted in Redis, the order with its escrow and milestones). The
baseline is `bench/reads_baseline.py` under the same uvicorn, reading the same order row by
primary key from the same PostgreSQL, with no authentication. One httpx client with
keep-alive drives both, alternating, at concurrency 1 and 16; each point is the median over
REPEATS runs of p50, p99 and requests per second. Targets (issue #17): p50 <= 1.3x the
baseline's and throughput >= 0.7x, at both levels.

Run: `make bench` (or `python bench/reads.py`). Loopback only; bounded in requests and time.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvloop

from bench.results_file import save

# BENCH_CONCURRENCY / BENCH_REPEATS narrow a run while investigating; `make bench` uses the defaults
CONCURRENCY = tuple(int(c) for c in os.environ.get("BENCH_CONCURRENCY", "1,16").split(","))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
REQUESTS = {1: 600, 16: 2400}  # per side and run; other levels: 150 per client
WARMUP = 100
TIME_LIMIT_SECONDS = 20.0  # a run stops early past this (a slow machine still ends)
BENCH = Path(__file__).resolve().parent
BASELINE_APP = BENCH / "reads_baseline.py"
Side = tuple[str, dict[str, str]]  # (URL of the order, headers)


async def measure(http: httpx.AsyncClient, side: Side, concurrency: int, count: int) -> dict[str, float]:
    """p50 and p99 in ms and requests per second of `count` GETs from `concurrency` clients."""
    url, headers = side
    latencies: list[float] = []
    deadline = time.perf_counter() + TIME_LIMIT_SECONDS
    remaining = count

    async def client() -> None:
        nonlocal remaining
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            sent = time.perf_counter()
            response = await http.get(url, headers=headers)
            latencies.append(time.perf_counter() - sent)
            if response.status_code != 200:
                raise AssertionError(f"{url}: {response.status_code} {response.text[:300]}")

    started = time.perf_counter()
    await asyncio.gather(*[client() for _ in range(concurrency)])
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50_ms": 1000 * quantiles[49], "p99_ms": 1000 * quantiles[98], "rps": len(latencies) / elapsed}


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


async def compare(api: Side, baseline: Side) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=max(CONCURRENCY), max_keepalive_connections=max(CONCURRENCY))
    levels: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        for side in (api, baseline):  # connections open and caches warm before anything counts
            await measure(http, side, max(CONCURRENCY), WARMUP)
        for concurrency in CONCURRENCY:
            count = REQUESTS.get(concurrency, 150 * concurrency)
            real, base = [], []
            for _ in range(REPEATS):  # alternating, so both sides share the machine's moods
                real.append(await measure(http, api, concurrency, count))
                base.append(await measure(http, baseline, concurrency, count))
            r, b = _median(real), _median(base)
            levels[str(concurrency)] = {
                "api": r,
                "baseline": b,
                "p50_ratio": r["p50_ms"] / b["p50_ms"],
                "p99_ratio": r["p99_ms"] / b["p99_ms"],
                "throughput_ratio": r["rps"] / b["rps"],
                "runs": {"api": real, "baseline": base},
            }
    return levels


def report(results: dict[str, Any]) -> None:
    print(
        f"{'concurrency':>11} {'api p50':>8} {'p99':>6} {'req/s':>6} {'base p50':>9} {'p99':>6} {'req/s':>6}"
        f" {'p50 ratio':>9} {'tput ratio':>10}"
    )
    for concurrency, level in results["levels"].items():
        r, b = level["api"], level["baseline"]
        print(
            f"{concurrency:>11} {r['p50_ms']:>8.2f} {r['p99_ms']:>6.2f} {r['rps']:>6.0f}"
            f" {b['p50_ms']:>9.2f} {b['p99_ms']:>6.2f} {b['rps']:>6.0f}"
            f" {level['p50_ratio']:>9.2f} {level['throughput_ratio']:>10.2f}"
        )
    print("(ms; median of", results["repeats"], "runs; targets: p50 ratio <= 1.3, throughput ratio >= 0.7)")


async def run() -> dict[str, Any]:
    from cli.stack import LOOPBACK, free_port, spawn, wait_for_port
    from tests.api.orders_support import funded_order
    from tests.support import Process, bearer, create_key, start_stack

    # the per-key limit is still counted on every request, never reached
    stack = await asyncio.to_thread(start_stack, {"RATE_LIMIT_PER_KEY_PER_MINUTE": "100000000"})
    try:
        port = free_port()
        log = stack.root / "logs" / "reads-baseline.log"
        process = spawn([sys.executable, str(BASELINE_APP), "--serve", str(port)], log=log, env=stack.env)
        stack.processes.append(Process("reads-baseline", process, log))
        wait_for_port(port, timeout=30, process=process, name="reads-baseline")
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as setup:
            key = await create_key(setup, stack.master_key, ["read", "write"], name="bench-reads")
            headers = bearer(key["key"])
            milestones = [
                {"milestone_ref": "design", "title": "Design", "amount": "1.00"},
                {"milestone_ref": "build", "title": "Build", "amount": "1.00"},
            ]
            steps = ["reserve", "escrow"]  # the order then has its escrow and milestones to join
            _, _, order = await funded_order(setup, stack, headers, "2.00", steps, milestones=milestones)
        api: Side = (f"{stack.api_url}/orders/{order['id']}", headers)
        baseline: Side = (f"http://{LOOPBACK}:{port}/orders/{order['id']}", {})
        levels = await compare(api, baseline)
    finally:
        await asyncio.to_thread(stack.stop)
    return {
        "bench": "reads",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "repeats": REPEATS,
        "cpus": os.cpu_count(),
        "levels": levels,
    }


def main() -> dict[str, Any]:
    """Run the benchmark; print its table, save bench/results/reads.json; return the results."""
    results = uvloop.run(run())
    report(results)
    save("reads", results)
    return results


if __name__ == "__main__":
    main()
