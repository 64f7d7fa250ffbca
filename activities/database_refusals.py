"""A database that refuses the data is not an outage: the step fails for good.

Temporal retries an activity's exceptions without limit (money movements must survive
outages), so an `IntegrityError` or `DataError` that escaped an activity (a constraint
nobody expected, a value PostgreSQL cannot store) used to retry forever. The same write
will be refused on every attempt, so this interceptor turns it into a non-retryable
`ApplicationError`: the workflow records the error and compensates like any step that
failed for good, and operators see the reason in the Temporal UI. Expected conflicts (a
ledger key already taken) are caught inside the activities and never reach here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from models.sqlstate import sqlstate

DATABASE_REFUSED = "DATABASE_REFUSED"
# SQLSTATE classes of a refusal that no retry can change: 22 data exception (a NUL in text,
# a number out of range), 23 integrity constraint violation
REFUSAL_CLASSES = ("22", "23")


def refused_by_database(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError | DataError):
        return True
    code = sqlstate(exc)
    return code is not None and code[:2] in REFUSAL_CLASSES


class DatabaseRefusals(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _FailForGood(next)


class _FailForGood(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except DBAPIError as exc:
            if not refused_by_database(exc):
                raise  # an outage (connection lost, timeout): retried
            # the driver's own words name the constraint or the value's kind; parameters are
            # hidden by the engine (hide_parameters), so no data of the row is echoed
            reason = str(exc.orig).splitlines()[0][:300] if exc.orig is not None else type(exc).__name__
            activity.logger.error("database refused the step: %s", reason)
            raise ApplicationError(
                f"the database refused this step: {reason}",
                {"error": type(exc).__name__, "sqlstate": sqlstate(exc)},
                type=DATABASE_REFUSED,
                non_retryable=True,
            ) from None
