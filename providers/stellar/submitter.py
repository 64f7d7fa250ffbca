"""ChainSubmitter: every Stellar transaction the orchestrator causes, exactly once
(providers.md §1.7.1).

One row per attempt in `chain_transactions` (through a `ChainStore`). The signed envelope
and its hash are persisted *before* submission; a retry first resolves the live attempt
on Horizon (account sequence and ledger close time read first, then the hash), and only a
provably dead attempt is rebuilt. A resubmission is always the same signed envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from stellar_sdk import TransactionEnvelope

from providers.errors import ChainTxFailed, ProviderOutcomeUnknown, ProviderUnavailable, UnexpectedProviderData
from providers.stellar.envelope_check import ExpectedCall, check_envelope, decode_envelope
from providers.stellar.horizon import HorizonClient, Submission
from providers.stellar.keyvault import KeyVault, SealedWallet
from providers.trustless_work.client import SendResult, TrustlessWorkClient

log = logging.getLogger("offerhub.chain")

DEAD_CODES = frozenset({"tx_bad_seq", "tx_too_late", "tx_too_early", "tx_insufficient_fee", "tx_insufficient_balance"})
MAX_TW_REBUILDS = 3
MAX_ROUNDS = 8


@dataclass
class ChainRecord:
    operation_key: str
    attempt: int
    purpose: str
    resource_type: str
    resource_id: str
    via: str
    source_account: str
    sequence: int
    signer: str
    tx_hash: str
    envelope_xdr: str
    max_time: datetime | None
    status: str = "SIGNED"
    result_codes: dict[str, Any] | None = None
    ledger: int | None = None
    contract_id: str | None = None
    response: dict[str, Any] | None = None
    cosigners: list[str] = field(default_factory=list)  # other wallets whose keys signed (audit only)


class ChainStore(Protocol):
    async def latest(self, operation_key: str) -> ChainRecord | None: ...
    async def dead_attempts(self, operation_key: str) -> int: ...
    async def insert(self, record: ChainRecord) -> None: ...
    async def update(self, record: ChainRecord) -> None: ...
    def account_lock(self, accounts: list[str]) -> AbstractAsyncContextManager[None]: ...


@dataclass(frozen=True)
class ChainResult:
    operation_key: str
    tx_hash: str
    ledger: int | None
    contract_id: str | None
    response: dict[str, Any]


@dataclass
class ChainStep:
    """One signed chain step. `build(fee_multiplier)` returns an unsigned envelope (base64 XDR):
    built locally from Horizon's sequence, or requested from Trustless Work."""

    operation_key: str
    purpose: str
    resource_type: str
    resource_id: str
    via: Literal["horizon", "trustless_work"]
    source: SealedWallet
    build: Callable[[int], Awaitable[str]]
    cosigners: list[SealedWallet] = field(default_factory=list)
    # keys of the earlier rounds of this step (a retry after a failure for good runs under a
    # new key): one that was confirmed is the step's answer, so nothing is paid twice
    earlier_keys: list[str] = field(default_factory=list)
    # a Trustless Work step: the one call its envelope may hold (never signed without it)
    expected: ExpectedCall | None = None
    # a deploy: whether a contract is one the product already knows as an escrow
    known_escrow: Callable[[str], Awaitable[bool]] | None = None


