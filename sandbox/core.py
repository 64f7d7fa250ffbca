"""The sandbox assembled: world, transaction engine, escrow runtime, webhook outbox, faults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset, Keypair, TransactionBuilder

from sandbox.contracts import EscrowRuntime
from sandbox.engine import Engine, Outcome, amount_text
from sandbox.faults import Faults
from sandbox.webhooks import Outbox
from sandbox.world import TxRecord, World, derived_keypair, factory_contract_id

VERSION = "sandbox-1"
DEFAULTS = {
    "SANDBOX_SEED": "offerhub-sandbox",
    "SANDBOX_NETWORK_PASSPHRASE": "OfferHub Local Sandbox ; 2026",
    "SANDBOX_TW_API_KEY": "sandbox.twkey",
    "SANDBOX_AIRTM_API_KEY": "sandbox-key",
    "SANDBOX_AIRTM_API_SECRET": "sandbox-secret",
    "SANDBOX_TW_WEBHOOK_URL": "http://127.0.0.1:4000/api/v1/webhooks/trustless-work",
    "SANDBOX_TW_WEBHOOK_SECRET": "tw_whsec_sandbox",
    "SANDBOX_AIRTM_WEBHOOK_URL": "http://127.0.0.1:4000/api/v1/webhooks/airtm",
    "SANDBOX_AIRTM_WEBHOOK_SECRET": "whsec_b2ZmZXJodWItc2FuZGJveC1haXJ0bS13ZWJob29rLWtleQ==",
}


@dataclass(frozen=True)
class SandboxConfig:
    seed: str
    passphrase: str
    tw_api_key: str
    airtm_api_key: str
    airtm_api_secret: str
    db_path: str | None
    control_token: str | None
    faults: str | None
    webhooks: dict[str, Any]
    base_url: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, *, port: int | None = None) -> SandboxConfig:
        source = {**DEFAULTS, **(env if env is not None else os.environ)}
        return cls(
            seed=source["SANDBOX_SEED"],
            passphrase=source["SANDBOX_NETWORK_PASSPHRASE"],
            tw_api_key=source["SANDBOX_TW_API_KEY"],
            airtm_api_key=source["SANDBOX_AIRTM_API_KEY"],
            airtm_api_secret=source["SANDBOX_AIRTM_API_SECRET"],
            db_path=source.get("SANDBOX_DB") or None,
            control_token=source.get("SANDBOX_CONTROL_TOKEN") or None,
            faults=source.get("SANDBOX_FAULTS") or None,
            webhooks={
                "tw_url": source["SANDBOX_TW_WEBHOOK_URL"],
                "tw_secret": source["SANDBOX_TW_WEBHOOK_SECRET"],
                "airtm_url": source["SANDBOX_AIRTM_WEBHOOK_URL"],
                "airtm_secret": source["SANDBOX_AIRTM_WEBHOOK_SECRET"],
            },
            base_url=f"http://127.0.0.1:{port or source.get('SANDBOX_PORT', 8700)}",
        )


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.world = World(
            seed=config.seed, passphrase=config.passphrase, db_path=config.db_path, webhook_settings=config.webhooks
        )
        self.runtime = EscrowRuntime(self.world)
        self.engine = Engine(self.world, self.runtime)
        self.outbox = Outbox(self.world)
        self.faults = Faults(self.world)

    # keys and assets -----------------------------------------------------------------------

    def keypair(self, name: str) -> Keypair:
        return derived_keypair(self.world.state.seed, name)

    @property
    def usdc(self) -> Asset:
        return Asset("USDC", self.keypair("usdc-issuer").public_key)

    def info(self) -> dict[str, Any]:
        state = self.world.state
        base = self.config.base_url
        hooks = {**state.settings.webhooks}
        return {
            "version": VERSION,
            "seed": state.seed,
            "network_passphrase": state.passphrase,
            "base_reserve": "0.5000000",
            "base_fee": 100,
            "urls": {
                "horizon": f"{base}/horizon",
                "friendbot": f"{base}/friendbot",
                "trustless_work": f"{base}/tw",
                "airtm": f"{base}/airtm/v2",
                "airtm_checkout": f"{base}/airtm/checkout",
            },
            "usdc": {"code": "USDC", "issuer": self.usdc.issuer},
            "usdc_asset": {"code": "USDC", "issuer": self.usdc.issuer},
            "accounts": {
                "root": self.keypair("root").public_key,
                "faucet": self.keypair("faucet").public_key,
                "usdc_issuer": self.usdc.issuer,
                "tw_fee": self.keypair("tw-fee").public_key,
            },
            "tw_factory_contract": factory_contract_id(state.seed),
            "credentials": {
                "tw_api_key": self.config.tw_api_key,
                "airtm_api_key": self.config.airtm_api_key,
                "airtm_api_secret": self.config.airtm_api_secret,
            },
            "webhooks": {
                "tw_url": hooks.get("tw_url"),
                "airtm_url": hooks.get("airtm_url"),
                "tw_secret": hooks.get("tw_secret"),
                "airtm_secret": hooks.get("airtm_secret"),
                "enabled": hooks.get("enabled", True),
            },
            "ledger": {"sequence": state.chain.ledger, "closed_at": state.chain.closed_at},
        }

    # submissions -------------------------------------------------------------------------

    def submit(self, envelope_b64: str, *, via: str) -> Outcome:
        """Engine + webhooks of a fresh apply + persistence. Call with the world lock held."""
        outcome = self.engine.submit(envelope_b64, via=via)
        for event_type, data in outcome.webhooks:
            self.emit_tw(event_type, data)
        if outcome.applied:
            self.world.commit()
        return outcome

    def emit_tw(self, event_type: str, data: dict[str, Any]) -> None:
        """Enqueue a Trustless Work webhook (format of providers.md §3.8). Lock held."""
        if not self.world.state.settings.tw.get("webhooks_enabled", True):
            return
        event_id = "twevt_" + self.world.next_bytes("tw-event", 14).hex()[:26]
        body = {"type": event_type, "event_id": event_id, "data": data}
        self.outbox.enqueue("tw", event_type, body, event_id, data.get("contract_id"))

    def sandbox_transaction(self, signer_name: str, build: Any, memo: str | None = None) -> Outcome:
        """A real transaction signed with a sandbox key (friendbot, faucet). Lock held."""
        keypair = self.keypair(signer_name)
        account = self.world.state.chain.accounts[keypair.public_key]
        builder = TransactionBuilder(
            SdkAccount(keypair.public_key, account.sequence), self.world.state.passphrase, base_fee=100
        )
        build(builder)
        if memo:
            builder.add_text_memo(memo)
        builder.set_timeout(300)
        envelope = builder.build()
        envelope.sign(keypair)
        return self.submit(envelope.to_xdr(), via="horizon")

    # Horizon representations ----------------------------------------------------------------

    def account_view(self, account_id: str) -> dict[str, Any] | None:
        chain = self.world.state.chain
        account = chain.accounts.get(account_id)
        if account is None:
            return None
        lines = [line for key, line in sorted(chain.trustlines.items()) if key[0] == account_id]
        balances: list[dict[str, Any]] = [
            {
                "balance": amount_text(line.balance),
                "limit": amount_text(line.limit),
                "buying_liabilities": "0.0000000",
                "selling_liabilities": "0.0000000",
                "last_modified_ledger": account.last_modified_ledger,
                "is_authorized": line.authorized,
                "is_authorized_to_maintain_liabilities": line.authorized,
                "asset_type": "credit_alphanum4" if len(line.code) <= 4 else "credit_alphanum12",
                "asset_code": line.code,
                "asset_issuer": line.issuer,
            }
            for line in lines
        ]
        balances.append(
            {
                "balance": amount_text(account.native),
                "buying_liabilities": "0.0000000",
                "selling_liabilities": "0.0000000",
                "asset_type": "native",
            }
        )
        return {
            "id": account_id,
            "account_id": account_id,
            "sequence": str(account.sequence),
            "subentry_count": account.subentries,
            "last_modified_ledger": account.last_modified_ledger,
            "thresholds": {"low_threshold": 0, "med_threshold": 0, "high_threshold": 0},
            "flags": {
                "auth_required": False,
                "auth_revocable": False,
                "auth_immutable": False,
                "auth_clawback_enabled": False,
            },
            "balances": balances,
            "signers": [{"weight": 1, "key": account_id, "type": "ed25519_public_key"}],
            "num_sponsoring": 0,
            "num_sponsored": 0,
            "paging_token": account_id,
        }

    def transaction_view(self, record: TxRecord) -> dict[str, Any]:
        paging = str(record.ledger << 32)
        return {
            "id": record.hash,
            "hash": record.hash,
            "paging_token": paging,
            "ledger": record.ledger,
            "successful": record.successful,
            "created_at": record.created_at,
            "source_account": record.source,
            "source_account_sequence": str(record.source_sequence),
            "fee_charged": str(record.fee_charged),
            "max_fee": str(record.max_fee),
            "operation_count": record.operation_count,
            "envelope_xdr": record.envelope_xdr,
            "result_xdr": record.result_xdr,
            "memo_type": record.memo_type,
            **({"memo": record.memo} if record.memo is not None else {}),
        }
