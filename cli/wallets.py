"""Platform wallet commands that touch sealed keys (providers.md §2.1-2.2): importing the
treasury and re-sealing every secret under the current WALLET_ENCRYPTION_KEY.

Both work on PostgreSQL directly, in short transactions: a re-sealed value is written only
if the row still holds the value it was computed from, so a rotation can run beside live
API and worker processes (which open either key by its `kid`) and be run again at will."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col
from stellar_sdk import Keypair

from models.audit import audit_entry
from models.ids import IdPrefix, new_id
from models.tables import Wallet, WebhookEndpoint
from models.timefmt import utcnow
from models.webhook_delivery import secret_context
from providers.errors import WalletIntegrityError
from providers.stellar.keyvault import KeyVault, key_id, wallet_context
from settings import Settings

OPERATOR = ("operator", "offerhub-cli")


def vault_of(settings: Settings) -> KeyVault:
    previous = settings.wallet_encryption_previous_keys
    return KeyVault.from_settings(
        settings.wallet_encryption_key.get_secret_value(), previous.get_secret_value() if previous else None
    )


class ImportRefused(Exception):
    """The import would contradict what is stored (exit 1, nothing written)."""


@dataclass(frozen=True)
class Imported:
    wallet_id: str
    public_key: str
    created: bool
    replaced: str | None = None

    def report(self) -> dict[str, Any]:
        return {
            "purpose": "TREASURY",
            "wallet_id": self.wallet_id,
            "public_key": self.public_key,
            "created": self.created,
            "replaced_wallet_id": self.replaced,
        }


async def import_treasury(settings: Settings, engine: AsyncEngine, secret_seed: str, *, replace: bool) -> Imported:
    """Store `secret_seed` as the active TREASURY wallet, sealed (status PENDING: activation,
    which finds a funded account with its trustline and records READY without submitting,
    is `offerhub wallets init-platform`'s or the worker's).

    Importing the active treasury again changes nothing. Another active treasury is refused,
    unless `replace`: it is then retired (`is_active = false`, its row and key kept) in the
    same transaction."""
    public_key = Keypair.from_secret(secret_seed).public_key  # ValueError-like on a bad seed
    vault = vault_of(settings)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session, session.begin():
        current = await _active_treasury(session)
        if current is not None and current.public_key == public_key:
            return Imported(current.id, public_key, created=False)
        if current is not None and not replace:
            raise ImportRefused(
                f"a different treasury is active ({current.id}, {current.public_key}); "
                "--replace retires it (move its funds first)"
            )
        holder = (
            await session.execute(select(Wallet).where(col(Wallet.public_key) == public_key))
        ).scalar_one_or_none()
        if holder is not None:
            raise ImportRefused(f"this key already belongs to wallet {holder.id} ({holder.purpose})")
        if current is not None:
            await session.execute(
                update(Wallet).where(col(Wallet.id) == current.id).values(is_active=False, updated_at=utcnow())
            )
            await session.flush()
        wallet_id = new_id(IdPrefix.WALLET)
        keys = vault.import_wallet(wallet_id, "platform:TREASURY", secret_seed)
        now = utcnow()
        session.add(
            Wallet(
                id=wallet_id,
                user_id=None,
                purpose="TREASURY",
                network=settings.stellar_network,
                public_key=keys.public_key,
                secret_encrypted=keys.sealed,
                setup_stage="KEYPAIR_CREATED",
                status="PENDING",
                created_at=now,
                updated_at=now,
            )
        )
        session.add(
            audit_entry(
                action="WALLET_CREATED",
                resource_type="wallet",
                resource_id=wallet_id,
                actor=OPERATOR,
                before={"replaced_wallet_id": current.id, "public_key": current.public_key} if current else None,
                after={"purpose": "TREASURY", "public_key": keys.public_key, "imported": True},
            )
        )
        try:
            await session.flush()
        except IntegrityError:  # a concurrent import won the unique index
            raise ImportRefused("another treasury was stored meanwhile; run the command again") from None
    return Imported(wallet_id, public_key, created=True, replaced=current.id if current else None)


async def _active_treasury(session: AsyncSession) -> Wallet | None:
    return (
        await session.execute(
            select(Wallet)
            .where(col(Wallet.purpose) == "TREASURY", col(Wallet.user_id).is_(None), col(Wallet.is_active).is_(True))
            .with_for_update()
        )
    ).scalar_one_or_none()


@dataclass
class Tally:
    checked: int = 0
    resealed: int = 0
    current: int = 0
    unreadable: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "resealed": self.resealed,
            "current": self.current,
            "unreadable": self.unreadable,
        }


@dataclass
class Rotation:
    key_id: str
    wallets: Tally = field(default_factory=Tally)
    webhook_endpoints: Tally = field(default_factory=Tally)

    @property
    def ok(self) -> bool:
        return not (self.wallets.unreadable or self.webhook_endpoints.unreadable)

    def report(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "key_id": self.key_id,
            "wallets": self.wallets.report(),
            "webhook_endpoints": self.webhook_endpoints.report(),
        }


async def rotate_keys(settings: Settings, engine: AsyncEngine, *, batch_size: int = 200) -> Rotation:
    """Re-seal every wallet seed and webhook endpoint secret not sealed under the current key
    (opened with the key its `kid` names, from WALLET_ENCRYPTION_PREVIOUS_KEYS). A value no
    configured key opens is listed as unreadable and left as it is."""
    vault = vault_of(settings)
    rotation = Rotation(key_id=key_id(vault.current))
    after = ""
    while True:
        async with engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(col(Wallet.id), col(Wallet.user_id), col(Wallet.purpose), col(Wallet.secret_encrypted))
                    .where(col(Wallet.id) > after)
                    .order_by(col(Wallet.id))
                    .limit(batch_size)
                )
            ).all()
            for wallet_id, user_id, purpose, sealed in rows:
                context = wallet_context(wallet_id, user_id or f"platform:{purpose}")
                fresh = _reseal(vault, sealed, context, wallet_id, rotation.wallets)
                if fresh is not None:
                    await conn.execute(
                        update(Wallet)
                        .where(col(Wallet.id) == wallet_id, col(Wallet.secret_encrypted) == sealed)
                        .values(secret_encrypted=fresh)
                    )
        if len(rows) < batch_size:
            break
        after = rows[-1][0]
    after = ""
    while True:
        async with engine.begin() as conn:
            endpoints = (
                await conn.execute(
                    select(
                        col(WebhookEndpoint.id),
                        col(WebhookEndpoint.secret_encrypted),
                        col(WebhookEndpoint.previous_secret_encrypted),
                    )
                    .where(col(WebhookEndpoint.id) > after)
                    .order_by(col(WebhookEndpoint.id))
                    .limit(batch_size)
                )
            ).all()
            for endpoint_id, sealed, previous in endpoints:
                context = secret_context(endpoint_id)
                fresh = _reseal(vault, sealed, context, endpoint_id, rotation.webhook_endpoints)
                if fresh is not None:
                    await conn.execute(
                        update(WebhookEndpoint)
                        .where(col(WebhookEndpoint.id) == endpoint_id, col(WebhookEndpoint.secret_encrypted) == sealed)
                        .values(secret_encrypted=fresh)
                    )
                if previous is None:
                    continue
                fresh = _reseal(
                    vault, previous, context, f"{endpoint_id} (previous secret)", rotation.webhook_endpoints
                )
                if fresh is not None:
                    await conn.execute(
                        update(WebhookEndpoint)
                        .where(
                            col(WebhookEndpoint.id) == endpoint_id,
                            col(WebhookEndpoint.previous_secret_encrypted) == previous,
                        )
                        .values(previous_secret_encrypted=fresh)
                    )
        if len(endpoints) < batch_size:
            break
        after = endpoints[-1][0]
    return rotation


def _reseal(vault: KeyVault, sealed: str, context: bytes, name: str, tally: Tally) -> str | None:
    """The value sealed under the current key, or None when it already is (or cannot be opened)."""
    tally.checked += 1
    if not vault.needs_reseal(sealed):
        tally.current += 1
        return None
    try:
        fresh = vault.seal_bytes(vault.open_bytes(sealed, context), context)
    except WalletIntegrityError as exc:
        tally.unreadable.append(f"{name}: {exc}")
        return None
    tally.resealed += 1
    return fresh
