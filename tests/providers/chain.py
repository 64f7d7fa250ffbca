"""A provider-only toolkit on the session sandbox: clients, vault, submitter, wallets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from stellar_sdk import Asset

from activities.chain_store import PostgresChainStore
from models.escrow_io import EscrowParties, WalletRef
from models.ids import IdPrefix, new_id
from providers.errors import ProviderError
from providers.stellar.horizon import HorizonClient, usdc_balance_stroops
from providers.stellar.keyvault import KeyVault, SealedWallet
from providers.stellar.submitter import ChainStep, ChainSubmitter
from providers.stellar.transactions import TxFactory
from providers.trustless_work.client import TrustlessWorkClient
from providers.trustless_work.escrow import TrustlessWorkEscrow
from tests.support import Stack

T = TypeVar("T")


async def retrying(call: Callable[[], Awaitable[T]], *, attempts: int = 40) -> T:
    """What Temporal does for an activity: retry retryable provider errors (no sleeps: faults are seeded)."""
    last: ProviderError | None = None
    for _ in range(attempts):
        try:
            return await call()
        except ProviderError as exc:
            if not exc.retryable:
                raise
            last = exc
            await asyncio.sleep(0.01)
    raise AssertionError(f"still failing after {attempts} attempts: {last!r}")


@dataclass
class Chain:
    stack: Stack
    engine: AsyncEngine
    control: httpx.AsyncClient
    horizon: HorizonClient
    trustless: TrustlessWorkClient
    vault: KeyVault
    submitter: ChainSubmitter
    factory: TxFactory
    escrow: TrustlessWorkEscrow
    usdc: Asset
    issuer: str
    wallets: dict[str, SealedWallet] = field(default_factory=dict)

    async def close(self) -> None:
        await self.horizon.close()
        await self.trustless.close()
        await self.control.aclose()
        await self.engine.dispose()

    def new_wallet(self, owner: str) -> SealedWallet:
        wallet = self.vault.new_wallet(new_id(IdPrefix.WALLET), owner)
        self.wallets[wallet.wallet_id] = wallet
        return wallet

    @staticmethod
    def ref(wallet: SealedWallet) -> WalletRef:
        return WalletRef(wallet_id=wallet.wallet_id, public_key=wallet.public_key)

    async def treasury(self) -> SealedWallet:
        treasury = self.new_wallet("platform:TREASURY")
        await retrying(lambda: self.horizon.friendbot(treasury.public_key))
        await retrying(
            lambda: self.submitter.run(
                ChainStep(
                    operation_key=f"wallet:{treasury.wallet_id}:activate",
                    purpose="WALLET_ACTIVATION",
                    resource_type="wallet",
                    resource_id=treasury.wallet_id,
                    via="horizon",
                    source=treasury,
                    build=self.factory.change_trust(treasury.public_key),
                )
            )
        )
        return treasury

    async def activated(self, treasury: SealedWallet, owner: str) -> SealedWallet:
        """A wallet created by the treasury with its USDC trustline, in one transaction."""
        wallet = self.new_wallet(owner)
        await retrying(
            lambda: self.submitter.run(
                ChainStep(
                    operation_key=f"wallet:{wallet.wallet_id}:activate",
                    purpose="WALLET_ACTIVATION",
                    resource_type="wallet",
                    resource_id=wallet.wallet_id,
                    via="horizon",
                    source=treasury,
                    cosigners=[wallet],
                    build=self.factory.sponsored_activation(treasury.public_key, wallet.public_key, "5"),
                )
            )
        )
        return wallet

    async def faucet(self, wallet: SealedWallet, amount: str) -> dict[str, Any]:
        response = await self.control.post("/faucet/usdc", json={"address": wallet.public_key, "amount": amount})
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def usdc_of(self, address: str) -> Decimal:
        if address.startswith("C"):
            account = (await self.control.get(f"/accounts/{address}")).json()
            return Decimal(account["balances"][0]["balance"])
        found = await self.horizon.account(address)
        assert found is not None
        stroops = usdc_balance_stroops(found, "USDC", self.issuer)
        return Decimal(stroops or 0) / 10_000_000

    async def invariants(self) -> dict[str, Any]:
        data: dict[str, Any] = (await self.control.get("/invariants")).json()
        return data

    def parties(
        self, *, buyer: SealedWallet, seller: SealedWallet, treasury: SealedWallet, resolver: SealedWallet
    ) -> EscrowParties:
        b, s, t = self.ref(buyer), self.ref(seller), self.ref(treasury)
        return EscrowParties(
            approver=b,
            service_provider=s,
            release_signer=b,
            receiver=s,
            platform=t,
            resolver=self.ref(resolver),
            deployer=t,
            funder=b,
            buyer_payout=b,
        )


async def open_chain(stack: Stack) -> Chain:
    env = stack.env
    sandbox = f"http://127.0.0.1:{stack.sandbox_port}"
    engine = create_async_engine(stack.database_url)
    control = httpx.AsyncClient(base_url=f"{sandbox}/_sandbox", timeout=30)
    info = (await control.get("/info")).json()
    usdc = Asset("USDC", info["usdc"]["issuer"])
    horizon = HorizonClient(env["STELLAR_HORIZON_URL"], env["STELLAR_FRIENDBOT_URL"])
    trustless = TrustlessWorkClient(
        env["TRUSTLESS_WORK_BASE_URL"], env["TRUSTLESS_WORK_API_KEY"], rate_per_minute=100_000
    )
    vault = KeyVault(env["WALLET_ENCRYPTION_KEY"])
    store = PostgresChainStore(engine)
    passphrase = env["STELLAR_NETWORK_PASSPHRASE"]
    submitter = ChainSubmitter(
        horizon=horizon, trustless=trustless, vault=vault, store=store, passphrase=passphrase, max_fee_stroops=5_000_000
    )
    factory = TxFactory(horizon, passphrase=passphrase, usdc=usdc, base_fee=100, timeout_seconds=30)
    chain: Chain

    async def lookup(ref: WalletRef) -> SealedWallet:
        return chain.wallets[ref.wallet_id]

    issuer = str(info["usdc"]["issuer"])
    escrow = TrustlessWorkEscrow(trustless, submitter, lookup, issuer)
    chain = Chain(stack, engine, control, horizon, trustless, vault, submitter, factory, escrow, usdc, issuer)
    return chain
