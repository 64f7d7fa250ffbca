"""TrustlessWorkEscrow: the escrow provider (providers.md §1.4, §3) over the raw client and
the ChainSubmitter. Every write is one signed chain step keyed by its operation key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from stellar_sdk import Asset

from models.escrow_io import (
    EscrowCall,
    EscrowDeploy,
    EscrowDispute,
    EscrowFund,
    EscrowPayout,
    EscrowRelease,
    EscrowResolve,
    EscrowSnapshot,
    EscrowStep,
    EscrowType,
    MilestoneApprove,
    MilestoneMark,
    WalletRef,
)
from providers.errors import UnexpectedProviderData
from providers.money import cents_to_json_number, cents_to_stroops
from providers.stellar.envelope_check import ExpectedCall
from providers.stellar.keyvault import SealedWallet
from providers.stellar.submitter import ChainResult, ChainStep, ChainSubmitter
from providers.trustless_work.client import TrustlessWorkClient

WalletLookup = Callable[[WalletRef], Awaitable[SealedWallet]]
KnownEscrow = Callable[[str], Awaitable[bool]]
TITLE_MAX, DESCRIPTION_MAX, EVIDENCE_MAX = 100, 500, 500
# The contract function each build endpoint has the signer invoke (the provider's names,
# providers.md §5.6): the pre-sign check refuses an envelope calling anything else.
FUNCTIONS: dict[str, str] = {
    "/deployer/single-release": "tw_new_single_release_escrow",
    "/deployer/multi-release": "tw_new_multi_release_escrow",
    "fund-escrow": "fund_escrow",
    "change-milestone-status": "change_milestone_status",
    "approve-milestone": "approve_milestone",
    "release-funds": "release_funds",
    "release-milestone-funds": "release_milestone_funds",
    "dispute-escrow": "dispute_escrow",
    "dispute-milestone": "dispute_milestone",
    "resolve-dispute": "resolve_dispute",
    "resolve-milestone-dispute": "resolve_milestone_dispute",
}


def function_of(path: str) -> str:
    """`/deployer/<type>` or `/escrow/<type>/<action>` -> the contract function it builds."""
    return FUNCTIONS[path] if path.startswith("/deployer/") else FUNCTIONS[path.rsplit("/", 1)[-1]]


class TrustlessWorkEscrow:
    def __init__(
        self,
        client: TrustlessWorkClient,
        submitter: ChainSubmitter,
        wallets: WalletLookup,
        usdc_issuer: str,
        known_escrow: KnownEscrow | None = None,
    ) -> None:
        self.client = client
        self.submitter = submitter
        self.wallets = wallets
        self.usdc_issuer = usdc_issuer
        self.usdc_contract = Asset("USDC", usdc_issuer).contract_id(submitter.passphrase)
        self.known_escrow = known_escrow  # a deploy must not invoke a contract we know as an escrow

    async def _step(
        self,
        purpose: str,
        key: str,
        resource: tuple[str, str],
        signer: WalletRef,
        path: str,
        body: dict[str, Any],
        earlier_keys: list[str] | None = None,
        *,
        contract_id: str | None = None,
        transfer_stroops: int = 0,
    ) -> ChainResult:
        """One build-sign-submit step. `contract_id` is the escrow the call must invoke (None
        for a deploy); `transfer_stroops` the USDC the signer may authorize to it (a fund)."""
        wallet = await self.wallets(signer)
        if wallet.public_key != signer.public_key:
            raise UnexpectedProviderData(
                f"wallet {signer.wallet_id} does not hold {signer.public_key}",
                provider="trustless_work",
                operation=purpose,
            )

        async def build(_fee_multiplier: int) -> str:
            return await self.client.build(path, body, operation=purpose.lower())

        return await self.submitter.run(
            ChainStep(
                operation_key=key,
                purpose=purpose,
                resource_type=resource[0],
                resource_id=resource[1],
                via="trustless_work",
                source=wallet,
                build=build,
                earlier_keys=earlier_keys or [],
                expected=ExpectedCall(
                    function=function_of(path),
                    signer=signer.public_key,
                    usdc_contract=self.usdc_contract,
                    contract=contract_id,
                    transfer_max_stroops=transfer_stroops,
                ),
                known_escrow=self.known_escrow if contract_id is None else None,
            )
        )

    def _done(
        self,
        call: EscrowCall | EscrowDeploy,
        result: ChainResult,
        contract_id: str,
        payouts: list[EscrowPayout] | None = None,
    ) -> EscrowStep:
        return EscrowStep(
            operation_key=call.operation_key,
            contract_id=contract_id,
            tx_hash=result.tx_hash,
            ledger=result.ledger,
            payouts=payouts or [],
        )

    async def deploy(self, req: EscrowDeploy) -> EscrowStep:
        parties = req.parties
        roles: dict[str, str] = {
            "approver": parties.approver.public_key,
            "serviceProvider": parties.service_provider.public_key,
            "platformAddress": parties.platform.public_key,
            "releaseSigner": parties.release_signer.public_key,
            "disputeResolver": parties.resolver.public_key,
        }
        body: dict[str, Any] = {
            "signer": parties.deployer.public_key,
            "engagementId": req.order_id,
            "title": req.title[:TITLE_MAX],
            "description": req.description[:DESCRIPTION_MAX],
            "roles": roles,
            "platformFee": 0,
            "trustline": {"address": self.usdc_issuer, "symbol": "USDC"},
        }
        if req.escrow_type == "single-release":
            roles["receiver"] = parties.receiver.public_key
            body["amount"] = cents_to_json_number(req.amount_cents)
            body["milestones"] = [{"description": f"Delivery of {req.order_id}"}]
        else:
            if sum(m.amount_cents for m in req.milestones) != req.amount_cents:
                raise UnexpectedProviderData(
                    "milestones do not sum to the escrow amount", provider="trustless_work", operation="deploy"
                )
            body["milestones"] = [
                {
                    "description": m.title,
                    "amount": cents_to_json_number(m.amount_cents),
                    "receiver": parties.receiver.public_key,
                }
                for m in req.milestones
            ]
        result = await self._step(
            "ESCROW_DEPLOY",
            req.operation_key,
            ("order", req.order_id),
            parties.deployer,
            f"/deployer/{req.escrow_type}",
            body,
        )
        if not result.contract_id:
            raise UnexpectedProviderData(
                "deploy confirmed without a contract ID", provider="trustless_work", operation="deploy"
            )
        return self._done(req, result, result.contract_id)

    async def _on_contract(
        self,
        req: EscrowCall,
        purpose: str,
        signer: WalletRef,
        path: str,
        body: dict[str, Any],
        payouts: list[EscrowPayout] | None = None,
        transfer_stroops: int = 0,
    ) -> EscrowStep:
        result = await self._step(
            purpose,
            req.operation_key,
            ("escrow", req.contract_id),
            signer,
            path,
            body,
            req.earlier_keys,
            contract_id=req.contract_id,
            transfer_stroops=transfer_stroops,
        )
        return self._done(req, result, req.contract_id, payouts)

    @staticmethod
    def _per_type(req: EscrowCall, body: dict[str, Any], single_path: str, multi_path: str) -> str:
        """The endpoint for the escrow's type; a multi-release call also names its milestone."""
        if req.escrow_type == "single-release":
            return single_path
        body["milestoneIndex"] = str(req.milestone_index or 0)
        return multi_path

    async def fund(self, req: EscrowFund) -> EscrowStep:
        body = {
            "contractId": req.contract_id,
            "amount": cents_to_json_number(req.amount_cents),
            "signer": req.funder.public_key,
        }
        path = f"/escrow/{req.escrow_type}/fund-escrow"
        return await self._on_contract(
            req, "ESCROW_FUND", req.funder, path, body, transfer_stroops=cents_to_stroops(req.amount_cents)
        )

    async def mark_milestone(self, req: MilestoneMark) -> EscrowStep:
        body = {
            "contractId": req.contract_id,
            "milestoneIndex": str(req.milestone_index or 0),
            "newStatus": "completed",
            "newEvidence": req.evidence[:EVIDENCE_MAX],
            "serviceProvider": req.service_provider.public_key,
        }
        path = f"/escrow/{req.escrow_type}/change-milestone-status"
        return await self._on_contract(req, "MILESTONE_STATUS", req.service_provider, path, body)

    async def approve_milestone(self, req: MilestoneApprove) -> EscrowStep:
        body = {
            "contractId": req.contract_id,
            "milestoneIndex": str(req.milestone_index or 0),
            "approver": req.approver.public_key,
        }
        path = f"/escrow/{req.escrow_type}/approve-milestone"
        return await self._on_contract(req, "MILESTONE_APPROVE", req.approver, path, body)

    async def release(self, req: EscrowRelease) -> EscrowStep:
        body: dict[str, Any] = {"contractId": req.contract_id, "releaseSigner": req.release_signer.public_key}
        path = self._per_type(
            req, body, "/escrow/single-release/release-funds", "/escrow/multi-release/release-milestone-funds"
        )
        return await self._on_contract(req, "ESCROW_RELEASE", req.release_signer, path, body)

    async def dispute(self, req: EscrowDispute) -> EscrowStep:
        body: dict[str, Any] = {"contractId": req.contract_id, "signer": req.disputer.public_key}
        path = self._per_type(
            req, body, "/escrow/single-release/dispute-escrow", "/escrow/multi-release/dispute-milestone"
        )
        return await self._on_contract(req, "ESCROW_DISPUTE", req.disputer, path, body)

    async def resolve(self, req: EscrowResolve) -> EscrowStep:
        merged: dict[str, int] = {}
        for entry in req.distributions:  # same-address entries are merged; the contract refuses zeros
            merged[entry.address] = merged.get(entry.address, 0) + entry.amount_cents
        paid = {address: cents for address, cents in merged.items() if cents > 0}
        body: dict[str, Any] = {
            "contractId": req.contract_id,
            "disputeResolver": req.resolver.public_key,
            "distributions": [{"address": a, "amount": cents_to_json_number(c)} for a, c in paid.items()],
        }
        path = self._per_type(
            req, body, "/escrow/single-release/resolve-dispute", "/escrow/multi-release/resolve-milestone-dispute"
        )
        payouts = [
            EscrowPayout(address=a, gross_stroops=cents_to_stroops(c), net_stroops=cents_to_stroops(c))
            for a, c in paid.items()
        ]
        return await self._on_contract(req, "ESCROW_RESOLVE", req.resolver, path, body, payouts)

    async def read(self, contract_id: str, escrow_type: EscrowType, signer: str) -> EscrowSnapshot:
        raw = await self.client.get_escrow(escrow_type, contract_id, signer)
        return snapshot_of(raw, escrow_type)


