"""The API process's PostgreSQL: one pool of connections, checked for liveness without a round
trip on every checkout, and reads of one statement on the driver itself.

A connection is trusted at checkout if it answered within the last IDLE_PING_SECONDS and its
socket is still open (a server that went away closed it: asyncpg knows without asking); one
idle for longer is pinged first. A dead connection found at checkout invalidates the pool, so
every connection opened before it is replaced (what `pool_pre_ping` did, without its three
round trips: BEGIN, a ping, ROLLBACK). A connection that dies while in use fails that one
request with 503 SERVICE_UNAVAILABLE (api/outages.py); the next checkout replaces it.

`fetch` runs one read statement on the driver's connection outside a transaction (one
statement is a consistent snapshot by itself): no ORM mapping, no BEGIN/ROLLBACK, asyncpg's
own prepared-statement cache. A failure is raised as SQLAlchemy's DBAPIError, so the API's
outage rule (api/outages.py) reads it as it reads every other database error.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util.concurrency import greenlet_spawn

from models.sqlstate import DRIVER_ERRORS, as_sqlalchemy_error
from settings import Settings

IDLE_PING_SECONDS = 1.0
_USED_AT = "offerhub_used_at"  # in a pool entry's `info`: when it last answered (monotonic)


def create_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url.get_secret_value(),
        hide_parameters=True,  # SQL parameters (amounts, e-mails, sealed seeds) never reach logs or errors
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_use_lifo=True,  # the connection used last is used next; the others idle (and are pinged)
        connect_args=settings.database_connect_args,
        pool_timeout=settings.database_connect_timeout_seconds + 2,
    )
    dialect = engine.dialect

    def check_alive(dbapi_connection: Any, entry: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
        """At checkout (inside SQLAlchemy's greenlet, so the ping may await)."""
        driver = entry.driver_connection
        if driver is None or driver.is_closed():
            raise InvalidatePoolError("the server closed the connection")
        if time.monotonic() - entry.info.get(_USED_AT, 0.0) < IDLE_PING_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise InvalidatePoolError(f"no answer to a ping ({type(exc).__name__})") from exc
        entry.info[_USED_AT] = time.monotonic()

    pool = engine.sync_engine.pool
    event.listen(pool, "connect", _answered)
    event.listen(pool, "checkin", _answered)
    event.listen(pool, "checkout", check_alive)
    return engine


def _answered(dbapi_connection: Any, entry: ConnectionPoolEntry) -> None:
    entry.info[_USED_AT] = time.monotonic()


async def fetch(engine: AsyncEngine, statement: str, *args: object) -> list[asyncpg.Record]:
    """The rows of one read statement (`$1` parameters), run on a pooled connection's driver."""
    try:
        connection = await engine.raw_connection()
    except DRIVER_ERRORS as exc:  # no connection could be opened
        raise as_sqlalchemy_error(statement, exc, connection_invalidated=True) from exc
    try:
        driver: asyncpg.Connection = connection.driver_connection
        try:
            rows: list[asyncpg.Record] = await driver.fetch(statement, *args)
            return rows
        except DRIVER_ERRORS as exc:
            lost = isinstance(exc, OSError | TimeoutError) or driver.is_closed()
            if lost:
                connection.invalidate(exc)
            raise as_sqlalchemy_error(statement, exc, connection_invalidated=lost) from exc
    finally:
        await greenlet_spawn(connection.close)
