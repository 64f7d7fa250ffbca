import pytest

from models.errors import ErrorCode, OfferhubError
from models.states import MACHINES, MILESTONE, ORDER, WITHDRAWAL, OrderStatus


def test_every_machine_only_names_its_own_states() -> None:
    for machine in MACHINES.values():
        states = set(machine.states)
        assert machine.terminal <= states
        for source, target in machine.transitions:
            assert source in states and target in states
            assert source not in machine.terminal, f"{machine.resource}: terminal {source} has an exit"
        for action in machine.actions.values():
            assert action.allowed_from <= states


def test_legal_action_passes_and_illegal_raises_invalid_state_with_details() -> None:
    ORDER.require("cancel", OrderStatus.FUNDS_RESERVED, "ord_x")
    with pytest.raises(OfferhubError) as caught:
        ORDER.require("cancel", OrderStatus.IN_PROGRESS, "ord_x")
    assert caught.value.code is ErrorCode.INVALID_STATE
    assert caught.value.details == {
        "order_id": "ord_x",
        "current_state": "IN_PROGRESS",
        "allowed_states": ["ORDER_CREATED", "FUNDS_RESERVED"],
    }


@pytest.mark.parametrize(
    ("action", "state", "code"),
    [
        ("reserve", "FUNDS_RESERVED", ErrorCode.FUNDS_ALREADY_RESERVED),
        ("reserve", "CLOSED", ErrorCode.INVALID_STATE),
        ("fund_escrow", "ESCROW_CREATING", ErrorCode.ESCROW_NOT_READY),
        ("fund_escrow", "IN_PROGRESS", ErrorCode.ESCROW_ALREADY_FUNDED),
        ("create_escrow", "ESCROW_FUNDING", ErrorCode.ESCROW_ALREADY_EXISTS),
        ("release", "DISPUTED", ErrorCode.DISPUTE_ALREADY_OPEN),
        ("refund", "RELEASE_REQUESTED", ErrorCode.INVALID_STATE),
    ],
)
def test_specific_refusals(action: str, state: str, code: ErrorCode) -> None:
    with pytest.raises(OfferhubError) as caught:
        ORDER.require(action, state, "ord_x")
    assert caught.value.code is code


def test_withdrawal_commit_refusal_is_not_committable() -> None:
    with pytest.raises(OfferhubError) as caught:
        WITHDRAWAL.require("commit", "WITHDRAWAL_PENDING", "wd_x")
    assert caught.value.code is ErrorCode.WITHDRAWAL_NOT_COMMITTABLE


def test_transitions_follow_the_table() -> None:
    assert ORDER.can_transition("IN_PROGRESS", "RELEASED")
    assert not ORDER.can_transition("ESCROW_FUNDING", "IN_PROGRESS")
    with pytest.raises(OfferhubError) as caught:
        ORDER.check_transition("CLOSED", "IN_PROGRESS", "ord_x")
    assert caught.value.code is ErrorCode.TRANSITION_CONFLICT


def test_an_ended_workflow_refuses_from_the_record_or_with_invalid_state() -> None:
    """The record says RELEASED: the machine's own refusal. The record still says COMPLETED
    (the workflow ended between the read and the action): INVALID_STATE, never a pass."""
    settled = MILESTONE.refusal_once_ended("approve", "RELEASED", "ms_1")
    assert settled.code is ErrorCode.INVALID_STATE and settled.details["current_state"] == "RELEASED"
    lagging = MILESTONE.refusal_once_ended("approve", "COMPLETED", "ms_1")
    assert lagging.code is ErrorCode.INVALID_STATE
    assert lagging.details == {"milestone_id": "ms_1", "current_state": "COMPLETED", "allowed_states": []}


def test_an_update_admitted_as_its_workflow_completed_reads_as_ended() -> None:
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.exceptions import ApplicationError

    from api.workflow_calls import ended_before_update

    completed = ApplicationError(
        "Workflow Update failed because the Workflow completed before the Update completed.",
        type="AcceptedUpdateCompletedWorkflow",
    )
    assert ended_before_update(WorkflowUpdateFailedError(completed))
    assert not ended_before_update(WorkflowUpdateFailedError(ApplicationError("no", type="INVALID_STATE")))
