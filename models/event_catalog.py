"""The event catalog (domain.md §5.3) and the `types` filter of `GET /events` (api.md §10)."""

from __future__ import annotations

EVENT_TYPES: tuple[str, ...] = (
    "user.created",
    "user.airtm_linked",
    "wallet.created",
    "balance.credited",
    "balance.reserved",
    "balance.released",
    "balance.debited",
    "topup.created",
    "topup.confirmation_required",
    "topup.processing",
    "topup.succeeded",
    "topup.failed",
    "topup.canceled",
    "order.created",
    "order.funds_reserved",
    "order.canceled",
    "order.escrow_creating",
    "order.escrow_funding",
    "order.escrow_funded",
    "order.in_progress",
    "order.release_requested",
    "order.released",
    "order.refund_requested",
    "order.refunded",
    "order.disputed",
    "order.closed",
    "escrow.created",
    "escrow.funding_started",
    "escrow.funded",
    "escrow.released",
    "escrow.refunded",
    "escrow.milestone_completed",
    "escrow.milestone_approved",
    "escrow.milestone_released",
    "escrow.milestone_canceled",
    "dispute.opened",
    "dispute.under_review",
    "dispute.resolved",
    "dispute.comment_added",
    "withdrawal.created",
    "withdrawal.committed",
    "withdrawal.pending",
    "withdrawal.pending_user_action",
    "withdrawal.completed",
    "withdrawal.failed",
    "withdrawal.canceled",
)
FAMILIES = frozenset(name.split(".", 1)[0] for name in EVENT_TYPES)


class UnknownEventType(ValueError):
    """A `types` entry that matches no catalog type."""


def type_patterns(raw: str) -> tuple[list[str], list[str]] | None:
    """`types` as (exact names, family prefixes); None for `*` (everything).

    Entries are exact catalog names, `family.*` or `*`; anything else raises UnknownEventType."""
    exact: list[str] = []
    prefixes: list[str] = []
    for entry in (part.strip() for part in raw.split(",")):
        if entry == "*":
            return None
        if entry.endswith(".*") and entry[:-2] in FAMILIES:
            prefixes.append(entry[:-1])
        elif entry in EVENT_TYPES:
            exact.append(entry)
        else:
            raise UnknownEventType(entry)
    return exact, prefixes
