"""Inputs and outputs of workflows and activities (pydantic, amounts as integer cents)."""

from __future__ import annotations

from pydantic import BaseModel


class ProbeResult(BaseModel):
    """What the probe workflow saw: the worker can run workflows, activities and reach PostgreSQL."""

    database_ok: bool
    worker_identity: str
