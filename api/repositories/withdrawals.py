"""Withdrawals: the SQL and the representation behind the withdrawal endpoints (api.md §2.5)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import EVERYONE, Audience
from models.errors import ErrorCode, OfferhubError
from models.ids import IdPrefix, is_id
from models.money import format_cents
from models.states import WithdrawalStatus
from models.tables import Withdrawal
from models.timefmt import iso

W = WithdrawalStatus


def view(wd: Withdrawal) -> dict[str, Any]:
    return {
        "id": wd.id,
        "user_id": wd.user_id,
        "amount": format_cents(wd.amount),
        "currency": wd.currency,
        "fee": format_cents(wd.fee) if wd.fee is not None else None,
        "destination_type": wd.destination_type,
        "destination_ref": wd.destination_ref,
        "memo": wd.memo,
        "status": wd.status,
        "committed": wd.committed,
        "description": wd.description,
        "metadata": wd.metadata_,
        "airtm_payout_id": wd.airtm_payout_id,
        "stellar_transaction_hash": wd.stellar_transaction_hash,
        "failure_code": wd.failure_code,
        "failure_reason": wd.failure_reason,
        "expires_at": iso(wd.expires_at),
        "committed_at": iso(wd.committed_at),
        "completed_at": iso(wd.completed_at),
        "created_at": iso(wd.created_at),
        "updated_at": iso(wd.updated_at),
    }


def not_found(withdrawal_id: str) -> OfferhubError:
    return OfferhubError(
        ErrorCode.WITHDRAWAL_NOT_FOUND, f"Withdrawal {withdrawal_id} not found", {"withdrawal_id": withdrawal_id}
    )


async def find(session: AsyncSession, withdrawal_id: str) -> Withdrawal | None:
    if not is_id(withdrawal_id, IdPrefix.WITHDRAWAL):
        return None
    return await session.get(Withdrawal, withdrawal_id, populate_existing=True)


async def load(session: AsyncSession, withdrawal_id: str, audience: Audience = EVERYONE) -> Withdrawal:
    """The withdrawal, or 404 WITHDRAWAL_NOT_FOUND (wrong prefix, or another user's for a user-bound audience)."""
    found = await find(session, withdrawal_id)
    if found is None or not audience.sees(found.user_id):
        raise not_found(withdrawal_id)
    return found


def in_flight(wd: Withdrawal) -> bool:
    """Whether a create or commit behind a `202` is still running: a crypto payment until it is
    terminal, an Airtm commit until Airtm acknowledged it (WITHDRAWAL_PENDING is its answer)."""
    if wd.destination_type == "crypto":
        return wd.status in (W.WITHDRAWAL_COMMITTED, W.WITHDRAWAL_PENDING)
    return wd.status == W.WITHDRAWAL_COMMITTED
