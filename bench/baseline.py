"""No-op baselines of the benchmarks: the same Updates, Signals and activity counts as the
product's workflows, doing nothing (kept apart so the workflow sandbox sees only temporalio).
BaselineWorkflow mirrors OrderWorkflow's lifecycle; ShapeBaselineWorkflow takes any shape."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

# per Update: (local activities, regular activities) of the OrderWorkflow lifecycle as first written
# (release ran its three chain steps as three activities; bench/lifecycle.py also reports CURRENT_SHAPE)
SHAPE = {"created": (1, 0), "reserve": (1, 0), "create_escrow": (2, 1), "fund_escrow": (2, 1), "release": (2, 3)}


@activity.defn(name="bench_noop")
async def noop(_: str) -> str:
    return "ok"


@workflow.defn(name="BaselineWorkflow")
class BaselineWorkflow:
    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done)
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _steps(self, name: str) -> str:
        local, regular = SHAPE[name]
        for _ in range(local):
            await workflow.execute_local_activity("bench_noop", name, start_to_close_timeout=timedelta(seconds=10))
        for _ in range(regular):
            await workflow.execute_activity("bench_noop", name, start_to_close_timeout=timedelta(seconds=10))
        return name

    @workflow.update
    async def created(self) -> str:
        return await self._steps("created")

    @workflow.update
    async def reserve(self) -> str:
        return await self._steps("reserve")

    @workflow.update
    async def create_escrow(self) -> str:
        return await self._steps("create_escrow")

    @workflow.update
    async def fund_escrow(self) -> str:
        return await self._steps("fund_escrow")

    @workflow.update
    async def release(self) -> str:
        result = await self._steps("release")
        self.done = True
        return result


@workflow.defn(name="ShapeBaselineWorkflow")
class ShapeBaselineWorkflow:
    """A no-op workflow of any shape: `plan` lists its steps in order, each "update:LRL" or
    "signal:RL" (L a local activity, R a regular one). The `step` Update runs the next update
    step's activities and answers; a `nudge` Signal lets the run method run the next signal
    step's (as a product workflow reads a provider after a webhook). It ends after the last."""

    @workflow.init
    def __init__(self, plan: list[str]) -> None:
        self.plan = [step.split(":", 1) for step in plan]
        self.next = 0  # the next step to run
        self.nudges = 0  # Signals received
        self.signals_done = 0  # ... of which the signal step ran
        self.lock = asyncio.Lock()

    @workflow.run
    async def run(self, plan: list[str]) -> int:
        while self.next < len(self.plan):
            await workflow.wait_condition(lambda: self.next >= len(self.plan) or self._signal_due())
            if self._signal_due():
                async with self.lock:
                    self.signals_done += 1
                    await self._run_next()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.next

    def _signal_due(self) -> bool:
        return self.next < len(self.plan) and self.plan[self.next][0] == "signal" and self.nudges > self.signals_done

    async def _run_next(self) -> str:
        _, kinds = self.plan[self.next]
        self.next += 1
        for kind in kinds:
            if kind == "L":
                await workflow.execute_local_activity("bench_noop", kinds, start_to_close_timeout=timedelta(seconds=10))
            else:
                await workflow.execute_activity("bench_noop", kinds, start_to_close_timeout=timedelta(seconds=10))
        return kinds

    @workflow.update
    async def step(self) -> str:
        async with self.lock:
            return await self._run_next()

    @step.validator
    def _check_step(self) -> None:
        if self.next >= len(self.plan) or self.plan[self.next][0] != "update":
            raise ApplicationError("no update step is next", type="INVALID_STATE", non_retryable=True)

    @workflow.signal
    def nudge(self) -> None:
        self.nudges += 1
