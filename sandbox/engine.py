"""The transaction engine (providers.md §5.5): decode, admit, apply, record.

Shared by Horizon's `POST /transactions`, Trustless Work's `/helper/send-transaction`,
friendbot and the faucet. A hash is applied at most once; resubmitting it returns the
original outcome. Admission rejections change nothing and leave no history.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import stellar_sdk as ops
from stellar_sdk import Keypair, TransactionEnvelope, xdr
from stellar_sdk.exceptions import BadSignatureError

from sandbox.faults import FAILING_OPERATION
from sandbox.world import BASE_FEE, STROOPS, Account, Chain, Contract, PaymentRecord, Trustline, TxRecord, World

RecordMaker = Callable[[str, int, dict[str, Any], list[str]], PaymentRecord]


class OpFailed(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Outcome:
    """What a submission produced; routers render it in their provider's format."""

    hash: str
    applied: bool  # recorded in the ledger (successful or failed)
    successful: bool
    tx_code: str
    op_codes: list[str] = field(default_factory=list)
    record: TxRecord | None = None
    envelope_xdr: str = ""
    result_xdr: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    malformed: str | None = None
    webhooks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # fresh applies only


class ContractRuntime(Protocol):
    def apply(
        self, overlay: Overlay, source: str, contract_id: str, function: str, call_ref: bytes
    ) -> list[dict[str, Any]]:
        """Apply a prepared Trustless Work call; return its asset transfers (or raise OpFailed)."""


def stroops(amount: str | Decimal) -> int:
    return int(Decimal(str(amount)) * STROOPS)


def amount_text(value: int) -> str:
    return f"{value // STROOPS}.{value % STROOPS:07d}"


