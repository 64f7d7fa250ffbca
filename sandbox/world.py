"""The sandbox's whole state: a Stellar-like ledger, escrow contracts, Airtm resources,
the webhook outbox, logs and settings.

Everything lives in one `World` object, mutated only under `World.lock`; a request's
effect commits as a whole (a failed transaction's operations are applied to an overlay
that is then discarded). With `SANDBOX_DB` set, each commit is also written to SQLite as
a snapshot, so a restarted sandbox resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import pickle
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stellar_sdk import Keypair, StrKey

BASE_RESERVE = 5_000_000  # 0.5 XLM in stroops
BASE_FEE = 100
STROOPS = 10_000_000
XLM_SUPPLY = 100_000_000_000 * STROOPS
MAX_LIMIT = 9_223_372_036_854_775_807
GENESIS_NAMES = ("root", "usdc-issuer", "faucet", "tw-fee")
FAUCET_USDC = 1_000_000_000 * STROOPS


def derived_keypair(seed: str, name: str) -> Keypair:
    return Keypair.from_raw_ed25519_seed(hashlib.sha256(f"{seed}/{name}".encode()).digest())


def factory_contract_id(seed: str) -> str:
    return StrKey.encode_contract(hashlib.sha256(f"{seed}/tw-factory".encode()).digest())


@dataclass
class Account:
    id: str
    sequence: int
    native: int  # stroops
    subentries: int = 0
    last_modified_ledger: int = 1

    def minimum_balance(self) -> int:
        return (2 + self.subentries) * BASE_RESERVE


@dataclass
class Trustline:
    account: str
    code: str
    issuer: str
    balance: int = 0
    limit: int = MAX_LIMIT
    authorized: bool = True


@dataclass
class TxRecord:
    hash: str
    ledger: int
    created_at: str
    source: str
    source_sequence: int
    successful: bool
    fee_charged: int
    max_fee: int
    operation_count: int
    envelope_xdr: str
    result_xdr: str
    memo_type: str
    memo: str | None
    response_status: int
    response_body: dict[str, Any]
    via: str  # horizon | tw


@dataclass
class PaymentRecord:
    """One operation as Horizon's /payments shows it; `participants` are the G… accounts it lists under."""

    id: str
    ledger: int
    tx_hash: str
    created_at: str
    successful: bool
    source_account: str
    type: str
    type_i: int
    fields: dict[str, Any]
    participants: list[str]


@dataclass
class Contract:
    id: str
    type: str  # single-release | multi-release
    engagement_id: str
    title: str
    description: str
    roles: dict[str, str]
    amount: int | None  # stroops, single-release only
    platform_fee: str
    milestones: list[dict[str, Any]]
    trustline: dict[str, str]
    signer: str
    balance: int = 0
    funded_total: int = 0
    paid_total: int = 0
    flags: dict[str, bool] = field(default_factory=lambda: {"disputed": False, "released": False, "resolved": False})
    created_at: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    resolved_to_buyer_only: bool = False

    def total(self) -> int:
        if self.type == "single-release":
            return self.amount or 0
        return sum(int(m["amount"]) for m in self.milestones)


@dataclass
class PreparedCall:
    ref: str
    endpoint: str
    body: dict[str, Any]
    source: str
    sequence: int
    contract_id: str
    function: str
    max_time: int
    used: bool = False


@dataclass
class Chain:
    accounts: dict[str, Account] = field(default_factory=dict)
    trustlines: dict[tuple[str, str, str], Trustline] = field(default_factory=dict)
    contracts: dict[str, Contract] = field(default_factory=dict)
    transactions: dict[str, TxRecord] = field(default_factory=dict)
    payments: list[PaymentRecord] = field(default_factory=list)
    prepared: dict[str, PreparedCall] = field(default_factory=dict)
    ledger: int = 1
    closed_at: str = ""
    minted: dict[tuple[str, str], int] = field(default_factory=dict)
    burned: dict[tuple[str, str], int] = field(default_factory=dict)
    fees_collected: int = 0


@dataclass
class Webhook:
    id: str
    provider: str  # tw | airtm
    event_id: str
    event_type: str
    resource_id: str | None
    body: dict[str, Any]
    status: str = "PENDING"  # PENDING | DELIVERED | FAILED
    attempts: list[dict[str, Any]] = field(default_factory=list)
    next_attempt_at: float = 0.0
    enqueued_at: float = 0.0


@dataclass
class Settings:
    tw: dict[str, Any] = field(
        default_factory=lambda: {
            "protocol_fee_bps": 0,
            "resource_fee_stroops": 100_000,
            "tx_timeout_seconds": 300,
            "webhooks_enabled": True,
        }
    )
    airtm: dict[str, Any] = field(
        default_factory=lambda: {
            "payout_completion": "auto",
            "auto_complete_delay_ms": 300,
            "payin_fee_bps": 0,
            "payout_fee_bps": 0,
            "enterprise_balance": "100000.00",
        }
    )
    webhooks: dict[str, Any] = field(default_factory=dict)


@dataclass
class Airtm:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    payins: dict[str, dict[str, Any]] = field(default_factory=dict)
    payouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    available: int = 10_000_000  # enterprise cents
    pending: int = 0
    initial: int = 10_000_000
    confirmed_in: int = 0
    completed_out: int = 0
    fees: int = 0
    seeded: int = 0  # user balances set through the control API


