"""Inputs and outputs of workflows and activities (pydantic, amounts as integer cents)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ProbeResult(BaseModel):
    """What the probe workflow saw: the worker can run workflows, activities and reach PostgreSQL."""

    database_ok: bool
    worker_identity: str


class WalletSetupInput(BaseModel):
    wallet_id: str


class WalletSetupResult(BaseModel):
    wallet_id: str
    status: str
    public_key: str
    submitted: bool  # False when the account and trustline were already on chain


class DepositScan(BaseModel):
    """Scan these wallets (None: every READY user wallet that is due); `force` ignores the cadence."""

    wallet_ids: list[str] | None = None
    force: bool = False
    max_pages: int = 10


class DepositPage(BaseModel):
    topup_ids: list[str] = Field(default_factory=list)  # crypto top-ups created and not yet credited
    deposits_found: int = 0  # new deposits recorded by this scan
    wallets_scanned: int = 0
    more: bool = False


class ScanWallet(BaseModel):
    wallet_id: str


class ScanResult(BaseModel):
    deposits_found: int
    topup_ids: list[str]


class DepositMonitorState(BaseModel):
    poll_interval_seconds: float = 5.0
    iterations: int = 0
    deposits_seen: int = 0


class TopUpInput(BaseModel):
    topup_id: str
    provider: str  # crypto | airtm


class TopUpResult(BaseModel):
    topup_id: str
    status: str
    credited: bool
