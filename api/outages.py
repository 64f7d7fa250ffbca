"""A dependency that cannot be reached is a `503 SERVICE_UNAVAILABLE` with `Retry-After`,
never a 500 (api.md §1.8): the request changed nothing and can be sent again as it is.

Connections are bounded (connect and statement timeouts on PostgreSQL, socket timeouts on
Redis, RPC deadlines on Temporal; `api.services`), so an outage answers within seconds,
and every pool reconnects by itself once the dependency is back.
"""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from temporalio.service import RPCError, RPCStatusCode

from models.errors import ErrorCode, OfferhubError
from models.sqlstate import sqlstate

RETRY_AFTER_SECONDS = 5
TEMPORAL_UNREACHABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED)
# SQLSTATE classes of a server going away: 08 connection exception, 57 operator intervention
# (shutdown, statement timeout), 53 insufficient resources
_DATABASE_UNAVAILABLE = ("08", "57", "53")


def service_unavailable(what: str, message: str | None = None) -> OfferhubError:
    """`what` is unreachable (or `message`, when the caller knows more)."""
    return OfferhubError(
        ErrorCode.SERVICE_UNAVAILABLE,
        message or f"{what} is unreachable; nothing was changed, retry later",
        {"retry_after_seconds": RETRY_AFTER_SECONDS},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def unreachable_dependency(exc: BaseException) -> str | None:
    """Which dependency `exc` says is unreachable ("The database", "Redis", "The workflow
    engine", or "A dependency" for a bare socket error), or None when it is not an outage."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return "Redis"
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return "The database"
    if isinstance(exc, DBAPIError):
        code = sqlstate(exc)
        if exc.connection_invalidated or (isinstance(code, str) and code[:2] in _DATABASE_UNAVAILABLE):
            return "The database"
        return None
    if isinstance(exc, RPCError):
        return "The workflow engine" if exc.status in TEMPORAL_UNREACHABLE else None
    if isinstance(exc, RuntimeError) and "client connect" in str(exc).lower():
        return "The workflow engine"  # the Temporal SDK's "Failed client connect"
    if isinstance(exc, OSError | TimeoutError):
        return "A dependency"
    return None
