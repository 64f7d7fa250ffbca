"""Every state machine of domain.md §4 as data, and the one check that applies them.

A machine lists its legal transitions and, per action, the states it is allowed from and
the specific code it is refused with elsewhere (e.g. reserve on `FUNDS_RESERVED` is
`FUNDS_ALREADY_RESERVED`). Workflow validators call `require`; transition writers call
`check_transition`. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from models.errors import ErrorCode, OfferhubError


class OrderStatus(StrEnum):
    ORDER_CREATED = "ORDER_CREATED"
    FUNDS_RESERVED = "FUNDS_RESERVED"
    ESCROW_CREATING = "ESCROW_CREATING"
    ESCROW_FUNDING = "ESCROW_FUNDING"
    ESCROW_FUNDED = "ESCROW_FUNDED"
    IN_PROGRESS = "IN_PROGRESS"
    RELEASE_REQUESTED = "RELEASE_REQUESTED"
    RELEASED = "RELEASED"
    REFUND_REQUESTED = "REFUND_REQUESTED"
    REFUNDED = "REFUNDED"
    DISPUTED = "DISPUTED"
    CLOSED = "CLOSED"


class EscrowStatus(StrEnum):
    CREATING = "CREATING"
    CREATED = "CREATED"
    FUNDING = "FUNDING"
    FUNDED = "FUNDED"
    RELEASING = "RELEASING"
    RELEASED = "RELEASED"
    REFUNDING = "REFUNDING"
    REFUNDED = "REFUNDED"
    DISPUTED = "DISPUTED"


class MilestoneStatus(StrEnum):
    OPEN = "OPEN"
    COMPLETED = "COMPLETED"
    APPROVED = "APPROVED"
    RELEASED = "RELEASED"
    CANCELED = "CANCELED"


class DisputeStatus(StrEnum):
    OPEN = "OPEN"
    UNDER_REVIEW = "UNDER_REVIEW"
    RESOLVED = "RESOLVED"


class TopupStatus(StrEnum):
    TOPUP_CREATED = "TOPUP_CREATED"
    TOPUP_AWAITING_USER_CONFIRMATION = "TOPUP_AWAITING_USER_CONFIRMATION"
    TOPUP_PROCESSING = "TOPUP_PROCESSING"
    TOPUP_SUCCEEDED = "TOPUP_SUCCEEDED"
    TOPUP_FAILED = "TOPUP_FAILED"
    TOPUP_CANCELED = "TOPUP_CANCELED"


class WithdrawalStatus(StrEnum):
    WITHDRAWAL_CREATED = "WITHDRAWAL_CREATED"
    WITHDRAWAL_COMMITTED = "WITHDRAWAL_COMMITTED"
    WITHDRAWAL_PENDING = "WITHDRAWAL_PENDING"
    WITHDRAWAL_PENDING_USER_ACTION = "WITHDRAWAL_PENDING_USER_ACTION"
    WITHDRAWAL_COMPLETED = "WITHDRAWAL_COMPLETED"
    WITHDRAWAL_FAILED = "WITHDRAWAL_FAILED"
    WITHDRAWAL_CANCELED = "WITHDRAWAL_CANCELED"


class WalletStage(StrEnum):
    KEYPAIR_CREATED = "KEYPAIR_CREATED"
    ACCOUNT_FUNDED = "ACCOUNT_FUNDED"
    TRUSTLINE_READY = "TRUSTLINE_READY"


@dataclass(frozen=True)
class Action:
    """Where an action may start, and what it is refused with elsewhere."""

    allowed_from: frozenset[str]
    refusals: Mapping[str, ErrorCode] = field(default_factory=dict)


@dataclass(frozen=True)
class StateMachine:
    resource: str
    states: tuple[str, ...]
    terminal: frozenset[str]
    transitions: frozenset[tuple[str, str]]
    actions: Mapping[str, Action]

    def can_transition(self, current: str, target: str) -> bool:
        return (current, target) in self.transitions

    def check_transition(self, current: str, target: str, resource_id: str) -> None:
        if not self.can_transition(current, target):
            raise OfferhubError(
                ErrorCode.TRANSITION_CONFLICT,
                f"{self.resource} {resource_id} cannot move from {current} to {target}",
                {f"{self.resource}_id": resource_id, "current_state": current, "target_state": target},
            )

    def allowed_states(self, action: str) -> list[str]:
        allowed = self.actions[action].allowed_from
        return [state for state in self.states if state in allowed]

    def require(self, action: str, current: str, resource_id: str) -> None:
        """Raise the catalog error for `action` in `current`, or return if it is legal."""
        rule = self.actions[action]
        if current in rule.allowed_from:
            return
        code = rule.refusals.get(current, ErrorCode.INVALID_STATE)
        raise OfferhubError(
            code,
            f"cannot {action.replace('_', ' ')} {self.resource} {resource_id} in state {current}",
            {
                f"{self.resource}_id": resource_id,
                "current_state": current,
                "allowed_states": self.allowed_states(action),
            },
        )

    def refusal_once_ended(self, action: str, current: str, resource_id: str) -> OfferhubError:
        """Why `action` is refused on a resource whose workflow has completed (it accepts
        nothing more): the rule's own refusal from the record's `current` state, or
        INVALID_STATE when the record still shows a state the action was legal in (the
        workflow ended between the read and the action)."""
        try:
            self.require(action, current, resource_id)
        except OfferhubError as refused:
            return refused
        return OfferhubError(
            ErrorCode.INVALID_STATE,
            f"{self.resource} {resource_id} accepts no more actions: its workflow has completed",
            {f"{self.resource}_id": resource_id, "current_state": current, "allowed_states": []},
        )


def _edges(*rows: tuple[Iterable[str] | str, str]) -> frozenset[tuple[str, str]]:
    edges: set[tuple[str, str]] = set()
    for sources, target in rows:
        for source in [sources] if isinstance(sources, str) else sources:
            edges.add((source, target))
    return frozenset(edges)


def _action(*allowed: str, refusals: Mapping[str, ErrorCode] | None = None) -> Action:
    return Action(frozenset(allowed), dict(refusals or {}))


O = OrderStatus
ORDER = StateMachine(
    resource="order",
    states=tuple(O),
    terminal=frozenset({O.CLOSED}),
    transitions=_edges(
        (O.ORDER_CREATED, O.FUNDS_RESERVED),
        ((O.ORDER_CREATED, O.FUNDS_RESERVED), O.CLOSED),
        (O.FUNDS_RESERVED, O.ESCROW_CREATING),
        (O.ESCROW_CREATING, O.ESCROW_FUNDING),
        (O.ESCROW_CREATING, O.FUNDS_RESERVED),
        (O.ESCROW_FUNDING, O.ESCROW_FUNDED),
        (O.ESCROW_FUNDED, O.IN_PROGRESS),
        (O.IN_PROGRESS, O.RELEASE_REQUESTED),
        (O.RELEASE_REQUESTED, O.RELEASED),
        (O.RELEASE_REQUESTED, O.IN_PROGRESS),
        (O.IN_PROGRESS, O.RELEASED),
        (O.IN_PROGRESS, O.REFUND_REQUESTED),
        (O.REFUND_REQUESTED, O.REFUNDED),
        (O.REFUND_REQUESTED, O.IN_PROGRESS),
        (O.IN_PROGRESS, O.DISPUTED),
        (O.DISPUTED, O.RELEASED),
        (O.DISPUTED, O.REFUNDED),
        (O.RELEASED, O.CLOSED),
        (O.REFUNDED, O.CLOSED),
    ),
    actions={
        "reserve": _action(O.ORDER_CREATED, refusals={O.FUNDS_RESERVED: ErrorCode.FUNDS_ALREADY_RESERVED}),
        "cancel": _action(O.ORDER_CREATED, O.FUNDS_RESERVED),
        "create_escrow": _action(
            O.FUNDS_RESERVED,
            refusals={
                state: ErrorCode.ESCROW_ALREADY_EXISTS
                for state in (
                    O.ESCROW_CREATING,
                    O.ESCROW_FUNDING,
                    O.ESCROW_FUNDED,
                    O.IN_PROGRESS,
                    O.RELEASE_REQUESTED,
                    O.REFUND_REQUESTED,
                    O.DISPUTED,
                )
            },
        ),
        "fund_escrow": _action(
            O.ESCROW_FUNDING,
            refusals={
                O.FUNDS_RESERVED: ErrorCode.ESCROW_NOT_READY,
                O.ESCROW_CREATING: ErrorCode.ESCROW_NOT_READY,
                **{
                    state: ErrorCode.ESCROW_ALREADY_FUNDED
                    for state in (
                        O.ESCROW_FUNDED,
                        O.IN_PROGRESS,
                        O.RELEASE_REQUESTED,
                        O.REFUND_REQUESTED,
                        O.DISPUTED,
                        O.RELEASED,
                        O.REFUNDED,
                    )
                },
            },
        ),
        "release": _action(O.IN_PROGRESS, refusals={O.DISPUTED: ErrorCode.DISPUTE_ALREADY_OPEN}),
        "refund": _action(O.IN_PROGRESS, refusals={O.DISPUTED: ErrorCode.DISPUTE_ALREADY_OPEN}),
        "open_dispute": _action(O.IN_PROGRESS, refusals={O.DISPUTED: ErrorCode.DISPUTE_ALREADY_OPEN}),
    },
)

E = EscrowStatus
ESCROW = StateMachine(
    resource="escrow",
    states=tuple(E),
    terminal=frozenset({E.RELEASED, E.REFUNDED}),
    transitions=_edges(
        (E.CREATING, E.CREATED),
        (E.CREATED, E.FUNDING),
        (E.FUNDING, E.FUNDED),
        (E.FUNDING, E.CREATED),
        (E.FUNDED, E.RELEASED),
        (E.FUNDED, E.RELEASING),
        (E.RELEASING, E.RELEASED),
        (E.RELEASING, E.FUNDED),
        (E.FUNDED, E.REFUNDING),
        (E.REFUNDING, E.REFUNDED),
        (E.REFUNDING, E.FUNDED),
        (E.FUNDED, E.DISPUTED),
        (E.DISPUTED, E.RELEASED),
        (E.DISPUTED, E.REFUNDED),
    ),
    actions={},
)

M = MilestoneStatus
MILESTONE = StateMachine(
    resource="milestone",
    states=tuple(M),
    terminal=frozenset({M.RELEASED, M.CANCELED}),
    transitions=_edges(
        (M.OPEN, M.COMPLETED),
        (M.COMPLETED, M.APPROVED),
        (M.APPROVED, M.RELEASED),
        (M.APPROVED, M.COMPLETED),
        ((M.OPEN, M.COMPLETED), M.CANCELED),
    ),
    actions={
        "complete": _action(M.OPEN),
        # APPROVED: the approval landed but the release failed; approve retries the release
        "approve": _action(M.COMPLETED, M.APPROVED),
    },
)

D = DisputeStatus
DISPUTE = StateMachine(
    resource="dispute",
    states=tuple(D),
    terminal=frozenset({D.RESOLVED}),
    transitions=_edges((D.OPEN, D.UNDER_REVIEW), (D.UNDER_REVIEW, D.RESOLVED)),
    actions={
        "assign": _action(D.OPEN),
        "resolve": _action(D.UNDER_REVIEW),
        "add_comment": _action(D.OPEN, D.UNDER_REVIEW),
    },
)

T = TopupStatus
TOPUP = StateMachine(
    resource="topup",
    states=tuple(T),
    terminal=frozenset({T.TOPUP_SUCCEEDED, T.TOPUP_FAILED, T.TOPUP_CANCELED}),
    transitions=_edges(
        (T.TOPUP_CREATED, T.TOPUP_AWAITING_USER_CONFIRMATION),
        (T.TOPUP_CREATED, T.TOPUP_FAILED),
        (T.TOPUP_CREATED, T.TOPUP_SUCCEEDED),
        ((T.TOPUP_CREATED, T.TOPUP_AWAITING_USER_CONFIRMATION), T.TOPUP_CANCELED),
        (T.TOPUP_AWAITING_USER_CONFIRMATION, T.TOPUP_PROCESSING),
        ((T.TOPUP_AWAITING_USER_CONFIRMATION, T.TOPUP_PROCESSING), T.TOPUP_SUCCEEDED),
        ((T.TOPUP_AWAITING_USER_CONFIRMATION, T.TOPUP_PROCESSING), T.TOPUP_FAILED),
    ),
    actions={
        "cancel": _action(T.TOPUP_CREATED, T.TOPUP_AWAITING_USER_CONFIRMATION),
        "refresh": _action(*T),
    },
)

W = WithdrawalStatus
_WD_IN_FLIGHT = (W.WITHDRAWAL_PENDING, W.WITHDRAWAL_PENDING_USER_ACTION)
WITHDRAWAL = StateMachine(
    resource="withdrawal",
    states=tuple(W),
    terminal=frozenset({W.WITHDRAWAL_COMPLETED, W.WITHDRAWAL_FAILED, W.WITHDRAWAL_CANCELED}),
    transitions=_edges(
        (W.WITHDRAWAL_CREATED, W.WITHDRAWAL_FAILED),
        (W.WITHDRAWAL_CREATED, W.WITHDRAWAL_COMMITTED),
        (W.WITHDRAWAL_CREATED, W.WITHDRAWAL_CANCELED),
        (W.WITHDRAWAL_COMMITTED, W.WITHDRAWAL_PENDING),
        (W.WITHDRAWAL_COMMITTED, W.WITHDRAWAL_FAILED),
        (W.WITHDRAWAL_PENDING, W.WITHDRAWAL_PENDING_USER_ACTION),
        (W.WITHDRAWAL_PENDING_USER_ACTION, W.WITHDRAWAL_PENDING),
        (_WD_IN_FLIGHT, W.WITHDRAWAL_COMPLETED),
        (_WD_IN_FLIGHT, W.WITHDRAWAL_FAILED),
    ),
    actions={
        "commit": _action(
            W.WITHDRAWAL_CREATED,
            refusals={state: ErrorCode.WITHDRAWAL_NOT_COMMITTABLE for state in W if state != W.WITHDRAWAL_CREATED},
        ),
        "cancel": _action(W.WITHDRAWAL_CREATED),
        "refresh": _action(*W),
    },
)

S = WalletStage
WALLET = StateMachine(
    resource="wallet",
    states=tuple(S),
    terminal=frozenset({S.TRUSTLINE_READY}),
    transitions=_edges(
        (S.KEYPAIR_CREATED, S.ACCOUNT_FUNDED),
        # sponsored activation: account and trustline land in one transaction
        (S.KEYPAIR_CREATED, S.TRUSTLINE_READY),
        (S.ACCOUNT_FUNDED, S.TRUSTLINE_READY),
    ),
    actions={},
)

MACHINES: dict[str, StateMachine] = {
    machine.resource: machine for machine in (ORDER, ESCROW, MILESTONE, DISPUTE, TOPUP, WITHDRAWAL, WALLET)
}
