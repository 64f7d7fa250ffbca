"""Maintenance mode: the instance row in PostgreSQL, cached in Redis and for one second in
each process, so every replica applies a change within a second."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from models.errors import ErrorCode, OfferhubError
from models.ids import IdPrefix, new_id
from models.tables import Marketplace
from models.timefmt import iso

if TYPE_CHECKING:
    from api.services import Services

log = logging.getLogger("offerhub.maintenance")
REDIS_KEY = "offerhub:maintenance"
LOCAL_TTL_SECONDS = 1.0


@dataclass(frozen=True)
class MaintenanceState:
    enabled: bool
    message: str | None
    retry_after_seconds: int | None
    enabled_at: str | None
    enabled_by: str | None
    updated_at: str | None

    @classmethod
    def of(cls, row: Marketplace) -> MaintenanceState:
        return cls(
            row.maintenance_enabled,
            row.maintenance_message,
            row.maintenance_retry_after_seconds,
            iso(row.maintenance_enabled_at),
            row.maintenance_enabled_by,
            iso(row.updated_at),
        )

    def view(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def refusal(self) -> OfferhubError:
        retry_after = self.retry_after_seconds or 300
        return OfferhubError(
            ErrorCode.MAINTENANCE,
            self.message or "System maintenance in progress",
            {"message": self.message, "retry_after_seconds": retry_after, "enabled_at": self.enabled_at},
            headers={"Retry-After": str(retry_after)},
        )


async def marketplace_row(services: Services) -> Marketplace:
    """The instance's one row, created at first start (the `mkt_` ID never changes)."""
    async with services.sessions() as session:
        row = (await session.execute(select(Marketplace))).scalar_one_or_none()
        if row is not None:
            return row
    from sqlalchemy.dialects.postgresql import insert

    async with services.sessions() as session, session.begin():
        await session.execute(insert(Marketplace).values(id=new_id(IdPrefix.MARKETPLACE)).on_conflict_do_nothing())
    async with services.sessions() as session:
        return (await session.execute(select(Marketplace))).scalar_one()


class MaintenanceCache:
    def __init__(self) -> None:
        self._state: MaintenanceState | None = None
        self._read_at = 0.0

    def forget(self) -> None:
        self._state = None

    async def current(self, services: Services) -> MaintenanceState:
        now = time.monotonic()
        if self._state is not None and now - self._read_at < LOCAL_TTL_SECONDS:
            return self._state
        state = await self._from_redis(services)
        if state is None:
            state = MaintenanceState.of(await marketplace_row(services))
            await self.publish(services, state)
        self._state, self._read_at = state, now
        return state

    async def _from_redis(self, services: Services) -> MaintenanceState | None:
        try:
            raw = await services.redis.get(REDIS_KEY)
        except Exception:
            return None
        return MaintenanceState(**json.loads(raw)) if raw else None

    async def publish(self, services: Services, state: MaintenanceState) -> None:
        self._state, self._read_at = state, time.monotonic()
        try:
            await services.redis.set(REDIS_KEY, json.dumps(state.view()), ex=3600)
        except Exception as exc:
            log.warning("maintenance cache not published: %s", type(exc).__name__)