@dataclass
class State:
    seed: str
    passphrase: str
    chain: Chain = field(default_factory=Chain)
    airtm: Airtm = field(default_factory=Airtm)
    webhooks: list[Webhook] = field(default_factory=list)
    settings: Settings = field(default_factory=Settings)
    clock_offset: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)


class World:
    """The sandbox state, its lock, its clock and its persistence."""

    def __init__(self, *, seed: str, passphrase: str, db_path: str | None, webhook_settings: dict[str, Any]) -> None:
        self.lock = asyncio.Lock()
        self.db_path = db_path
        self.snapshots: dict[str, bytes] = {}
        loaded = self._load()
        if loaded is not None:
            self.state = loaded
            # where the orchestrator listens is the environment's to say, not the snapshot's
            self.state.settings.webhooks.update(webhook_settings)
            if loaded.seed != seed:
                # the chain is kept (it holds balances); its issuer is the stored seed's, which
                # the orchestrator's health check reports if STELLAR_USDC_ISSUER disagrees
                print(
                    f"sandbox: {db_path} holds a chain made from SANDBOX_SEED={loaded.seed!r}, not {seed!r}; "
                    "resuming it (delete the file to start from the new seed)",
                    file=sys.stderr,
                    flush=True,
                )
        else:
            self.state = State(seed=seed, passphrase=passphrase)
            self.state.settings.webhooks = dict(webhook_settings)
            genesis(self.state)
            self.commit()

    # clock ---------------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.state.clock_offset

    def now_iso(self) -> str:
        moment = datetime.fromtimestamp(self.now(), UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    # deterministic identifiers -----------------------------------------------------------

    def next_bytes(self, stream: str, size: int = 32) -> bytes:
        """Seeded, reproducible randomness: the same request order yields the same IDs."""
        counter = self.state.counters.get(stream, 0) + 1
        self.state.counters[stream] = counter
        out = b""
        block = 0
        while len(out) < size:
            out += hashlib.sha256(f"{self.state.seed}/{stream}/{counter}/{block}".encode()).digest()
            block += 1
        return out[:size]

    def next_uuid(self, stream: str) -> str:
        raw = self.next_bytes(stream, 16).hex()
        return f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-a{raw[17:20]}-{raw[20:32]}"

    # persistence -------------------------------------------------------------------------

    def _load(self) -> State | None:
        if not self.db_path:
            return None
        path = Path(self.db_path)
        if not path.exists():
            return None
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), state BLOB)")
            row = db.execute("SELECT state FROM snapshot WHERE id = 1").fetchone()
        return pickle.loads(row[0]) if row else None

    def commit(self) -> None:
        if not self.db_path:
            return
        blob = pickle.dumps(self.state)
        with sqlite3.connect(self.db_path) as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), state BLOB)")
            db.execute("INSERT OR REPLACE INTO snapshot (id, state) VALUES (1, ?)", (blob,))

    def reset(self, seed: str | None, keep_settings: bool) -> None:
        settings = self.state.settings if keep_settings else Settings(webhooks=self.state.settings.webhooks)
        self.state = State(seed=seed or self.state.seed, passphrase=self.state.passphrase, settings=settings)
        genesis(self.state)
        self.commit()

    def snapshot(self) -> str:
        snapshot_id = "snap_" + self.next_bytes("snapshot", 8).hex()
        self.snapshots[snapshot_id] = pickle.dumps(self.state)
        return snapshot_id

    def restore(self, snapshot_id: str) -> bool:
        blob = self.snapshots.get(snapshot_id)
        if blob is None:
            return False
        pending = [w for w in self.state.webhooks if w.status == "PENDING"]
        self.state = pickle.loads(blob)
        known = {w.id for w in self.state.webhooks}
        self.state.webhooks.extend(w for w in pending if w.id not in known)
        self.commit()
        return True

    def copy_chain_accounts(self) -> Chain:
        return copy.deepcopy(self.state.chain)


def genesis(state: State) -> None:
    """Ledger 1: root holds the XLM supply; the faucet holds (and the issuer mints) USDC."""
    chain = state.chain
    seed = state.seed
    chain.closed_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    keys = {name: derived_keypair(seed, name).public_key for name in GENESIS_NAMES}
    funded = 10_000 * STROOPS
    chain.accounts[keys["root"]] = Account(keys["root"], 1 << 32, XLM_SUPPLY - 3 * funded)
    for name in ("usdc-issuer", "faucet", "tw-fee"):
        chain.accounts[keys[name]] = Account(keys[name], 1 << 32, funded)
    issuer = keys["usdc-issuer"]
    for name in ("faucet", "tw-fee"):
        chain.trustlines[(keys[name], "USDC", issuer)] = Trustline(keys[name], "USDC", issuer)
        chain.accounts[keys[name]].subentries += 1
    chain.trustlines[(keys["faucet"], "USDC", issuer)].balance = FAUCET_USDC
    chain.minted[("USDC", issuer)] = FAUCET_USDC
    chain.burned[("USDC", issuer)] = 0
    state.airtm.available = state.airtm.initial = 10_000_000
