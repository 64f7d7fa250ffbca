"""The SQLSTATE a database error carries, however the driver and SQLAlchemy wrapped it: the
worker decides from it whether a step failed for good, the API whether it is an outage."""

from __future__ import annotations


def sqlstate(exc: BaseException) -> str | None:
    """`exc`'s five-character SQLSTATE (asyncpg `sqlstate`, psycopg `pgcode`), or None."""
    orig = getattr(exc, "orig", None)
    for candidate in (exc, orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None
