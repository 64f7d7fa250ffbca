"""What the *direct* commands share (operations.md §1): the server's settings, PostgreSQL and
Temporal, each failure mapped to its exit code: 2 for a missing or invalid setting (a usage
error), 3 when the service cannot be reached."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
    from temporalio.client import Client

    from settings import Settings

EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def fail(message: str, code: int) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """The server's settings from the environment; a bad or missing one is a usage error."""
    from pydantic import ValidationError

    from settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper() or 'settings'}: {e['msg']}" for e in exc.errors())
        fail(f"invalid settings: {problems}", EXIT_USAGE)


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine whose first connection has succeeded (else exit 3), disposed on the way out."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(settings.database_url.get_secret_value())
    try:
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (OSError, DBAPIError) as exc:
            fail(f"cannot reach the database: {type(exc).__name__}: {exc}".splitlines()[0], EXIT_UNREACHABLE)
        yield engine
    finally:
        await engine.dispose()


async def temporal(settings: Settings) -> Client:
    """A Temporal client with the server's data converter (else exit 3)."""
    from api.services import connect_temporal

    try:
        return await connect_temporal(settings)
    except RuntimeError as exc:  # temporalio: "Failed client connect: ..."
        fail(f"cannot reach Temporal at {settings.temporal_address}: {exc}".splitlines()[0], EXIT_UNREACHABLE)
