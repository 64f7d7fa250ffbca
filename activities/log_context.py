"""Every log line an activity writes carries its `workflow_id` (the resource ID) and the
activity's name (operations.md §4): a worker interceptor binds them in structlog's context,
which cli/logs.py merges into each line."""

from __future__ import annotations

from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor


class LogContext(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityLogContext(next)


class _ActivityLogContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        with structlog.contextvars.bound_contextvars(workflow_id=info.workflow_id, activity=info.activity_type):
            return await super().execute_activity(input)