def _stroops(value: Any) -> int:
    scaled = Decimal(str(value)) * 10_000_000
    if scaled != scaled.to_integral_value():
        raise UnexpectedProviderData(
            f"amount {value} has more than 7 decimals", provider="trustless_work", operation="read"
        )
    return int(scaled)


def snapshot_of(raw: dict[str, Any], escrow_type: EscrowType) -> EscrowSnapshot:
    """Derived status (providers.md §3.7): settled, disputed, funded, funding or created."""
    milestones = list(raw.get("milestones", []))
    flags = {k: bool(v) for k, v in dict(raw.get("flags") or {}).items()}
    balance = _stroops(raw.get("balance", 0))
    if escrow_type == "single-release":
        total = _stroops(raw.get("amount", 0))
        settled = flags.get("released") or flags.get("resolved")
        disputed = flags.get("disputed", False)
    else:
        total = sum(_stroops(m.get("amount", 0)) for m in milestones)
        m_flags = [dict(m.get("flags") or {}) for m in milestones]
        settled = bool(m_flags) and all(f.get("released") or f.get("resolved") for f in m_flags)
        disputed = any(f.get("disputed") for f in m_flags)
    # the read-back does not say who received a resolution, so a settled escrow reads RELEASED;
    # the workflow that settled it knows whether it was a refund
    if settled:
        status = "RELEASED"
    elif disputed:
        status = "DISPUTED"
    elif total and balance >= total:
        status = "FUNDED"
    elif balance > 0:
        status = "FUNDING"
    else:
        status = "CREATED"
    return EscrowSnapshot(
        contract_id=str(raw.get("contractId")),
        engagement_id=str(raw.get("engagementId", "")),
        escrow_type=escrow_type,
        balance_stroops=balance,
        total_stroops=total,
        status=status,
        flags=flags,
        milestones=milestones,
    )
