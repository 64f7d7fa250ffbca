"""Activities about the worker itself (the probe that proves it reaches its database)."""

from __future__ import annotations

import os
import socket

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from models import steps
from models.workflow_io import ProbeResult


class SystemActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @activity.defn(name=steps.PROBE_DATABASE.name)
    async def probe_database(self) -> ProbeResult:
        async with self.engine.connect() as conn:
            ok = (await conn.execute(text("SELECT 1"))).scalar_one() == 1
        return ProbeResult(database_ok=ok, worker_identity=f"{socket.gethostname()}:{os.getpid()}")
