"""Invisible wallets (providers.md §2): sealed keys, activation on Stellar, platform wallets.

A wallet's key is generated and sealed when its row is inserted (with the user, in the
API); activation funds the account and adds the USDC trustline through the ChainSubmitter,
so a retried activation never submits twice. Seeds never leave `KeyVault.sign`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio import activity

from activities.context import WorkerContext, provider_errors
from activities.records import compare_and_set
from models import operation_keys, steps
from models.audit import audit_entry
from models.events import new_event
from models.money import stellar_amount_to_stroops
from models.tables import ChainTransaction, Wallet
from models.timefmt import utcnow
from models.workflow_io import WalletSetupInput, WalletSetupResult
from providers.errors import ProviderUnavailable
from providers.stellar.horizon import usdc_balance_stroops
from providers.stellar.keyvault import SealedWallet
from providers.stellar.submitter import ChainStep
from providers.stellar.wallets import new_wallet_row

log = logging.getLogger("offerhub.wallets")
PLATFORM_PURPOSES = ("TREASURY", "RESOLVER")
AGENT_PURPOSES = ("BUYER_AGENT", "SELLER_AGENT")


def owner_of(wallet: Wallet) -> str:
    return wallet.user_id or f"platform:{wallet.purpose}"


def sealed(wallet: Wallet) -> SealedWallet:
    return SealedWallet(wallet.id, owner_of(wallet), wallet.public_key, wallet.secret_encrypted)


async def platform_wallet(session: AsyncSession, purpose: str) -> Wallet | None:
    return (
        await session.execute(
            select(Wallet).where(
                col(Wallet.purpose) == purpose, col(Wallet.user_id).is_(None), col(Wallet.is_active).is_(True)
            )
        )
    ).scalar_one_or_none()


class WalletActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    @activity.defn(name=steps.WALLET_ACTIVATE.name)
    @provider_errors
    async def wallet_activate(self, req: WalletSetupInput) -> WalletSetupResult:
        return await activate(self.ctx, req.wallet_id)


async def activate(ctx: WorkerContext, wallet_id: str) -> WalletSetupResult:
    """Fund the account and add the USDC trustline (idempotent), then record READY."""
    async with ctx.sessions() as session:
        wallet = await session.get(Wallet, wallet_id)
        treasury = await platform_wallet(session, "TREASURY")
    if wallet is None:
        raise ProviderUnavailable(f"wallet {wallet_id} not found", provider="stellar", operation="activate")
    if wallet.status == "READY":
        return WalletSetupResult(wallet_id=wallet.id, status="READY", public_key=wallet.public_key, submitted=False)
    account = await ctx.horizon.account(wallet.public_key)
    has_trustline = account is not None and usdc_balance_stroops(account, ctx.usdc_code, ctx.usdc_issuer) is not None
    submitted = False
    if not has_trustline:
        step = await _activation_step(ctx, wallet, treasury, account_exists=account is not None)
        await ctx.submitter.run(step)
        submitted = True
    await _mark_ready(ctx, wallet)
    return WalletSetupResult(wallet_id=wallet.id, status="READY", public_key=wallet.public_key, submitted=submitted)


async def _activation_step(
    ctx: WorkerContext, wallet: Wallet, treasury: Wallet | None, *, account_exists: bool
) -> ChainStep:
    key = operation_keys.wallet_activation(wallet.id)
    base: dict[str, Any] = {
        "operation_key": key,
        "purpose": "WALLET_ACTIVATION",
        "resource_type": "wallet",
        "resource_id": wallet.id,
        "via": "horizon",
    }
    if account_exists:  # funded already (friendbot, or an earlier attempt): add the trustline alone
        return ChainStep(**base, source=sealed(wallet), build=ctx.factory.change_trust(wallet.public_key))
    if ctx.settings.stellar_account_funding == "friendbot" or wallet.purpose == "TREASURY":
        await ctx.horizon.friendbot(wallet.public_key)
        return ChainStep(**base, source=sealed(wallet), build=ctx.factory.change_trust(wallet.public_key))
    if treasury is None or treasury.status != "READY":
        raise ProviderUnavailable(
            "the platform treasury is not ready (offerhub wallets init-platform)",
            provider="stellar",
            operation="activate",
        )
    return ChainStep(
        **base,
        source=sealed(treasury),
        cosigners=[sealed(wallet)],
        build=ctx.factory.sponsored_activation(
            treasury.public_key, wallet.public_key, ctx.settings.stellar_wallet_starting_balance
        ),
    )


async def _mark_ready(ctx: WorkerContext, wallet: Wallet) -> None:
    """KEYPAIR_CREATED/ACCOUNT_FUNDED -> TRUSTLINE_READY with its event and audit entries."""
    now = utcnow()
    actor = ("system", wallet.id)
    async with ctx.sessions() as session, session.begin():
        moved = await compare_and_set(
            session,
            Wallet,
            wallet.id,
            field="setup_stage",
            expected=("KEYPAIR_CREATED", "ACCOUNT_FUNDED"),
            target="TRUSTLINE_READY",
            values={"status": "READY", "account_funded_at": wallet.account_funded_at or now, "trustline_ready_at": now},
        )
        if not moved:
            return
        for action, stage in (
            ("WALLET_ACCOUNT_FUNDED", "ACCOUNT_FUNDED"),
            ("WALLET_TRUSTLINE_READY", "TRUSTLINE_READY"),
        ):
            session.add(
                audit_entry(
                    action=action,
                    resource_type="wallet",
                    resource_id=wallet.id,
                    user_id=wallet.user_id,
                    actor=actor,
                    correlation_id=wallet.user_id or wallet.id,
                    before={"status": "PENDING"},
                    after={"setup_stage": stage, "status": "READY" if stage == "TRUSTLINE_READY" else "PENDING"},
                )
            )
        if wallet.user_id is not None:
            session.add(
                new_event(
                    type="wallet.created",
                    resource=("wallet", wallet.id),
                    user_ids=[wallet.user_id],
                    actor=actor,
                    correlation_id=wallet.user_id,
                    payload={
                        "wallet_id": wallet.id,
                        "user_id": wallet.user_id,
                        "public_key": wallet.public_key,
                        "network": wallet.network,
                        "status": "READY",
                        "funded": True,
                        "trustline_ready": True,
                    },
                )
            )


async def ensure_platform_wallets(ctx: WorkerContext) -> dict[str, str]:
    """Create and activate the platform wallets that are missing (testnet and the sandbox).

    Returns purpose -> public key. On mainnet the treasury must be imported instead.
    """
    purposes = PLATFORM_PURPOSES + (AGENT_PURPOSES if ctx.settings.payment_provider == "airtm" else ())
    found: dict[str, str] = {}
    for purpose in purposes:
        async with ctx.sessions() as session:
            wallet = await platform_wallet(session, purpose)
        if wallet is None:
            if purpose == "TREASURY" and ctx.settings.stellar_network == "mainnet":
                raise ProviderUnavailable(
                    "import the treasury first (offerhub wallets import-treasury)",
                    provider="stellar",
                    operation="init-platform",
                )
            wallet = new_wallet_row(ctx.vault, purpose=purpose, network=ctx.settings.stellar_network)
            async with ctx.sessions() as session, session.begin():
                session.add(wallet)
                session.add(
                    audit_entry(
                        action="WALLET_CREATED",
                        resource_type="wallet",
                        resource_id=wallet.id,
                        actor=("system", None),
                        after={"purpose": purpose, "public_key": wallet.public_key},
                    )
                )
        if wallet.status != "READY":
            await activate(ctx, wallet.id)
        found[purpose] = wallet.public_key
    return found


class FeeFloat:
    """providers.md §2.4: before a user or agent wallet signs, the treasury tops up its XLM
    when the spendable part is under STELLAR_WALLET_FEE_FLOOR (operation key
    `wallet:<id>:float:<n>`, so concurrent signers trigger one top-up)."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        # wallet -> (spendable stroops last read, when): spares a Horizon read per signature
        self.estimates: dict[str, tuple[int, float]] = {}

    def forget(self, wallet_id: str) -> None:
        """Drop the estimate (the network said the wallet could not pay a fee)."""
        self.estimates.pop(wallet_id, None)

    async def __call__(self, wallet: SealedWallet) -> None:
        if wallet.owner == "platform:TREASURY":
            return
        floor = stellar_amount_to_stroops(_xlm(self.ctx.settings.stellar_wallet_fee_floor))
        worst_fee = min(self.ctx.settings.stellar_max_fee_stroops, PER_SIGNATURE_ALLOWANCE)
        now = time.monotonic()
        known = self.estimates.get(wallet.wallet_id)
        if known is not None and now - known[1] < ESTIMATE_SECONDS and known[0] - worst_fee >= floor:
            self.estimates[wallet.wallet_id] = (known[0] - worst_fee, known[1])  # assume the dearest fee was paid
            return
        account = await self.ctx.horizon.account(wallet.public_key)
        if account is None:
            return  # not activated yet: activation funds it
        native = next((b["balance"] for b in account.get("balances", []) if b.get("asset_type") == "native"), "0")
        spendable = stellar_amount_to_stroops(str(native)) - (2 + int(account.get("subentry_count", 0))) * 5_000_000
        if spendable >= floor:
            self.estimates[wallet.wallet_id] = (spendable, now)
            return
        self.forget(wallet.wallet_id)
        async with self.ctx.sessions() as session:
            treasury = await platform_wallet(session, "TREASURY")
            done = await session.scalar(
                select(func.count())
                .select_from(ChainTransaction)
                .where(
                    col(ChainTransaction.operation_key).like(operation_keys.wallet_fee_floats(wallet.wallet_id)),
                    col(ChainTransaction.status) == "CONFIRMED",
                )
            )
        if treasury is None:
            raise ProviderUnavailable("no treasury to top up fees", provider="stellar", operation="fee_float")
        await self.ctx.submitter.run(
            ChainStep(
                operation_key=operation_keys.wallet_fee_float(wallet.wallet_id, int(done or 0) + 1),
                purpose="FEE_TOPUP",
                resource_type="wallet",
                resource_id=wallet.wallet_id,
                via="horizon",
                source=sealed(treasury),
                build=self.ctx.factory.xlm_payment(
                    treasury.public_key, wallet.public_key, self.ctx.settings.stellar_wallet_fee_topup
                ),
            )
        )


ESTIMATE_SECONDS = 30.0
PER_SIGNATURE_ALLOWANCE = 1_000_000  # 0.1 XLM: ten times a Trustless Work call's fee on the sandbox


def _xlm(amount: str) -> str:
    """An XLM setting ("1", "0.5") as a Stellar amount string."""
    from decimal import Decimal

    return f"{Decimal(amount):.7f}"
