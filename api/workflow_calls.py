"""Calling workflows from the API: Updates bounded by API_UPDATE_WAIT_SECONDS (then 202),
and their failures mapped to the error catalog."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.outages import TEMPORAL_UNREACHABLE, service_unavailable
from api.policy import RequestContext
from api.services import Services
from models.errors import INTEGRITY_ALARMS, ErrorCode, OfferhubError
from models.orders_io import Caller

log = logging.getLogger("offerhub.api.workflows")


class WorkflowGone(Exception):
    """The resource's workflow has completed: its record is final, every action is refused."""


def caller_of(context: RequestContext) -> Caller:
    actor_type, actor_id = context.actor
    return Caller(
        actor_type=actor_type, actor_id=actor_id, request_id=context.request_id, idempotency_key=context.idempotency_key
    )


def update_id(context: RequestContext, workflow_id: str, update: str) -> str | None:
    """Derived from the credential's namespace and Idempotency-Key, so Temporal drops duplicates."""
    if context.idempotency_key is None or context.credential is None:
        return None
    return f"{context.credential.namespace}:{context.idempotency_key}:{workflow_id}:{update}"


def failure(exc: BaseException, request_id: str) -> OfferhubError:
    """A failed Update (validator refusal or handler error) as the catalog error.

    A handler that let an activity's business error through fails with the ActivityError:
    its cause is the activity's ApplicationError, whose type is the catalog code."""
    cause: BaseException | None = exc.cause if isinstance(exc, WorkflowUpdateFailedError) else exc
    if isinstance(cause, ActivityError):
        cause = cause.cause
    if isinstance(cause, ApplicationError) and cause.type:
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        try:
            code = ErrorCode(cause.type)
        except ValueError:
            code = None
        # integrity alarms (and unknown types) stay internal: the caller gets 500 INTERNAL_ERROR
        if code is not None and code not in INTEGRITY_ALARMS and code is not ErrorCode.INTERNAL_ERROR:
            return OfferhubError(code, cause.message, details)
        log.error("workflow failure", extra={"type": cause.type, "error": cause.message})
    else:
        log.error("workflow failure", extra={"error": repr(cause)})
    return OfferhubError(ErrorCode.INTERNAL_ERROR, "An unexpected error occurred", {"request_id": request_id})


# the server's answer to an Update admitted just as its workflow completed
_ENDED_BEFORE_UPDATE = ("AcceptedUpdateCompletedWorkflow", "completed before the update completed")


def ended_before_update(exc: BaseException) -> bool:
    """The workflow completed before it handled the Update: the resource is final, like a
    workflow that had already completed (answered from the record, never a 500)."""
    cause = exc.cause if isinstance(exc, WorkflowUpdateFailedError) else exc
    text = f"{getattr(cause, 'type', '')} {cause}".lower()
    return any(marker.lower() in text for marker in _ENDED_BEFORE_UPDATE)


# Temporal refuses an Update (FAILED_PRECONDITION, "workflow not ready") while the workflow's
# task is being retried or completes the workflow; never accepted, so sending it again is safe
NOT_READY_PAUSES = (0.1, 0.3, 0.8)


async def run_update(
    services: Services,
    context: RequestContext,
    workflow_id: str,
    update: str,
    arg: Any,
    result_type: type,
) -> bool:
    """Send an Update and wait for its result up to API_UPDATE_WAIT_SECONDS.

    True when it finished, False when it is still running (the caller answers 202).
    """
    client = await services.temporal()
    handle = client.get_workflow_handle(workflow_id)
    try:
        for pause in (*NOT_READY_PAUSES, None):
            try:
                running = await handle.start_update(
                    update,
                    arg,
                    wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                    id=update_id(context, workflow_id, update),
                    result_type=result_type,
                )
                break
            except RPCError as exc:
                if exc.status != RPCStatusCode.FAILED_PRECONDITION:
                    raise
                if pause is None:  # never accepted, so nothing changed: the caller may send it again
                    raise service_unavailable(
                        "The workflow", f"{workflow_id} is not ready for {update}; nothing was changed, retry"
                    ) from None
                await asyncio.sleep(pause)
        await asyncio.wait_for(running.result(), timeout=services.settings.api_update_wait_seconds)
        return True
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        # accepted Updates are in the workflow's history: they finish durably (even across a
        # worker crash); the caller follows the resource by GET, events or webhooks
        return False
    except WorkflowUpdateFailedError as exc:
        if ended_before_update(exc):
            raise WorkflowGone(workflow_id) from None
        raise failure(exc, context.request_id) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND or ended_before_update(exc):
            raise WorkflowGone(workflow_id) from None
        if exc.status in TEMPORAL_UNREACHABLE:
            raise service_unavailable("The workflow engine") from None
        raise


async def run_create(
    services: Services,
    context: RequestContext,
    workflow: str,
    resource: Any,
    resource_id: str,
    start_options: dict[str, Any],
    created: Any,
    result_type: type,
) -> bool:
    """Update-with-start of a resource's workflow (api.md §1.4), its `created` Update waited
    for up to API_UPDATE_WAIT_SECONDS: True when it finished, False when it goes on (202)."""
    settings = services.settings
    client = await services.temporal()
    start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        workflow,
        resource,
        id=resource_id,
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        **start_options,
    )
    try:
        running = await client.start_update_with_start_workflow(
            "created",
            created,
            start_workflow_operation=start,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            id=update_id(context, resource_id, "created"),
            result_type=result_type,
        )
        await asyncio.wait_for(running.result(), timeout=settings.api_update_wait_seconds)
        return True
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        # the wait ran out (the SDK reports its poll cut short as the RPC error): the Update was
        # accepted and continues durably; the client follows by GET, events or webhooks
        return False
    except WorkflowUpdateFailedError as exc:
        raise failure(exc, context.request_id) from None
