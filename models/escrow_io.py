"""Inputs and outputs of the escrow provider (providers.md §1.4). Amounts in cents; wallets
by reference (ID + address), never a key."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

EscrowType = Literal["single-release", "multi-release"]


class WalletRef(BaseModel):
    wallet_id: str
    public_key: str


class EscrowParties(BaseModel):
    """Who holds each Trustless Work role (providers.md §3.2) and who signs each step."""

    approver: WalletRef  # buyer side
    service_provider: WalletRef  # seller side
    release_signer: WalletRef  # buyer side
    receiver: WalletRef  # seller side payout
    platform: WalletRef  # platformAddress (treasury)
    resolver: WalletRef  # the only dispute resolver
    deployer: WalletRef  # treasury
    funder: WalletRef  # buyer wallet (crypto) or treasury (airtm)
    buyer_payout: WalletRef  # where refunds go


class MilestoneSpec(BaseModel):
    title: str
    amount_cents: int = Field(gt=0)


class EscrowDeploy(BaseModel):
    operation_key: str
    order_id: str
    title: str
    description: str
    escrow_type: EscrowType
    amount_cents: int = Field(gt=0)
    milestones: list[MilestoneSpec] = Field(default_factory=list)
    parties: EscrowParties


class EscrowCall(BaseModel):
    operation_key: str
    earlier_keys: list[str] = Field(default_factory=list)  # earlier rounds (models/operation_keys.py)
    contract_id: str
    escrow_type: EscrowType
    milestone_index: int | None = None


class EscrowFund(EscrowCall):
    amount_cents: int = Field(gt=0)
    funder: WalletRef


class MilestoneMark(EscrowCall):
    evidence: str = ""
    service_provider: WalletRef


class MilestoneApprove(EscrowCall):
    approver: WalletRef


class EscrowRelease(EscrowCall):
    release_signer: WalletRef


class EscrowDispute(EscrowCall):
    disputer: WalletRef


class Distribution(BaseModel):
    address: str
    amount_cents: int = Field(gt=0)


class EscrowResolve(EscrowCall):
    resolver: WalletRef
    distributions: list[Distribution]


class EscrowPayout(BaseModel):
    address: str
    gross_stroops: int
    platform_fee_stroops: int = 0
    protocol_fee_stroops: int = 0
    net_stroops: int


class EscrowStep(BaseModel):
    operation_key: str
    contract_id: str
    tx_hash: str
    ledger: int | None
    payouts: list[EscrowPayout] = Field(default_factory=list)


class EscrowSnapshot(BaseModel):
    """The normalised read-back of providers.md §3.7 (balances in stroops)."""

    contract_id: str
    engagement_id: str
    escrow_type: EscrowType
    balance_stroops: int
    total_stroops: int
    status: Literal["CREATED", "FUNDING", "FUNDED", "RELEASED", "REFUNDED", "DISPUTED"]
    flags: dict[str, bool]
    milestones: list[dict[str, object]]
