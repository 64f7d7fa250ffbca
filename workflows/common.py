"""Helpers every resource workflow shares: refusals, activity calls, status attributes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.errors import OfferhubError
    from models.search import STATUS
    from models.states import StateMachine
    from models.steps import In, Out, Step
    from workflows.retry import DB_STEP, FOREVER, PROVIDER_STEP

# provider activities heartbeat every 3 s: a worker that died mid-call is replaced within this
HEARTBEAT_TIMEOUT = timedelta(seconds=10)


def refusal(error: OfferhubError) -> ApplicationError:
    """A business refusal as the Update failure the API maps to HTTP (type = catalog code)."""
    return ApplicationError(error.message, error.details, type=error.code.value, non_retryable=True)


def require(machine: StateMachine, action: str, current: str, resource_id: str) -> None:
    try:
        machine.require(action, current, resource_id)
    except OfferhubError as exc:
        raise refusal(exc) from None


def business_cause(error: ActivityError | ApplicationError) -> ApplicationError:
    """The ApplicationError an activity failed with (its type is the catalog code or provider class).
    A local activity's failure may reach the workflow as that ApplicationError itself."""
    if isinstance(error, ApplicationError):
        return ApplicationError(error.message, *error.details, type=error.type, non_retryable=True)
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return ApplicationError(cause.message, *cause.details, type=cause.type, non_retryable=True)
    return ApplicationError(str(error), type="INTERNAL_ERROR", non_retryable=True)


async def db_step(step: Step[In, Out], arg: In) -> Out:
    """A short PostgreSQL step (local activity): retried until done, business errors excepted."""
    result: Out = await workflow.execute_local_activity(
        step.name, arg, result_type=step.output, start_to_close_timeout=DB_STEP, retry_policy=FOREVER
    )
    return result


async def provider_step(step: Step[In, Out], arg: In) -> Out:
    """A provider call (regular activity): retried without limit unless refused for good."""
    result: Out = await workflow.execute_activity(
        step.name,
        arg,
        result_type=step.output,
        start_to_close_timeout=PROVIDER_STEP,
        retry_policy=FOREVER,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
    )
    return result


def set_status(status: str, details: str | Callable[[], str]) -> None:
    """Upsert OfferhubStatus (unless it already says so, e.g. the status a workflow started with)."""
    if workflow.info().typed_search_attributes.get(STATUS) != status:
        workflow.upsert_search_attributes([STATUS.value_set(status)])
    workflow.set_current_details(details if isinstance(details, str) else details())
