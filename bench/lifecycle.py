"""Order lifecycles per second vs a no-op baseline workflow, measured in the same run.

A lifecycle is what a marketplace drives (32 buyer/seller pairs, round robin): create
(update-with-start) -> reserve -> create_escrow -> fund_escrow -> release, with every real activity (PostgreSQL ledger
steps, Trustless Work and Stellar on the sandbox at zero latency). The baseline
(BaselineWorkflow) is a workflow with the lifecycle's five Updates and the local and regular
activities it was first written with (8 local, 5 regular: one per chain step), all doing
nothing; the target is measured against it. Since release's three chain steps run as one
activity the product runs 8 local and 3 regular; a second baseline of that shape
(ShapeBaselineWorkflow, CURRENT_SHAPE) is reported beside it. All are driven through the
Temporal client at concurrency 1, 8 and 32, alternating; each point is the median of 3 runs.
Target: lifecycle/baseline >= 0.8 (issue #17).

Run: `make bench` (or `python bench/lifecycle.py`). Loopback only; bounded; stops by itself.
The figures are saved to bench/results/lifecycle.json (bench/results_file.py).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvloop
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench import cpu
from bench.baseline import BaselineWorkflow, ShapeBaselineWorkflow, noop
from bench.results_file import save
from bench.stacks import BENCH_STACK, deposits_credited
from bench.starts import created_with_start
from models.ids import IdPrefix, new_id
from models.orders_io import (
    Caller,
    EscrowAction,
    OrderCreated,
    OrderInput,
    OrderOutcome,
    Reserve,
    Settle,
    order_start_options,
)

# BENCH_CONCURRENCY / BENCH_REPEATS narrow a run while investigating; `make bench` uses the defaults
CONCURRENCY = tuple(int(c) for c in os.environ.get("BENCH_CONCURRENCY", "1,8,32").split(","))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
PAIRS = 32
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
# the shape the lifecycle has now (since release's three chain steps run as one activity), for
# the second baseline: "update:LRL" is an Update running a local, a regular, a local activity
CURRENT_SHAPE = ["update:L", "update:L", "update:LRL", "update:LRL", "update:LRL"]
# Trustless Work's webhooks become Signals to the order workflow (api.md §12.2), as they
# would from the real provider; BENCH_TW_WEBHOOKS=0 turns them off to measure their cost
TW_WEBHOOKS = os.environ.get("BENCH_TW_WEBHOOKS", "1") != "0"


async def history_shape(client: Client, workflow_id: str) -> dict[str, int]:
    """The events of one finished workflow's history: how many, and how many of each type."""
    handle = client.get_workflow_handle(workflow_id)
    await handle.result()
    history = await handle.fetch_history()
    kinds = Counter(EventType.Name(event.event_type).removeprefix("EVENT_TYPE_") for event in history.events)
    return {"events": len(history.events), **dict(sorted(kinds.items()))}


async def baseline(client: Client, queue: str) -> str:
    workflow_id = f"bench-{uuid.uuid4()}"
    start: WithStartWorkflowOperation = WithStartWorkflowOperation(  # type: ignore[type-arg]
        BaselineWorkflow.run, id=workflow_id, task_queue=queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING
    )
    await client.execute_update_with_start_workflow(BaselineWorkflow.created, start_workflow_operation=start)
    handle = client.get_workflow_handle(workflow_id)
    for update in ("reserve", "create_escrow", "fund_escrow", "release"):
        await handle.execute_update(update)
    return workflow_id


