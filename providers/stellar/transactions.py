"""TxFactory: classic Stellar transactions built locally with stellar-sdk (activation,
trustline, USDC payment), each from the source's current sequence on Horizon."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from stellar_sdk import Account, Asset, TransactionBuilder

from providers.errors import ProviderRejected
from providers.money import cents_to_stellar_amount
from providers.stellar.horizon import HorizonClient

Builder = Callable[[int], Awaitable[str]]


class TxFactory:
    def __init__(
        self, horizon: HorizonClient, *, passphrase: str, usdc: Asset, base_fee: int, timeout_seconds: int
    ) -> None:
        self.horizon = horizon
        self.passphrase = passphrase
        self.usdc = usdc
        self.base_fee = base_fee
        self.timeout = timeout_seconds

    async def _builder(self, source: str, fee_multiplier: int) -> TransactionBuilder:
        account = await self.horizon.account(source)
        if account is None:
            raise ProviderRejected(f"source account {source} does not exist", provider="stellar", operation="build")
        return TransactionBuilder(
            Account(source, int(account["sequence"])), self.passphrase, base_fee=self.base_fee * fee_multiplier
        ).set_timeout(self.timeout)

    def sponsored_activation(self, treasury: str, wallet: str, starting_balance_xlm: str) -> Builder:
        """Treasury creates the account and the wallet adds its USDC trustline, atomically."""

        async def build(fee_multiplier: int) -> str:
            builder = await self._builder(treasury, fee_multiplier)
            builder.append_create_account_op(wallet, starting_balance_xlm, source=treasury)
            builder.append_change_trust_op(self.usdc, source=wallet)
            return builder.build().to_xdr()

        return build

    def change_trust(self, wallet: str) -> Builder:
        async def build(fee_multiplier: int) -> str:
            builder = await self._builder(wallet, fee_multiplier)
            builder.append_change_trust_op(self.usdc)
            return builder.build().to_xdr()

        return build

    def usdc_payment(self, source: str, destination: str, amount_cents: int, memo: str | None = None) -> Builder:
        async def build(fee_multiplier: int) -> str:
            builder = await self._builder(source, fee_multiplier)
            builder.append_payment_op(destination, self.usdc, cents_to_stellar_amount(amount_cents))
            if memo:
                builder.add_text_memo(memo)
            return builder.build().to_xdr()

        return build

    def xlm_payment(self, source: str, destination: str, amount_xlm: str) -> Builder:
        async def build(fee_multiplier: int) -> str:
            builder = await self._builder(source, fee_multiplier)
            builder.append_payment_op(destination, Asset.native(), amount_xlm)
            return builder.build().to_xdr()

        return build