class ChainSubmitter:
    def __init__(
        self,
        *,
        horizon: HorizonClient,
        trustless: TrustlessWorkClient | None,
        vault: KeyVault,
        store: ChainStore,
        passphrase: str,
        max_fee_stroops: int,
        fee_float: Callable[[SealedWallet], Awaitable[None]] | None = None,
    ) -> None:
        self.horizon = horizon
        self.trustless = trustless
        self.vault = vault
        self.store = store
        self.passphrase = passphrase
        self.max_fee = max_fee_stroops
        self.fee_float = fee_float  # step 3: keeps user and agent wallets able to pay their fees

    async def run(self, step: ChainStep) -> ChainResult:
        for key in step.earlier_keys:
            earlier = await self.store.latest(key)
            if earlier is not None and earlier.status == "CONFIRMED":
                return _result(earlier)
            if earlier is not None and earlier.status in ("SIGNED", "SUBMITTED"):
                # never expected (a round ends only when its attempt failed or died), but a
                # new attempt is never built while an earlier one might still land
                resolved = await self._resolve(step, earlier)
                if resolved is not None:
                    return resolved
        fee_multiplier = 1
        for _ in range(MAX_ROUNDS):
            latest = await self.store.latest(step.operation_key)
            if latest is not None and latest.status == "CONFIRMED":
                return _result(latest)
            if latest is not None and latest.status == "FAILED":
                raise _failed(latest)  # applied and failed: only a new round (a new key) tries again
            if latest is not None and latest.status in ("SIGNED", "SUBMITTED"):
                resolved = await self._resolve(step, latest)
                if resolved is not None:
                    return resolved
                continue  # the attempt is dead: build the next one
            if (
                latest is not None
                and latest.status == "DEAD"
                and (latest.result_codes or {}).get("transaction") == "tx_insufficient_fee"
            ):
                fee_multiplier = min(fee_multiplier * 2, 1 << 10)
            if (
                step.via == "trustless_work"
                and latest is not None  # a first attempt has nothing dead behind it: spare the query
                and await self.store.dead_attempts(step.operation_key) > MAX_TW_REBUILDS
            ):
                raise ChainTxFailed(
                    f"{step.operation_key}: rebuilt {MAX_TW_REBUILDS} times without landing",
                    provider="trustless_work",
                    operation=step.purpose,
                )
            attempt = 1 if latest is None else latest.attempt + 1
            result = await self._attempt(step, attempt, fee_multiplier)
            if result is not None:
                return result
        raise ProviderUnavailable(
            f"{step.operation_key}: no outcome after {MAX_ROUNDS} rounds", provider="stellar", operation=step.purpose
        )

    async def _attempt(self, step: ChainStep, attempt: int, fee_multiplier: int) -> ChainResult | None:
        accounts = sorted({step.source.public_key, *(w.public_key for w in step.cosigners)})
        if self.fee_float is not None:
            await self.fee_float(step.source)
        async with self.store.account_lock(accounts):
            unsigned = await step.build(fee_multiplier)
            envelope = await self._checked(step, unsigned)
            for wallet in [step.source, *step.cosigners]:
                self.vault.sign(envelope, wallet)
            bounds = envelope.transaction.preconditions.time_bounds if envelope.transaction.preconditions else None
            record = ChainRecord(
                operation_key=step.operation_key,
                attempt=attempt,
                purpose=step.purpose,
                resource_type=step.resource_type,
                resource_id=step.resource_id,
                via=step.via,
                source_account=step.source.public_key,
                sequence=envelope.transaction.sequence,
                signer=step.source.wallet_id,
                tx_hash=envelope.hash_hex(),
                envelope_xdr=envelope.to_xdr(),
                max_time=datetime.fromtimestamp(bounds.max_time, UTC) if bounds and bounds.max_time else None,
                cosigners=[wallet.wallet_id for wallet in step.cosigners],
            )
            await self.store.insert(record)  # committed before anything leaves this process
            return await self._send(step, record)

    async def _checked(self, step: ChainStep, unsigned: str) -> TransactionEnvelope:
        """Pre-sign checks (providers.md §1.7.1 step 4): never sign what we did not ask for."""
        if step.via == "trustless_work":
            return await self._checked_call(step, unsigned)
        try:
            envelope = TransactionEnvelope.from_xdr(unsigned, self.passphrase)
        except Exception:
            raise UnexpectedProviderData(
                f"{step.operation_key}: envelope does not decode", provider=step.via, operation=step.purpose
            ) from None
        tx = envelope.transaction
        if tx.source.account_id != step.source.public_key:
            raise UnexpectedProviderData(
                f"{step.operation_key}: envelope source is not the signing wallet",
                provider=step.via,
                operation=step.purpose,
            )
        if tx.fee > self.max_fee:
            raise UnexpectedProviderData(
                f"{step.operation_key}: fee {tx.fee} above STELLAR_MAX_FEE_STROOPS",
                provider=step.via,
                operation=step.purpose,
            )
        return envelope

    async def _checked_call(self, step: ChainStep, unsigned: str) -> TransactionEnvelope:
        """A Trustless Work envelope holds exactly the escrow call the step expects; anything
        else means the provider asked a wallet to sign something else: refused for good."""
        try:
            if step.expected is None or step.expected.signer != step.source.public_key:
                raise UnexpectedProviderData(
                    "envelope refused before signing: the step names no expected call for its signer",
                    provider=step.via,
                    operation=step.purpose,
                )
            envelope = decode_envelope(unsigned, self.passphrase, operation=step.purpose)
            contract = check_envelope(envelope, step.expected, max_fee_stroops=self.max_fee, operation=step.purpose)
            if step.expected.is_deploy and step.known_escrow is not None and await step.known_escrow(contract):
                raise UnexpectedProviderData(
                    "envelope refused before signing: the deploy invokes a contract known as another escrow",
                    provider=step.via,
                    operation=step.purpose,
                )
        except UnexpectedProviderData as exc:
            log.error(
                "trustless work envelope refused: nothing signed",
                extra={"operation_key": step.operation_key, "purpose": step.purpose, "reason": str(exc)},
            )
            raise UnexpectedProviderData(
                f"{step.operation_key}: {exc}", provider=step.via, operation=step.purpose
            ) from None
        return envelope

    async def _send(self, step: ChainStep, record: ChainRecord) -> ChainResult | None:
        # The SIGNED row is committed; the outcome write below records the submission too
        # (a row left SIGNED is resolved on Horizon exactly like a SUBMITTED one).
        try:
            if step.via == "trustless_work":
                assert self.trustless is not None
                sent: Submission | SendResult = await self.trustless.send_transaction(record.envelope_xdr)
            else:
                sent = await self.horizon.submit(record.envelope_xdr)
        except ProviderOutcomeUnknown:
            record.status = "SUBMITTED"
            await self.store.update(record)
            raise  # the retry resolves it on Horizon first
        return await self._classify(record, sent)

    async def _classify(self, record: ChainRecord, sent: Submission | SendResult) -> ChainResult | None:
        codes = {"transaction": sent.tx_code, **({"operations": sent.op_codes} if sent.op_codes else {})}
        if sent.successful:
            record.status = "CONFIRMED"
            record.ledger = _int(sent.body.get("ledger"))
            record.contract_id = _contract_id(sent) or record.contract_id
            record.response = _public_response(sent.body)
            await self.store.update(record)
            return _result(record)
        record.result_codes = codes
        if sent.tx_code in DEAD_CODES:
            record.status = "DEAD"
            await self.store.update(record)
            if sent.tx_code == "tx_insufficient_balance":
                forget = getattr(self.fee_float, "forget", None)
                if forget is not None:
                    forget(record.signer)
                raise ProviderUnavailable(
                    f"{record.operation_key}: source cannot pay the fee",
                    provider="stellar",
                    operation=record.purpose,
                    result_codes=codes,
                )
            return None
        record.status = "FAILED"
        await self.store.update(record)
        if sent.tx_code in ("tx_bad_auth", "tx_bad_auth_extra", "tx_no_source_account", "transaction_malformed"):
            log.error(
                "chain step refused: a bug or a wrong signer",
                extra={"operation_key": record.operation_key, "result_codes": codes},
            )
        raise _failed(record)

    async def _resolve(self, step: ChainStep, record: ChainRecord) -> ChainResult | None:
        """Step 6: sequence and close time first, then the hash; dead, landed, or resubmit."""
        account = await self.horizon.account(record.source_account)
        root = await self.horizon.root()
        found = await self.horizon.transaction(record.tx_hash)
        if found is not None:
            if found.get("successful"):
                record.status = "CONFIRMED"
                record.ledger = _int(found.get("ledger"))
                if step.via == "trustless_work" and record.contract_id is None and step.purpose == "ESCROW_DEPLOY":
                    # the deploy answer was lost: the submitter answers a known hash with its original outcome
                    assert self.trustless is not None
                    again = await self.trustless.send_transaction(record.envelope_xdr)
                    record.contract_id = again.contract_id
                    record.response = _public_response(again.body)
                await self.store.update(record)
                return _result(record)
            record.status = "FAILED"
            record.result_codes = {"transaction": "tx_failed"}
            await self.store.update(record)
            raise _failed(record)
        sequence = int(account["sequence"]) if account is not None else 0
        closed_at = _parse_time(root.get("history_latest_ledger_closed_at"))
        expired = record.max_time is not None and closed_at is not None and closed_at > record.max_time
        if sequence >= record.sequence or expired:
            record.status = "DEAD"
            await self.store.update(record)
            return None
        sent: Submission | SendResult
        if step.via == "trustless_work":
            assert self.trustless is not None
            sent = await self.trustless.send_transaction(record.envelope_xdr)
        else:
            sent = await self.horizon.submit(record.envelope_xdr)
        return await self._classify(record, sent)


def _result(record: ChainRecord) -> ChainResult:
    return ChainResult(record.operation_key, record.tx_hash, record.ledger, record.contract_id, record.response or {})


def _failed(record: ChainRecord) -> ChainTxFailed:
    return ChainTxFailed(
        f"{record.operation_key}: transaction failed",
        provider=record.via,
        operation=record.purpose,
        result_codes=record.result_codes,
    )


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _contract_id(sent: Submission | SendResult) -> str | None:
    return sent.contract_id if isinstance(sent, SendResult) else None


def _public_response(body: dict[str, Any]) -> dict[str, Any]:
    """What is kept of an answer: identifiers and outcome, not whole envelopes."""
    keep = ("hash", "ledger", "successful", "status", "message", "contractId")
    return {key: _plain(body[key]) for key in keep if key in body}


def _plain(value: Any) -> Any:
    from decimal import Decimal

    return float(value) if isinstance(value, Decimal) else value


def _parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
