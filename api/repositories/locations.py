"""The resource a `202`'s `Location` names, re-read as it is now (api.md §1.5, domain.md §7.4).

A stored `202` is replayed as this re-read: `200` when the operation has finished, `202`
while it has not. "Finished" is read from the resource's own state, not from Temporal:

- order: not in flight (`ESCROW_CREATING`, `RELEASE_REQUESTED`, `REFUND_REQUESTED`, or
  `ESCROW_FUNDING` with its escrow `FUNDING`);
- milestone: not `APPROVED` (an approved milestone's release is in flight);
- dispute: recorded and not settling (`UNDER_REVIEW` with a decision recorded);
- withdrawal: not paying out (a crypto payment not yet terminal, an Airtm commit not yet
  acknowledged: `api/repositories/withdrawals.py` `in_flight`);
- a comment (the create allocated a `cmt_` ID; its `202` names the dispute): recorded
  (answered as the comment), or the dispute `RESOLVED` (it takes no comment any more: a
  comment queued behind the settlement was refused; answered as the dispute).
- top-up: not `TOPUP_CREATED` (its pay-in exists; a slow refresh or cancel counts as
  finished once re-read, like the single database steps below).

Actions whose step leaves no transitional state (reserve, cancel, complete, assign) count
as finished once re-read; they are single database steps, rarely slow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.repositories import disputes, orders, topups, withdrawals
from models.errors import OfferhubError
from models.ids import IdPrefix, is_id

ORDER = re.compile(r"^/api/v1/orders/(?P<order>[^/]+)$")
MILESTONE = re.compile(r"^/api/v1/orders/(?P<order>[^/]+)/milestones/(?P<milestone>[^/]+)$")
DISPUTE = re.compile(r"^/api/v1/disputes/(?P<dispute>[^/]+)$")
TOPUP = re.compile(r"^/api/v1/topups/(?P<topup>[^/]+)$")
WITHDRAWAL = re.compile(r"^/api/v1/withdrawals/(?P<withdrawal>[^/]+)$")


@dataclass(frozen=True)
class Current:
    finished: bool
    body: dict[str, Any]


async def at_location(session: AsyncSession, location: str, resource_id: str | None = None) -> Current | None:
    """The resource at `location` now; None when it is not recorded (yet) or not a known kind.

    `resource_id` is the ID the request allocated (a create's): a comment is read by it."""
    try:
        if match := ORDER.fullmatch(location):
            order = await orders.load(session, match["order"])
            escrow = await orders.live_escrow(session, order.id)
            return Current(not orders.in_flight(order, escrow), await orders.view(session, order.id))
        if match := MILESTONE.fullmatch(location):
            milestone = await orders.milestone(session, match["order"], match["milestone"])
            return Current(milestone.status != "APPROVED", orders.milestone_view(milestone))
    except OfferhubError:
        return None
    if match := WITHDRAWAL.fullmatch(location):
        # a crypto payment until it is terminal, an Airtm commit until Airtm acknowledged it
        wd = await withdrawals.find(session, match["withdrawal"])
        return None if wd is None else Current(not withdrawals.in_flight(wd), withdrawals.view(wd))
    if match := TOPUP.fullmatch(location):
        topup = await topups.find(session, match["topup"])
        return None if topup is None else Current(not topups.in_flight(topup), topups.view(topup))
    if match := DISPUTE.fullmatch(location):
        commenting = resource_id is not None and is_id(resource_id, IdPrefix.COMMENT)
        comment = await disputes.find_comment(session, resource_id) if resource_id and commenting else None
        if comment is not None:
            return Current(True, disputes.comment_view(comment))
        dispute = await disputes.find(session, match["dispute"])
        if dispute is None:
            return None
        finished = dispute.status == "RESOLVED" if commenting else not disputes.settling(dispute)
        return Current(finished, disputes.dispute_view(dispute))
    return None
