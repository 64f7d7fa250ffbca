"""Payout steps of withdrawals (providers.md §1.5, §2.5, §4.4): the destination check and the
USDC payment on Stellar, the payout create / commit / read / cancel on Airtm.

Each answers a `PayoutState`: the withdrawal state the provider's answer maps to, and its
facts; the workflow records it through `withdrawal_apply`. Exactly once: the payment runs
through the ChainSubmitter under `withdrawal:<id>:payment` (the signed hash is persisted, and
the withdrawal moves to WITHDRAWAL_PENDING with it, before anything is sent); the Airtm
payout carries the withdrawal ID as its `code`.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import select
from sqlmodel import col
from stellar_sdk import StrKey
from temporalio import activity

from activities.context import WorkerContext, provider_errors
from activities.ledger import business_error
from activities.wallets import sealed
from activities.withdrawals import WithdrawalBook, apply_state, lock_withdrawal
from models import operation_keys, steps
from models.errors import ErrorCode
from models.orders_io import Caller
from models.states import WithdrawalStatus
from models.tables import User, Wallet, Withdrawal
from models.withdrawals_io import DestinationCheck, DestinationChecked, PayoutRef, PayoutState
from providers.airtm.client import AirtmClient
from providers.airtm.status import withdrawal_state
from providers.errors import ChainTxFailed, ProviderUnavailable
from providers.money import cents_to_json_number, json_number_to_cents
from providers.stellar.submitter import ChainRecord, ChainStep, ChainStore, ChainSubmitter

log = logging.getLogger("offerhub.payouts")
W = WithdrawalStatus
MEMO_BYTES = 28


class PayoutActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self._airtm: AirtmClient | None = None

    @property
    def airtm(self) -> AirtmClient:
        if self._airtm is None:
            s = self.ctx.settings
            if s.airtm_api_key is None or s.airtm_api_secret is None:
                raise ProviderUnavailable("Airtm credentials are not configured", provider="airtm")
            self._airtm = AirtmClient(
                s.airtm_url,
                s.airtm_api_key.get_secret_value(),
                s.airtm_api_secret.get_secret_value(),
                timeout=s.airtm_timeout_seconds,
                rate_per_second=s.airtm_rate_limit_per_second,
            )
        return self._airtm

    async def _load(self, withdrawal_id: str) -> Withdrawal:
        async with self.ctx.sessions() as session:
            wd = await session.get(Withdrawal, withdrawal_id)
        if wd is None:
            raise ProviderUnavailable(f"withdrawal {withdrawal_id} not recorded", provider="stellar")
        return wd

    async def _user_wallet(self, user_id: str) -> Wallet | None:
        async with self.ctx.sessions() as session:
            return (
                await session.execute(
                    select(Wallet).where(
                        col(Wallet.user_id) == user_id,
                        col(Wallet.is_primary).is_(True),
                        col(Wallet.is_active).is_(True),
                    )
                )
            ).scalar_one_or_none()

    # crypto --------------------------------------------------------------------------------

    @activity.defn(name=steps.WITHDRAWAL_CHECK_DESTINATION.name)
    @provider_errors
    async def check_destination(self, req: DestinationCheck) -> DestinationChecked:
        """providers.md §2.5: a valid G… key, not the user's own wallet, an existing account
        holding an authorized USDC trustline; a text memo of at most 28 bytes."""

        def invalid(reason: str) -> Exception:
            return business_error(
                ErrorCode.WITHDRAWAL_DESTINATION_INVALID,
                f"The destination cannot receive USDC: {reason}",
                reason=reason,
            )

        if not StrKey.is_valid_ed25519_public_key(req.destination):
            raise invalid("invalid_stellar_address")
        if req.memo is not None and len(req.memo.encode()) > MEMO_BYTES:
            raise invalid("memo_not_allowed")
        wallet = await self._user_wallet(req.user_id)
        if wallet is not None and wallet.public_key == req.destination:
            raise invalid("own_wallet")
        account = await self.ctx.horizon.account(req.destination)
        if account is None:
            raise invalid("account_not_found")
        line = next(
            (
                b
                for b in account.get("balances", [])
                if b.get("asset_code") == self.ctx.usdc_code and b.get("asset_issuer") == self.ctx.usdc_issuer
            ),
            None,
        )
        if line is None or line.get("is_authorized") is False:
            raise invalid("no_usdc_trustline")
        return DestinationChecked()

    @activity.defn(name=steps.WITHDRAWAL_PAY_CRYPTO.name)
    @provider_errors
    async def pay_crypto(self, req: PayoutRef) -> PayoutState:
        """One USDC payment from the user's wallet; a transaction that applied and failed is the
        withdrawal's failure (STELLAR_TX_FAILED), anything unknown is retried and resolved first."""
        wd = await self._load(req.withdrawal_id)
        if wd.status in (W.WITHDRAWAL_COMPLETED, W.WITHDRAWAL_FAILED, W.WITHDRAWAL_CANCELED):
            return PayoutState(
                withdrawal_id=wd.id, target=wd.status, stellar_transaction_hash=wd.stellar_transaction_hash
            )
        wallet = await self._user_wallet(wd.user_id)
        if wallet is None or wallet.status != "READY":
            raise ProviderUnavailable(
                f"the wallet of {wd.user_id} is not ready", provider="stellar", operation="payment"
            )
        submitter = ChainSubmitter(
            horizon=self.ctx.horizon,
            trustless=None,
            vault=self.ctx.vault,
            store=PendingOnSign(self.ctx.submitter.store, self.ctx, wd.id),
            passphrase=self.ctx.settings.network_passphrase,
            max_fee_stroops=self.ctx.settings.stellar_max_fee_stroops,
            fee_float=self.ctx.submitter.fee_float,
        )
        step = ChainStep(
            operation_key=operation_keys.withdrawal_payment(wd.id),
            purpose="PAYMENT",
            resource_type="withdrawal",
            resource_id=wd.id,
            via="horizon",
            source=sealed(wallet),
            build=self.ctx.factory.usdc_payment(wallet.public_key, wd.destination_ref, wd.amount, wd.memo),
        )
        try:
            done = await submitter.run(step)
        except ChainTxFailed as exc:
            codes = exc.result_codes or {}
            if "op_underfunded" in str(codes):
                log.error("withdrawal payment underfunded: ledger and chain disagree", extra={"withdrawal_id": wd.id})
            return PayoutState(
                withdrawal_id=wd.id,
                target=W.WITHDRAWAL_FAILED,
                failure_code="STELLAR_TX_FAILED",
                failure_reason=str(codes.get("operations") or codes.get("transaction") or "tx_failed"),
            )
        return PayoutState(withdrawal_id=wd.id, target=W.WITHDRAWAL_COMPLETED, stellar_transaction_hash=done.tx_hash)

    # Airtm ---------------------------------------------------------------------------------

    @activity.defn(name=steps.WITHDRAWAL_PAYOUT_CREATE.name)
    @provider_errors
    async def payout_create(self, req: PayoutRef) -> PayoutState:
        """The uncommitted payout (code = withdrawal ID), created at most once."""
        wd = await self._load(req.withdrawal_id)
        async with self.ctx.sessions() as session:
            user = await session.get(User, wd.user_id)
        if user is None or user.airtm_email is None:
            raise business_error(ErrorCode.AIRTM_USER_NOT_LINKED, "The user is not linked to Airtm", user_id=wd.user_id)
        payout = await self.airtm.create_payout_once(
            {
                "code": wd.id,
                "airtmUserEmail": user.airtm_email,
                "amount": cents_to_json_number(wd.amount),
                "notes": (wd.description or f"Withdrawal {wd.id}")[:250],
                "internalNote": f"{wd.destination_type}:{wd.destination_ref}",
                "requireIdVerified": self.ctx.settings.airtm_payout_require_id_verified,
                "commit": False,
            }
        )
        return state_of(wd.id, payout, committed=False)

    async def _payout_id(self, wd: Withdrawal) -> str | None:
        if wd.airtm_payout_id is not None:
            return wd.airtm_payout_id
        found = await self.airtm.payout_by_code(wd.id)
        return str(found["id"]) if found is not None else None

    @activity.defn(name=steps.WITHDRAWAL_PAYOUT_COMMIT.name)
    @provider_errors
    async def payout_commit(self, req: PayoutRef) -> PayoutState:
        wd = await self._load(req.withdrawal_id)
        payout_id = await self._payout_id(wd)
        if payout_id is None:
            raise ProviderUnavailable(f"no payout for {wd.id} yet", provider="airtm", operation="payout_commit")
        return state_of(wd.id, await self.airtm.commit_payout(payout_id), committed=True)

    @activity.defn(name=steps.WITHDRAWAL_PAYOUT_READ.name)
    @provider_errors
    async def payout_read(self, req: PayoutRef) -> PayoutState:
        wd = await self._load(req.withdrawal_id)
        payout_id = await self._payout_id(wd)
        if payout_id is None:
            return PayoutState(withdrawal_id=wd.id)
        return state_of(wd.id, await self.airtm.payout(payout_id), committed=wd.committed)

    @activity.defn(name=steps.WITHDRAWAL_PAYOUT_CANCEL.name)
    @provider_errors
    async def payout_cancel(self, req: PayoutRef) -> PayoutState:
        """Cancel at Airtm; when it can no longer be canceled, the state read decides."""
        wd = await self._load(req.withdrawal_id)
        payout_id = await self._payout_id(wd)
        if payout_id is None:  # never created: nothing to cancel there
            return PayoutState(withdrawal_id=wd.id, target=W.WITHDRAWAL_CANCELED, provider_status="CANCELED")
        return state_of(wd.id, await self.airtm.cancel_payout(payout_id), committed=wd.committed)


