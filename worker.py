"""The Temporal worker: every workflow and activity of the product on one task queue."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from temporalio.worker import Worker

from activities.system import SystemActivities
from api.services import connect_temporal, create_engine
from settings import Settings, get_settings
from workflows.probe import ProbeWorkflow

log = logging.getLogger("offerhub.worker")
WORKFLOWS: list[type] = [ProbeWorkflow]


def activities_for(settings: Settings) -> list[Any]:
    system = SystemActivities(create_engine(settings))
    return [system.probe_database]


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    client = await connect_temporal(settings)
    worker = Worker(
        client, task_queue=settings.temporal_task_queue, workflows=WORKFLOWS, activities=activities_for(settings)
    )
    log.info("worker polling task queue %s", settings.temporal_task_queue)
    if stop is None:
        await worker.run()
        return
    async with worker:
        await stop.wait()


def main() -> None:
    from cli.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
