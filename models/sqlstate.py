"""The SQLSTATE a database error carries, however the driver and SQLAlchemy wrapped it: the
worker decides from it whether a step failed for good, the API whether it is an outage; and
an error of the asyncpg driver, met on a statement run on the driver itself, raised as
SQLAlchemy raises it on its own paths, so both rules read it alike."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

# what asyncpg raises itself (SQLAlchemy translates these on its own paths, not on the driver's)
DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def sqlstate(exc: BaseException) -> str | None:
    """`exc`'s five-character SQLSTATE (asyncpg `sqlstate`, psycopg `pgcode`), or None."""
    orig = getattr(exc, "orig", None)
    for candidate in (exc, orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def as_sqlalchemy_error(statement: str, exc: BaseException, *, connection_invalidated: bool = False) -> DBAPIError:
    """A driver error as SQLAlchemy's: DataError (SQLSTATE class 22), IntegrityError (23), or
    DBAPIError; parameters hidden (they may hold amounts, e-mails, sealed seeds)."""
    kind = {"22": DataError, "23": IntegrityError}.get((sqlstate(exc) or "")[:2], DBAPIError)
    return kind(statement, None, exc, hide_parameters=True, connection_invalidated=connection_invalidated)
