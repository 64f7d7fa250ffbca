"""The API process's PostgreSQL: one pool of connections for the ORM, checked for liveness
without a round trip on every checkout, and a small pool of driver connections for reads of
one statement.

A connection is trusted at checkout if it answered within the last IDLE_PING_SECONDS and its
socket is still open (a server that went away closed it: asyncpg knows without asking); one
idle for longer is pinged first. A dead connection found at checkout invalidates the pool, so
every connection opened before it is replaced (what `pool_pre_ping` did, without its three
round trips: BEGIN, a ping, ROLLBACK). A connection that dies while in use fails that one
request with 503 SERVICE_UNAVAILABLE (api/outages.py); the next checkout replaces it.

`DriverReads.fetch` runs one read statement on an asyncpg connection outside a transaction
(one statement is a consistent snapshot by itself): no ORM mapping, no BEGIN/ROLLBACK, asyncpg's
own prepared-statement cache, and asyncpg's pool, which hands a connection out and takes it back
for a third of the CPU of SQLAlchemy's (no greenlet, no events). The same liveness rules hold
there: a closed connection is replaced at acquire, one idle for longer than IDLE_PING_SECONDS is
pinged first. A failure is raised as SQLAlchemy's DBAPIError, so the API's outage rule
(api/outages.py) reads it as it reads every other database error.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

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


class _ReadConnection(asyncpg.Connection):  # type: ignore[misc]
    """A read-only use leaves no session state behind: nothing to reset when it goes back."""

    answered_at = 0.0  # monotonic; the pool's `init` and every read set it

    def get_reset_query(self) -> str:
        return ""

    def answered(self) -> None:
        self.answered_at = time.monotonic()

    def idle_too_long(self) -> bool:
        return time.monotonic() - self.answered_at > IDLE_PING_SECONDS


class DriverReads:
    """asyncpg connections for one-statement reads, opened on first use (the API starts without
    its database), as many as the ORM pool's size."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        args, options = engine.dialect.create_connect_args(engine.url)  # the engine's own URL, as asyncpg takes it
        self._connect = (args, {**options, **settings.database_connect_args})
        self._size = settings.database_pool_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def fetch(self, statement: str, *args: object) -> list[asyncpg.Record]:
        """The rows of one read statement (`$1` parameters)."""
        try:
            pool = self._pool or await self._open()
            async with pool.acquire() as connection:
                if not connection.idle_too_long() or await _answers(connection):
                    return await _read(connection, statement, args)
            # the server had ended that one: released closed, the pool opens another
            async with pool.acquire() as connection:
                return await _read(connection, statement, args)
        except DRIVER_ERRORS as exc:
            lost = isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError)
            raise as_sqlalchemy_error(statement, exc, connection_invalidated=lost) from exc

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                args, options = self._connect
                self._pool = await asyncpg.create_pool(
                    *args,
                    min_size=0,
                    max_size=self._size,
                    connection_class=_ReadConnection,
                    init=_prepare,
                    **options,
                )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


async def _prepare(connection: _ReadConnection) -> None:
    """JSON columns decoded as the ORM's engine decodes them."""
    for name in ("json", "jsonb"):
        await connection.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    connection.answered()


async def _read(connection: _ReadConnection, statement: str, args: tuple[object, ...]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await connection.fetch(statement, *args)
    connection.answered()
    return rows


async def _answers(connection: _ReadConnection) -> bool:
    try:
        await connection.execute("SELECT 1")
    except DRIVER_ERRORS:
        connection.terminate()
        return False
    connection.answered()
    return True
