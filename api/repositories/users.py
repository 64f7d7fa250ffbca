"""Users, their balance and wallet: the SQL behind the users endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth import EVERYONE, Audience
from models.errors import ErrorCode, OfferhubError
from models.ids import IdPrefix, is_id
from models.money import format_cents
from models.tables import Balance, User, Wallet
from models.timefmt import iso


@dataclass
class UserRecord:
    user: User
    balance: Balance | None
    wallet: Wallet | None

    def view(self) -> dict[str, Any]:
        user, balance, wallet = self.user, self.balance, self.wallet
        return {
            "id": user.id,
            "external_user_id": user.external_user_id,
            "email": user.email,
            "type": user.type,
            "status": user.status,
            "metadata": user.metadata_,
            "airtm_user_id": user.airtm_user_id,
            "airtm_linked_at": iso(user.airtm_linked_at),
            "wallet": None
            if wallet is None
            else {"id": wallet.id, "public_key": wallet.public_key, "status": wallet.status},
            "balance": balance_amounts(balance),
            "created_at": iso(user.created_at),
            "updated_at": iso(user.updated_at),
        }


def balance_amounts(balance: Balance | None) -> dict[str, str]:
    available = balance.available if balance else 0
    reserved = balance.reserved if balance else 0
    return {"available": format_cents(available), "reserved": format_cents(reserved), "currency": "USD"}


def not_found(user_id: str, field: str | None = None) -> OfferhubError:
    details: dict[str, Any] = {"user_id": user_id}
    if field:
        details["field"] = field
    return OfferhubError(ErrorCode.USER_NOT_FOUND, f"User {user_id} not found", details)


async def load(
    session: AsyncSession, user_id: str, audience: Audience = EVERYONE, *, field: str | None = None
) -> UserRecord:
    """The user with balance and primary wallet, or 404 USER_NOT_FOUND (wrong prefix, or a user
    the audience does not see, included; `field`: the body field that named it)."""
    if not is_id(user_id, IdPrefix.USER) or not audience.sees(user_id):
        raise not_found(user_id, field)
    user = await session.get(User, user_id)
    if user is None:
        raise not_found(user_id, field)
    return (await complete(session, [user]))[0]


async def by_external_id(session: AsyncSession, external_user_id: str) -> UserRecord | None:
    user = (
        await session.execute(select(User).where(col(User.external_user_id) == external_user_id))
    ).scalar_one_or_none()
    return None if user is None else (await complete(session, [user]))[0]


async def complete(session: AsyncSession, users: list[User]) -> list[UserRecord]:
    """Attach balances and primary wallets to users in two queries."""
    ids = [u.id for u in users]
    if not ids:
        return []
    balances = {
        b.user_id: b for b in (await session.execute(select(Balance).where(col(Balance.user_id).in_(ids)))).scalars()
    }
    wallets = {
        w.user_id: w
        for w in (
            await session.execute(
                select(Wallet).where(
                    col(Wallet.user_id).in_(ids), col(Wallet.is_primary).is_(True), col(Wallet.is_active).is_(True)
                )
            )
        ).scalars()
    }
    return [UserRecord(u, balances.get(u.id), wallets.get(u.id)) for u in users]


def list_query(
    *,
    audience: Audience,
    type: str | None,
    status: str | None,
    external_user_id: str | None,
    email: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
) -> Any:
    query = select(User)
    if audience.user_id is not None:  # a user-bound token lists only its user
        query = query.where(col(User.id) == audience.user_id)
    if type is not None:
        query = query.where(col(User.type) == type)
    if status is not None:
        query = query.where(col(User.status) == status)
    if external_user_id is not None:
        query = query.where(col(User.external_user_id) == external_user_id)
    if email is not None:
        query = query.where(func.lower(col(User.email)) == email.lower())
    if created_after is not None:
        query = query.where(col(User.created_at) >= created_after)
    if created_before is not None:
        query = query.where(col(User.created_at) < created_before)
    return query
