"""The no-op baseline of the lifecycle benchmark: the same Updates and activity counts as
OrderWorkflow's lifecycle, doing nothing (kept apart so the workflow sandbox sees only temporalio)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

# per Update: (local activities, regular activities) of the real OrderWorkflow lifecycle
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
