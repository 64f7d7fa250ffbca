"""The withdrawal machine of domain.md §4.7, state by state: every action legal or refused
with its catalog code, and the path a provider's news takes."""

from __future__ import annotations

import pytest

from models.errors import ErrorCode, OfferhubError
from models.states import WITHDRAWAL, WithdrawalStatus
from models.withdrawals_io import path_to

W = WithdrawalStatus
CREATED, COMMITTED, PENDING, USER_ACTION = (
    W.WITHDRAWAL_CREATED,
    W.WITHDRAWAL_COMMITTED,
    W.WITHDRAWAL_PENDING,
    W.WITHDRAWAL_PENDING_USER_ACTION,
)
COMPLETED, FAILED, CANCELED = W.WITHDRAWAL_COMPLETED, W.WITHDRAWAL_FAILED, W.WITHDRAWAL_CANCELED

# state -> action -> None (legal) or the code it is refused with
ACTIONS: dict[str, dict[str, ErrorCode | None]] = {
    CREATED: {"commit": None, "cancel": None, "refresh": None},
    **{
        state: {"commit": ErrorCode.WITHDRAWAL_NOT_COMMITTABLE, "cancel": ErrorCode.INVALID_STATE, "refresh": None}
        for state in (COMMITTED, PENDING, USER_ACTION, COMPLETED, FAILED, CANCELED)
    },
}

LEGAL = {
    (CREATED, FAILED),
    (CREATED, COMMITTED),
    (CREATED, CANCELED),
    (COMMITTED, PENDING),
    (COMMITTED, FAILED),
    (PENDING, USER_ACTION),
    (USER_ACTION, PENDING),
    (PENDING, COMPLETED),
    (USER_ACTION, COMPLETED),
    (PENDING, FAILED),
    (USER_ACTION, FAILED),
}


@pytest.mark.parametrize("state", list(W))
@pytest.mark.parametrize("action", ["commit", "cancel", "refresh"])
def test_every_action_in_every_state(state: str, action: str) -> None:
    expected = ACTIONS[state][action]
    if expected is None:
        WITHDRAWAL.require(action, state, "wd_x")
        return
    with pytest.raises(OfferhubError) as refused:
        WITHDRAWAL.require(action, state, "wd_x")
    assert refused.value.code is expected
    assert refused.value.details["allowed_states"] == ([] if action == "refresh" else [CREATED])


@pytest.mark.parametrize("source", list(W))
@pytest.mark.parametrize("target", list(W))
def test_only_the_listed_transitions_are_legal(source: str, target: str) -> None:
    assert WITHDRAWAL.can_transition(source, target) == ((source, target) in LEGAL)


def test_terminal_states_never_change() -> None:
    assert WITHDRAWAL.terminal == {COMPLETED, FAILED, CANCELED}
    for state in WITHDRAWAL.terminal:
        assert not any(WITHDRAWAL.can_transition(state, target) for target in W)


@pytest.mark.parametrize(
    ("current", "reported", "path"),
    [
        (COMMITTED, PENDING, [PENDING]),
        (COMMITTED, USER_ACTION, [PENDING, USER_ACTION]),  # acknowledged, then waiting for the recipient
        (COMMITTED, COMPLETED, [PENDING, COMPLETED]),
        (COMMITTED, FAILED, [FAILED]),
        (PENDING, COMPLETED, [COMPLETED]),
        (USER_ACTION, COMPLETED, [COMPLETED]),
        (USER_ACTION, PENDING, [PENDING]),
        (CREATED, CANCELED, [CANCELED]),
        (PENDING, PENDING, []),  # repeated news
        (COMPLETED, FAILED, []),  # contradicts a terminal state: ignored
        (PENDING, CREATED, []),  # backwards: ignored
        (CANCELED, COMPLETED, []),
    ],
)
def test_provider_news_takes_the_legal_path_or_none(current: str, reported: str, path: list[str]) -> None:
    assert path_to(current, reported) == path