class Overlay:
    """Copy-on-touch view of the chain: effects of one transaction, committed or dropped whole."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.accounts: dict[str, Account] = {}
        self.trustlines: dict[tuple[str, str, str], Trustline | None] = {}
        self.contracts: dict[str, Contract] = {}
        self.minted: dict[tuple[str, str], int] = {}
        self.burned: dict[tuple[str, str], int] = {}
        self.extra: dict[str, Any] = {}
        self.webhooks: list[tuple[str, dict[str, Any]]] = []  # (event type, data) emitted if the tx commits
        self.tx_hash = ""
        self.ledger = 0
        self.created_at = ""

    def account(self, account_id: str) -> Account | None:
        if account_id not in self.accounts:
            base = self.chain.accounts.get(account_id)
            if base is None:
                return None
            self.accounts[account_id] = Account(**base.__dict__)
        return self.accounts[account_id]

    def create_account(self, account: Account) -> None:
        self.accounts[account.id] = account

    def trustline(self, account_id: str, code: str, issuer: str) -> Trustline | None:
        key = (account_id, code, issuer)
        if key not in self.trustlines:
            base = self.chain.trustlines.get(key)
            self.trustlines[key] = Trustline(**base.__dict__) if base else None
        return self.trustlines[key]

    def set_trustline(self, line: Trustline | None, key: tuple[str, str, str]) -> None:
        self.trustlines[key] = line

    def contract(self, contract_id: str) -> Contract | None:
        if contract_id not in self.contracts:
            import copy

            base = self.chain.contracts.get(contract_id)
            if base is None:
                return None
            self.contracts[contract_id] = copy.deepcopy(base)
        return self.contracts[contract_id]

    def add_contract(self, contract: Contract) -> None:
        self.contracts[contract.id] = contract

    def commit(self) -> None:
        chain = self.chain
        chain.accounts.update(self.accounts)
        for key, line in self.trustlines.items():
            if line is None:
                chain.trustlines.pop(key, None)
            else:
                chain.trustlines[key] = line
        chain.contracts.update(self.contracts)
        for asset, value in self.minted.items():
            chain.minted[asset] = chain.minted.get(asset, 0) + value
        for asset, value in self.burned.items():
            chain.burned[asset] = chain.burned.get(asset, 0) + value

    # asset movements shared by payments and contracts ---------------------------------------

    def move_credit(self, source: str, destination: str, code: str, issuer: str, amount: int) -> None:
        """Move a credit asset between holders (issuer mints/burns); raise the Stellar op code."""
        if source != issuer:
            line = self.trustline(source, code, issuer)
            if line is None:
                raise OpFailed("op_src_no_trust")
            if line.balance < amount:
                raise OpFailed("op_underfunded")
        if destination != issuer:
            dest = self.trustline(destination, code, issuer)
            if dest is None or not dest.authorized:
                raise OpFailed("op_no_trust")
            if dest.balance + amount > dest.limit:
                raise OpFailed("op_line_full")
        if source == issuer:
            self.minted[(code, issuer)] = self.minted.get((code, issuer), 0) + amount
        else:
            self.trustline(source, code, issuer).balance -= amount  # type: ignore[union-attr]
        if destination == issuer:
            self.burned[(code, issuer)] = self.burned.get((code, issuer), 0) + amount
        else:
            self.trustline(destination, code, issuer).balance += amount  # type: ignore[union-attr]


def _asset(asset: Any) -> tuple[str, str] | None:
    """(code, issuer) of a credit asset, None for native."""
    if asset.is_native():
        return None
    return asset.code, asset.issuer


def _result_xdr(fee: int, code: str) -> str:
    """A valid TransactionResult XDR for the outcome (operation results are not modelled)."""
    name = {"tx_no_source_account": "txNO_ACCOUNT"}.get(code, "tx" + code.removeprefix("tx_").upper())
    result_code = getattr(xdr.TransactionResultCode, name)
    has_results = code in ("tx_success", "tx_failed")
    body = xdr.TransactionResultResult(code=result_code, results=[] if has_results else None)
    return xdr.TransactionResult(xdr.Int64(fee), body, xdr.TransactionResultExt(0)).to_xdr()


class Engine:
    def __init__(self, world: World, contracts: ContractRuntime) -> None:
        self.world = world
        self.contracts = contracts

    @property
    def chain(self) -> Chain:
        return self.world.state.chain

    def submit(self, envelope_b64: str, *, via: str) -> Outcome:
        """Run a signed envelope through the engine. Call with the world lock held."""
        passphrase = self.world.state.passphrase
        try:
            envelope = TransactionEnvelope.from_xdr(envelope_b64, passphrase)
            tx = envelope.transaction
        except Exception:
            return Outcome("", False, False, "", malformed="the envelope does not decode as a transaction")
        if tx.source.account_muxed_id is not None or any(
            op.source is not None and op.source.account_muxed_id is not None for op in tx.operations
        ):
            return Outcome("", False, False, "", malformed="muxed accounts are not supported")
        tx_hash = envelope.hash_hex()
        known = self.chain.transactions.get(tx_hash)
        if known is not None:
            return self._outcome_of(known)
        rejection = self._admission(envelope)
        if rejection is not None:
            return Outcome(
                tx_hash, False, False, rejection, envelope_xdr=envelope_b64, result_xdr=_result_xdr(0, rejection)
            )
        return self._apply(envelope, envelope_b64, tx_hash, via)

    def _outcome_of(self, record: TxRecord) -> Outcome:
        body = record.response_body
        return Outcome(
            record.hash,
            True,
            record.successful,
            body.get("tx_code", "tx_success"),
            list(body.get("op_codes", [])),
            record,
            record.envelope_xdr,
            record.result_xdr,
            dict(body.get("extra", {})),
        )

    def _required_signers(self, envelope: TransactionEnvelope) -> list[str]:
        tx = envelope.transaction
        signers = [tx.source.account_id]
        for op in tx.operations:
            if op.source is not None and op.source.account_id not in signers:
                signers.append(op.source.account_id)
        return signers

    def _admission(self, envelope: TransactionEnvelope) -> str | None:
        tx = envelope.transaction
        source = self.chain.accounts.get(tx.source.account_id)
        if source is None:
            return "tx_no_source_account"
        bounds = tx.preconditions.time_bounds if tx.preconditions is not None else None
        now = int(self.world.now())
        if bounds is not None:
            if bounds.min_time and now < bounds.min_time:
                return "tx_too_early"
            if bounds.max_time and now > bounds.max_time:
                return "tx_too_late"
        if tx.sequence != source.sequence + 1:
            return "tx_bad_seq"
        if tx.fee < BASE_FEE * len(tx.operations):
            return "tx_insufficient_fee"
        signed_by: set[str] = set()
        unmatched = 0
        tx_hash = envelope.hash()
        required = self._required_signers(envelope)
        for signature in envelope.signatures:
            signer = _signer_of(signature, required, tx_hash)
            if signer is None:
                unmatched += 1
            else:
                signed_by.add(signer)
        if set(required) - signed_by:
            return "tx_bad_auth"
        if unmatched:
            return "tx_bad_auth_extra"
        if source.native - self._fee(envelope) < source.minimum_balance():
            return "tx_insufficient_balance"
        return None

    def _fee(self, envelope: TransactionEnvelope) -> int:
        tx = envelope.transaction
        if any(isinstance(op, ops.InvokeHostFunction) for op in tx.operations):
            return int(tx.fee)
        return BASE_FEE * len(tx.operations)

    def _apply(self, envelope: TransactionEnvelope, envelope_b64: str, tx_hash: str, via: str) -> Outcome:
        chain = self.chain
        tx = envelope.transaction
        ledger = chain.ledger + 1
        created_at = self.world.now_iso()
        fee = self._fee(envelope)
        source = chain.accounts[tx.source.account_id]
        source.sequence = tx.sequence
        source.native -= fee
        source.last_modified_ledger = ledger
        chain.fees_collected += fee
        chain.ledger, chain.closed_at = ledger, created_at

        overlay = Overlay(chain)
        overlay.tx_hash, overlay.ledger, overlay.created_at = tx_hash, ledger, created_at
        records: list[PaymentRecord] = []
        op_codes: list[str] = []
        failed = False
        forced = FAILING_OPERATION.get()
        for index, op in enumerate(tx.operations, start=1):
            op_source = op.source.account_id if op.source is not None else tx.source.account_id
            if forced is not None:  # a fail_transaction fault: the operation traps
                op_codes.append(forced)
                failed = True
                continue
            try:
                record = self._operation(overlay, op, op_source, ledger, index, tx_hash, created_at)
            except OpFailed as exc:
                op_codes.append(exc.code)
                failed = True
                continue
            op_codes.append("op_success")
            if record is not None:
                records.append(record)
        if failed:
            tx_code = "tx_failed"
        else:
            overlay.commit()
            chain.payments.extend(records)
            tx_code = "tx_success"
        memo_type, memo = _memo(tx.memo)
        result = _result_xdr(fee, tx_code)
        outcome_body: dict[str, Any] = {
            "tx_code": tx_code,
            "op_codes": op_codes if failed else [],
            "extra": overlay.extra if not failed else {},
        }
        record_tx = TxRecord(
            hash=tx_hash,
            ledger=ledger,
            created_at=created_at,
            source=tx.source.account_id,
            source_sequence=tx.sequence,
            successful=not failed,
            fee_charged=fee,
            max_fee=int(tx.fee),
            operation_count=len(tx.operations),
            envelope_xdr=envelope_b64,
            result_xdr=result,
            memo_type=memo_type,
            memo=memo,
            response_status=200 if not failed else 400,
            response_body=outcome_body,
            via=via,
        )
        chain.transactions[tx_hash] = record_tx
        outcome = self._outcome_of(record_tx)
        if not failed:
            outcome.webhooks = overlay.webhooks
        return outcome

    def _operation(
        self, overlay: Overlay, op: Any, source_id: str, ledger: int, index: int, tx_hash: str, created_at: str
    ) -> PaymentRecord | None:
        source = overlay.account(source_id)
        if source is None:
            raise OpFailed("op_no_account")
        paging = str((ledger << 32) | (1 << 12) | index)

        def record(kind: str, type_i: int, fields: dict[str, Any], participants: list[str]) -> PaymentRecord:
            return PaymentRecord(
                paging, ledger, tx_hash, created_at, True, source_id, kind, type_i, fields, sorted(set(participants))
            )

        if isinstance(op, ops.CreateAccount):
            amount = stroops(op.starting_balance)
            if amount <= 0:
                raise OpFailed("op_malformed")
            if amount < STROOPS:
                raise OpFailed("op_low_reserve")
            if overlay.account(op.destination) is not None:
                raise OpFailed("op_already_exists")
            if source.native - amount < source.minimum_balance():
                raise OpFailed("op_underfunded")
            source.native -= amount
            overlay.create_account(Account(op.destination, ledger << 32, amount, 0, ledger))
            return record(
                "create_account",
                0,
                {"funder": source_id, "account": op.destination, "starting_balance": amount_text(amount)},
                [source_id, op.destination],
            )
        if isinstance(op, ops.ChangeTrust):
            self._change_trust(overlay, source, op)
            return None
        if isinstance(op, ops.Payment):
            return self._payment(
                overlay, source, op.destination.account_id, op.asset, stroops(op.amount), record, "payment", 1, {}
            )
        if isinstance(op, ops.PathPaymentStrictSend | ops.PathPaymentStrictReceive):
            if op.path or op.send_asset != op.dest_asset:
                raise OpFailed("op_not_supported")  # the sandbox has no order book
            if isinstance(op, ops.PathPaymentStrictSend):
                amount, kind, type_i = stroops(op.send_amount), "path_payment_strict_send", 13
                if amount < stroops(op.dest_min):
                    raise OpFailed("op_under_destmin")
            else:
                amount, kind, type_i = stroops(op.dest_amount), "path_payment_strict_receive", 2
                if amount > stroops(op.send_max):
                    raise OpFailed("op_over_source_max")
            asset = _asset(op.send_asset)
            extra = {"source_amount": amount_text(amount), "path": []}
            if asset is None:
                extra["source_asset_type"] = "native"
            else:
                extra.update(
                    source_asset_type=_asset_type(asset[0]), source_asset_code=asset[0], source_asset_issuer=asset[1]
                )
            return self._payment(
                overlay, source, op.destination.account_id, op.dest_asset, amount, record, kind, type_i, extra
            )
        if isinstance(op, ops.InvokeHostFunction):
            return self._invoke(overlay, source_id, op, record)
        raise OpFailed("op_not_supported")

    def _change_trust(self, overlay: Overlay, source: Account, op: Any) -> None:
        asset = op.asset
        if getattr(asset, "is_native", lambda: False)() or not hasattr(asset, "issuer"):
            raise OpFailed("op_malformed")
        if overlay.account(asset.issuer) is None:
            raise OpFailed("op_no_issuer")
        limit = stroops(op.limit)
        key = (source.id, asset.code, asset.issuer)
        line = overlay.trustline(*key)
        if limit == 0:
            if line is None:
                return
            if line.balance != 0:
                raise OpFailed("op_invalid_limit")
            overlay.set_trustline(None, key)
            source.subentries -= 1
            return
        if line is not None:
            if limit < line.balance:
                raise OpFailed("op_invalid_limit")
            line.limit = limit
            return
        if source.native < (2 + source.subentries + 1) * 5_000_000:
            raise OpFailed("op_low_reserve")
        overlay.set_trustline(Trustline(source.id, asset.code, asset.issuer, 0, limit), key)
        source.subentries += 1

    def _payment(
        self,
        overlay: Overlay,
        source: Account,
        destination: str,
        asset_obj: Any,
        amount: int,
        record: RecordMaker,
        kind: str,
        type_i: int,
        extra: dict[str, Any],
    ) -> PaymentRecord:
        if amount <= 0:
            raise OpFailed("op_malformed")
        target = overlay.account(destination)
        if target is None:
            raise OpFailed("op_no_destination")
        asset = _asset(asset_obj)
        if asset is None:
            if source.native - amount < source.minimum_balance():
                raise OpFailed("op_underfunded")
            source.native -= amount
            target.native += amount
            fields: dict[str, Any] = {"asset_type": "native"}
        else:
            overlay.move_credit(source.id, destination, asset[0], asset[1], amount)
            fields = {"asset_type": _asset_type(asset[0]), "asset_code": asset[0], "asset_issuer": asset[1]}
        fields.update({"from": source.id, "to": destination, "amount": amount_text(amount), **extra})
        return record(kind, type_i, fields, [source.id, destination])

    def _invoke(self, overlay: Overlay, source_id: str, op: Any, record: RecordMaker) -> PaymentRecord | None:
        from stellar_sdk import Address, scval

        function = op.host_function
        if function.invoke_contract is None:
            raise OpFailed("op_not_supported")
        call = function.invoke_contract
        contract_id = Address.from_xdr_sc_address(call.contract_address).address
        name = call.function_name.sc_symbol.decode()
        if len(call.args) != 1:
            raise OpFailed("op_not_supported")
        try:
            call_ref = scval.from_bytes(call.args[0])
        except Exception:
            raise OpFailed("op_not_supported") from None
        transfers = self.contracts.apply(overlay, source_id, contract_id, name, call_ref)
        participants = [t[side] for t in transfers for side in ("from", "to") if t[side].startswith("G")]
        if not transfers:
            return None
        changes = [
            {
                "asset_type": _asset_type(t["code"]),
                "asset_code": t["code"],
                "asset_issuer": t["issuer"],
                "type": "transfer",
                "from": t["from"],
                "to": t["to"],
                "amount": amount_text(t["amount"]),
            }
            for t in transfers
        ]
        return record(
            "invoke_host_function",
            24,
            {"function": "HostFunctionTypeHostFunctionTypeInvokeContract", "asset_balance_changes": changes},
            participants,
        )


def _signer_of(signature: Any, candidates: list[str], tx_hash: bytes) -> str | None:
    """The required signer whose key produced this decorated signature, if any."""
    for signer in candidates:
        keypair = Keypair.from_public_key(signer)
        if bytes(signature.signature_hint) != keypair.signature_hint():
            continue
        try:
            keypair.verify(tx_hash, bytes(signature.signature))
        except BadSignatureError:
            continue
        return signer
    return None


def _asset_type(code: str) -> str:
    return "credit_alphanum4" if len(code) <= 4 else "credit_alphanum12"


def _memo(memo: Any) -> tuple[str, str | None]:
    from stellar_sdk import HashMemo, IdMemo, NoneMemo, ReturnHashMemo, TextMemo

    if memo is None or isinstance(memo, NoneMemo):
        return "none", None
    if isinstance(memo, TextMemo):
        return "text", memo.memo_text.decode("utf-8", errors="replace")
    if isinstance(memo, IdMemo):
        return "id", str(memo.memo_id)
    if isinstance(memo, HashMemo | ReturnHashMemo):
        raw: Any = getattr(memo, "memo_hash", None) or getattr(memo, "memo_return", b"")
        return "hash", base64.b64encode(raw).decode()
    return "none", None
