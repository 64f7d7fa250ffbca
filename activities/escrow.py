"""Escrow provider steps of orders and milestones (providers.md §3.4): each one signed
chain step through the TrustlessWorkEscrow, keyed by its operation key, so a retried
activity finds the step already done instead of doing it twice."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col
from temporalio import activity

from activities.context import WorkerContext, provider_errors
from activities.wallets import platform_wallet, sealed
from models import operation_keys, steps
from models.escrow_io import (
    Distribution,
    EscrowDeploy,
    EscrowDispute,
    EscrowFund,
    EscrowParties,
    EscrowRelease,
    EscrowResolve,
    EscrowStep,
    MilestoneApprove,
    MilestoneMark,
    MilestoneSpec,
    WalletRef,
)
from models.orders_io import ChainDone, EscrowCallInput, EscrowCalls, EscrowPlan
from models.tables import Escrow, Milestone, Order, Wallet
from providers.errors import ProviderUnavailable
from providers.stellar.keyvault import SealedWallet
from providers.trustless_work.escrow import TrustlessWorkEscrow


class EscrowActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.escrow = TrustlessWorkEscrow(
            ctx.trustless, ctx.submitter, self._sealed, ctx.usdc_issuer, known_escrow=self._known_escrow
        )
        self.platform: dict[str, WalletRef] = {}
        self.keys: dict[str, SealedWallet] = {}
        self.user_wallets: dict[str, WalletRef] = {}

    async def _sealed(self, ref: WalletRef) -> SealedWallet:
        # ciphertexts only change by key rotation, after which workers are restarted
        if ref.wallet_id not in self.keys:
            async with self.ctx.sessions() as session:
                wallet = await session.get(Wallet, ref.wallet_id)
            if wallet is None:
                raise ProviderUnavailable(f"wallet {ref.wallet_id} not found", provider="stellar", operation="sign")
            self.keys[ref.wallet_id] = sealed(wallet)
        return self.keys[ref.wallet_id]

    async def _known_escrow(self, contract_id: str) -> bool:
        """Whether a contract is already one of our escrows (a deploy must never invoke one)."""
        async with self.ctx.sessions() as session:
            found = await session.scalar(
                select(col(Escrow.id)).where(col(Escrow.trustless_contract_id) == contract_id).limit(1)
            )
        return found is not None

    async def _parties(self, buyer_id: str, seller_id: str) -> EscrowParties:
        async with self.ctx.sessions() as session:

            def ref(wallet: Wallet | None, what: str) -> WalletRef:
                if wallet is None:
                    raise ProviderUnavailable(f"no wallet for {what}", provider="stellar", operation="parties")
                return WalletRef(wallet_id=wallet.id, public_key=wallet.public_key)

            async def user_wallet(user_id: str) -> Wallet | None:
                return (
                    await session.execute(
                        select(Wallet).where(
                            col(Wallet.user_id) == user_id,
                            col(Wallet.is_primary).is_(True),
                            col(Wallet.is_active).is_(True),
                        )
                    )
                ).scalar_one_or_none()

            async def user_ref(user_id: str) -> WalletRef:
                if user_id not in self.user_wallets:  # a user's primary wallet is fixed once READY
                    self.user_wallets[user_id] = ref(await user_wallet(user_id), user_id)
                return self.user_wallets[user_id]

            async def platform(purpose: str) -> WalletRef:
                # platform wallets never change while a worker runs (key rotation keeps the address)
                if purpose not in self.platform:
                    self.platform[purpose] = ref(await platform_wallet(session, purpose), purpose)
                return self.platform[purpose]

            treasury = await platform("TREASURY")
            resolver = await platform("RESOLVER")
            if self.ctx.settings.payment_provider == "airtm":
                buyer = await platform("BUYER_AGENT")
                seller = await platform("SELLER_AGENT")
                funder, receiver, buyer_payout = treasury, treasury, treasury
            else:
                buyer = await user_ref(buyer_id)
                seller = await user_ref(seller_id)
                funder, receiver, buyer_payout = buyer, seller, buyer
        return EscrowParties(
            approver=buyer,
            service_provider=seller,
            release_signer=buyer,
            receiver=receiver,
            platform=treasury,
            resolver=resolver,
            deployer=treasury,
            funder=funder,
            buyer_payout=buyer_payout,
        )

    @activity.defn(name=steps.ESCROW_DEPLOY.name)
    @provider_errors
    async def deploy(self, plan: EscrowPlan) -> ChainDone:
        async with self.ctx.sessions() as session:
            order = await session.get(Order, plan.order_id)
            milestones = (
                (
                    await session.execute(
                        select(Milestone)
                        .where(col(Milestone.order_id) == plan.order_id)
                        .order_by(col(Milestone.position))
                    )
                )
                .scalars()
                .all()
            )
        assert order is not None
        parties = await self._parties(plan.buyer_id, plan.seller_id)
        step = await self.escrow.deploy(
            EscrowDeploy(
                operation_key=operation_keys.escrow_deploy(plan.escrow_id).key,
                order_id=order.id,
                title=order.title,
                description=order.description or order.title,
                escrow_type=plan.escrow_type,
                amount_cents=order.amount,
                parties=parties,
                milestones=[MilestoneSpec(title=m.title, amount_cents=m.amount) for m in milestones],
            )
        )
        return _done(step, step.contract_id, plan.escrow_id)

    @activity.defn(name=steps.ESCROW_FUND.name)
    @provider_errors
    async def fund(self, plan: EscrowPlan) -> ChainDone:
        assert plan.contract_id is not None
        parties = await self._parties(plan.buyer_id, plan.seller_id)
        key = operation_keys.escrow_fund(plan.escrow_id, plan.round)
        step = await self.escrow.fund(
            EscrowFund(
                operation_key=key.key,
                earlier_keys=key.earlier,
                contract_id=plan.contract_id,
                escrow_type=plan.escrow_type,
                amount_cents=plan.amount,
                funder=parties.funder,
            )
        )
        return _done(step, plan.contract_id, plan.escrow_id)

    @activity.defn(name=steps.ESCROW_CALL.name)
    @provider_errors
    async def call(self, req: EscrowCallInput) -> ChainDone:
        """complete / approve / release / dispute / resolve, on the escrow or one milestone."""
        return await self._call(req)

    @activity.defn(name=steps.ESCROW_CALLS.name)
    @provider_errors
    async def calls(self, req: EscrowCalls) -> ChainDone:
        """Steps that always go together, in order; each one's key finds it done on a retry
        (ChainSubmitter), so only the steps that did not land run again."""
        done = [await self._call(call) for call in req.calls]
        return done[-1]

    async def _call(self, req: EscrowCallInput) -> ChainDone:
        buyer_id, seller_id = req.buyer_id, req.seller_id
        if buyer_id is None or seller_id is None:  # an input recorded before it named the parties
            async with self.ctx.sessions() as session:
                order = await session.get(Order, req.order_id)
            assert order is not None
            buyer_id, seller_id = order.buyer_id, order.seller_id
        parties = await self._parties(buyer_id, seller_id)
        key = operation_keys.escrow_step(req.escrow_id, req.milestone_id, req.kind, req.round)
        common = {
            "operation_key": key.key,
            "earlier_keys": key.earlier,
            "contract_id": req.contract_id,
            "escrow_type": req.escrow_type,
            "milestone_index": req.milestone_index,
        }
        if req.kind == "complete":
            step = await self.escrow.mark_milestone(
                MilestoneMark(evidence=req.note, service_provider=parties.service_provider, **common)
            )
        elif req.kind == "approve":
            step = await self.escrow.approve_milestone(MilestoneApprove(approver=parties.approver, **common))
        elif req.kind == "release":
            step = await self.escrow.release(EscrowRelease(release_signer=parties.release_signer, **common))
        elif req.kind == "dispute":
            disputer = parties.approver if req.disputer == "buyer" else parties.service_provider
            step = await self.escrow.dispute(EscrowDispute(disputer=disputer, **common))
        else:
            distributions = [
                Distribution(address=a.public_key, amount_cents=c)
                for a, c in ((parties.receiver, req.to_seller), (parties.buyer_payout, req.to_buyer))
                if c > 0
            ]
            step = await self.escrow.resolve(
                EscrowResolve(resolver=parties.resolver, distributions=distributions, **common)
            )
        return _done(step, req.contract_id, req.escrow_id)


def _done(step: EscrowStep, contract_id: str | None, escrow_id: str) -> ChainDone:
    """What a chain step of an escrow reports back to its workflow (no secret, no envelope)."""
    return ChainDone(
        operation_key=step.operation_key, tx_hash=step.tx_hash, contract_id=contract_id, escrow_id=escrow_id
    )