async def shaped(client: Client, queue: str, plan: list[str]) -> str:
    """One run of the baseline of `plan`: its Updates from here, its Signals from here too."""
    workflow_id = f"bench-{uuid.uuid4()}"
    start: WithStartWorkflowOperation = WithStartWorkflowOperation(  # type: ignore[type-arg]
        ShapeBaselineWorkflow.run,
        plan,
        id=workflow_id,
        task_queue=queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    steps = iter(plan)
    assert next(steps).startswith("update:")
    await client.execute_update_with_start_workflow(ShapeBaselineWorkflow.step, start_workflow_operation=start)
    handle = client.get_workflow_handle(workflow_id)
    for step in steps:
        if step.startswith("update:"):
            await handle.execute_update(ShapeBaselineWorkflow.step)
        else:
            await handle.signal(ShapeBaselineWorkflow.nudge)
    await handle.result()
    return workflow_id


async def lifecycle(client: Client, queue: str, buyer: str, seller: str) -> str:
    order_id = new_id(IdPrefix.ORDER)
    caller = Caller(actor_type="system", actor_id="bench")
    order = OrderInput(id=order_id, buyer_id=buyer, seller_id=seller, title="bench", amount=100)
    await created_with_start(
        client,
        "OrderWorkflow",
        order,
        workflow_id=order_id,
        queue=queue,
        options=order_start_options(order),
        created=OrderCreated(caller=caller),
        result_type=OrderOutcome,
    )
    handle = client.get_workflow_handle(order_id)
    for update, arg in (
        ("reserve", Reserve(caller=caller)),
        ("create_escrow", EscrowAction(caller=caller)),
        ("fund_escrow", EscrowAction(caller=caller)),
        ("release", Settle(caller=caller)),
    ):
        try:
            outcome = await handle.execute_update(update, arg, result_type=OrderOutcome)
        except WorkflowUpdateFailedError as exc:  # say which step of which order, and why
            raise RuntimeError(f"{update} of {order_id} failed: {exc.cause!r}") from exc
    assert outcome.status == "CLOSED", outcome
    return order_id


async def rate(
    run_one: Callable[[], Awaitable[object]], concurrency: int, count: int, cpu_used: dict[str, float]
) -> float:
    """Items per second; adds the CPU seconds each role spent meanwhile to `cpu_used`."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def runner() -> None:
        while not queue.empty():
            queue.get_nowait()
            await run_one()

    before = cpu.snapshot()
    started = time.perf_counter()
    await asyncio.gather(*[runner() for _ in range(concurrency)])
    elapsed = time.perf_counter() - started
    for role, seconds in cpu.spent(before, cpu.snapshot()).items():
        cpu_used[role] = cpu_used.get(role, 0.0) + seconds
    return count / elapsed


def case(name: str, concurrency: int, product: list[float], baseline: list[float]) -> dict[str, Any]:
    """One point of a result file: medians of the repeats, their ratio, and every run."""
    p, b = statistics.median(product), statistics.median(baseline)
    return {
        "name": name,
        "concurrency": concurrency,
        "product_per_s": round(p, 3),
        "baseline_per_s": round(b, 3),
        "ratio": round(p / b, 3),
        "runs": [
            {"product_per_s": round(x, 3), "baseline_per_s": round(y, 3)}
            for x, y in zip(product, baseline, strict=True)
        ],
    }


def cpu_per_item(used: dict[str, float], items: int) -> dict[str, float]:
    """CPU milliseconds per item, per role."""
    return {role: round(1000 * seconds / items, 2) for role, seconds in sorted(used.items())}


async def main() -> dict[str, Any]:
    from tests.support import crypto_user, start_stack

    stack = await asyncio.to_thread(start_stack, BENCH_STACK)
    cpu.track(str(stack.root))  # its PostgreSQL daemon left our process tree
    for extra in range(1, WORKERS):  # workers are stateless: more processes, more cores
        stack.spawn(f"worker-{extra}", ["worker"])
    try:
        client = await Client.connect(stack.env["TEMPORAL_ADDRESS"], data_converter=pydantic_data_converter)
        counts = {c: 2 * c + 8 for c in CONCURRENCY}
        each = REPEATS * sum(counts.values()) // PAIRS + 2  # dollars per buyer (orders are 1.00)
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api:
            master = {"Authorization": f"Bearer {stack.master_key}"}
            created = await api.post(
                "/auth/api-keys", json={"name": "bench", "scopes": ["read", "write"]}, headers=master
            )
            headers = {"Authorization": f"Bearer {created.json()['key']}"}
            # distinct buyers and sellers, as on a marketplace: a wallet signs one step at a time
            pairs = [(await crypto_user(api, headers), await crypto_user(api, headers)) for _ in range(PAIRS)]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.sandbox_port}/_sandbox") as control:
                if not TW_WEBHOOKS:  # to see what the provider's webhooks (Signals to the order) cost
                    await control.put("/tw/settings", json={"webhooks_enabled": False})
                for buyer, _ in pairs:
                    await control.post(
                        "/faucet/usdc", json={"address": buyer["wallet"]["public_key"], "amount": f"{each}.00"}
                    )
            await deposits_credited(api, headers, (buyer for buyer, _ in pairs), f"{each}.00")
        users = itertools.cycle([(buyer["id"], seller["id"]) for buyer, seller in pairs])
        queue = f"bench-baseline-{uuid.uuid4().hex[:6]}"
        workflows = [BaselineWorkflow, ShapeBaselineWorkflow]
        async with Worker(client, task_queue=queue, workflows=workflows, activities=[noop]):
            header = ("concurrency", "lifecycles/s", "baseline/s", "ratio", "same-shape/s", "ratio")
            print(" ".join(f"{h:>{w}}" for h, w in zip(header, (11, 13, 11, 6, 13, 6), strict=True)))
            cpu_real: dict[str, float] = {}
            cpu_base: dict[str, float] = {}
            cpu_now: dict[str, float] = {}
            cases: list[dict[str, Any]] = []
            for concurrency in CONCURRENCY:
                real: list[float] = []
                base: list[float] = []
                now: list[float] = []  # the baseline of the lifecycle's current shape
                for _ in range(REPEATS):
                    real.append(
                        await rate(
                            lambda: lifecycle(client, stack.task_queue, *next(users)),
                            concurrency,
                            counts[concurrency],
                            cpu_real,
                        )
                    )
                    base.append(await rate(lambda: baseline(client, queue), concurrency, counts[concurrency], cpu_base))
                    now.append(
                        await rate(
                            lambda: shaped(client, queue, CURRENT_SHAPE), concurrency, counts[concurrency], cpu_now
                        )
                    )
                r, b = statistics.median(real), statistics.median(base)
                cases.append(case("order lifecycle", concurrency, real, base))
                same = statistics.median(now)
                print(
                    f"{concurrency:>11} {r:>13.2f} {b:>11.2f} {r / b:>6.2f} {same:>13.2f} {r / same:>6.2f}", flush=True
                )
                cases[-1] |= {"baseline_same_shape_per_s": round(same, 3), "ratio_same_shape": round(r / same, 3)}
                cases[-1]["runs"] = [
                    {**run, "baseline_same_shape_per_s": round(y, 3)}
                    for run, y in zip(cases[-1]["runs"], now, strict=True)
                ]
            total = REPEATS * sum(counts[c] for c in CONCURRENCY)
            print(f"\nCPU ms per item, all runs ({total} of each; the baseline worker runs in the bench process):")
            print(f"{'role':>11} {'lifecycle':>10} {'baseline':>9}")
            for role in sorted(set(cpu_real) | set(cpu_base)):
                real_ms, base_ms = (1000 * used.get(role, 0) / total for used in (cpu_real, cpu_base))
                print(f"{role:>11} {real_ms:>10.1f} {base_ms:>9.1f}")
            histories = {
                "product": await history_shape(client, await lifecycle(client, stack.task_queue, *next(users))),
                "baseline": await history_shape(client, await baseline(client, queue)),
            }
            print(f"\nhistory events per item: lifecycle {histories['product']}, baseline {histories['baseline']}")
            results: dict[str, Any] = {
                "cases": cases,
                "history_events_per_item": histories,
                "repeats": REPEATS,
                "items": {str(c): counts[c] for c in CONCURRENCY},
                "cpu_ms_per_item": {
                    "product": cpu_per_item(cpu_real, total),
                    "baseline": cpu_per_item(cpu_base, total),
                    "baseline_same_shape": cpu_per_item(cpu_now, total),
                },
                "target_ratio": 0.8,
            }
    finally:
        await asyncio.to_thread(stack.stop)
    save("lifecycle", results)
    return results


if __name__ == "__main__":
    uvloop.run(main())  # the event loop the worker runs on, so the baseline's worker gets it too
