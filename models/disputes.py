"""Dispute decisions as rules (domain.md §4.6): what each decision pays, and how a release
amount is spread over unpaid milestones (by position, never divided)."""

from __future__ import annotations

from models.errors import ErrorCode, OfferhubError
from models.money import format_cents

DECISIONS = ("FULL_RELEASE", "FULL_REFUND", "SPLIT")


def shares(decision: str, release: int | None, refund: int | None, disputed: int) -> tuple[int, int]:
    """(release, refund) in cents for a decision, or the catalog error."""
    if decision not in DECISIONS:
        raise OfferhubError(
            ErrorCode.VALIDATION_ERROR,
            "decision must be FULL_RELEASE, FULL_REFUND or SPLIT",
            {"fields": [{"field": "decision", "message": "unknown decision"}]},
        )
    if decision != "SPLIT":
        if release is not None or refund is not None:
            raise OfferhubError(
                ErrorCode.VALIDATION_ERROR,
                "amounts are only given with SPLIT",
                {
                    "fields": [
                        {
                            "field": "release_amount" if release is not None else "refund_amount",
                            "message": "only for SPLIT",
                        }
                    ]
                },
            )
        return (disputed, 0) if decision == "FULL_RELEASE" else (0, disputed)
    if release is None or refund is None:
        missing = "release_amount" if release is None else "refund_amount"
        raise OfferhubError(
            ErrorCode.VALIDATION_ERROR,
            "SPLIT needs release_amount and refund_amount",
            {"fields": [{"field": missing, "message": "required for SPLIT"}]},
        )
    if release + refund != disputed:
        raise OfferhubError(
            ErrorCode.INVALID_AMOUNT,
            "the shares must sum to the disputed amount",
            {
                "release_amount": format_cents(release),
                "refund_amount": format_cents(refund),
                "sum": format_cents(release + refund),
                "disputed_amount": format_cents(disputed),
            },
        )
    return release, refund


def spread(release: int, milestone_amounts: list[int]) -> list[tuple[int, int]]:
    """Per unpaid milestone (by position): (to seller, to buyer); the seller's share fills first."""
    out = []
    remaining = release
    for amount in milestone_amounts:
        to_seller = min(remaining, amount)
        out.append((to_seller, amount - to_seller))
        remaining -= to_seller
    return out