def state_of(withdrawal_id: str, payout: dict[str, Any], *, committed: bool) -> PayoutState:
    """An Airtm payout as the withdrawal state it maps to (providers.md §4.5) and its facts."""
    status = str(payout.get("status", "")).upper()
    target = withdrawal_state(status, committed=committed)
    fee = payout.get("airtmFee")
    reason = payout.get("reasonDescription")
    failure_code = payout.get("reasonCode") or None
    if status == "CANCELED" and committed:
        failure_code = "PROVIDER_CANCELED"
    return PayoutState(
        withdrawal_id=withdrawal_id,
        target=target,
        provider_status=status,
        airtm_payout_id=str(payout["id"]) if payout.get("id") else None,
        fee=json_number_to_cents(fee, max_decimals=2) if fee is not None else None,
        failure_code=str(failure_code) if failure_code else None,
        failure_reason=str(reason) if reason else None,
        action_required=str(reason) if reason and target == W.WITHDRAWAL_PENDING_USER_ACTION else None,
    )


class PendingOnSign:
    """A ChainStore that also records the withdrawal as WITHDRAWAL_PENDING with the attempt's
    hash as soon as the signed attempt is stored, before it is submitted (domain.md §4.7)."""

    def __init__(self, inner: ChainStore, ctx: WorkerContext, withdrawal_id: str) -> None:
        self.inner, self.ctx, self.withdrawal_id = inner, ctx, withdrawal_id

    async def latest(self, operation_key: str) -> ChainRecord | None:
        return await self.inner.latest(operation_key)

    async def dead_attempts(self, operation_key: str) -> int:
        return await self.inner.dead_attempts(operation_key)

    async def update(self, record: ChainRecord) -> None:
        await self.inner.update(record)

    def account_lock(self, accounts: list[str]) -> AbstractAsyncContextManager[None]:
        return self.inner.account_lock(accounts)

    async def insert(self, record: ChainRecord) -> None:
        await self.inner.insert(record)
        async with self.ctx.sessions() as session, session.begin():
            wd = await lock_withdrawal(session, self.withdrawal_id)
            state = PayoutState(
                withdrawal_id=wd.id, target=W.WITHDRAWAL_PENDING, stellar_transaction_hash=record.tx_hash
            )
            await apply_state(WithdrawalBook(session, wd, Caller(actor_id=wd.id)), state)
