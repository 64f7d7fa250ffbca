"""Escrow contracts of the Trustless Work subset: the rules every call must satisfy, and
their effects. Checked when a call is built (nothing stored on failure) and again when
its transaction applies (a rule that no longer holds traps the invocation)."""

from __future__ import annotations

import copy
import hashlib
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from stellar_sdk import StrKey

from sandbox.engine import OpFailed, Overlay, amount_text
from sandbox.world import STROOPS, Contract, PreparedCall, World, derived_keypair, factory_contract_id

SINGLE, MULTI = "single-release", "multi-release"


class Problem(Exception):
    """An RFC 9457 problem answered by a build call."""

    def __init__(self, status: int, code: str, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.errors = status, code, detail, errors or []


def parse_amount(value: Any, field: str) -> int:
    """USDC amount (JSON number or numeric string, ≤ 7 decimals) -> stroops, exactly."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise Problem(422, "VALIDATION_ERROR", f"{field} must be a number", [{"field": field}]) from None
    scaled = number * STROOPS
    if not number.is_finite() or scaled != scaled.to_integral_value():
        raise Problem(422, "VALIDATION_ERROR", f"{field} has more than 7 decimals", [{"field": field}])
    if scaled <= 0:
        raise Problem(422, "AMOUNT_MUST_BE_POSITIVE", f"{field} must be positive")
    return int(scaled)


def usdc_number(value: int) -> float | int:
    number = Decimal(value) / STROOPS
    return int(number) if number == number.to_integral_value() else float(number)


def escrow_view(contract: Contract) -> dict[str, Any]:
    """The read-back of providers.md §3.7 (amounts as USDC numbers)."""
    if contract.type == SINGLE:
        milestones = [
            {
                "description": m["description"],
                "status": m["status"],
                "evidence": m["evidence"],
                "approved": m["approved"],
            }
            for m in contract.milestones
        ]
    else:
        milestones = [
            {
                "description": m["description"],
                "status": m["status"],
                "evidence": m["evidence"],
                "approved": m["approved"],
                "amount": usdc_number(int(m["amount"])),
                "receiver": m["receiver"],
                "flags": dict(m["flags"]),
            }
            for m in contract.milestones
        ]
    view: dict[str, Any] = {
        "contractId": contract.id,
        "type": contract.type,
        "signer": contract.signer,
        "engagementId": contract.engagement_id,
        "title": contract.title,
        "description": contract.description,
        "roles": dict(contract.roles),
        "platformFee": float(contract.platform_fee),
        "balance": usdc_number(contract.balance),
        "flags": dict(contract.flags),
        "milestones": milestones,
        "trustline": dict(contract.trustline),
    }
    if contract.type == SINGLE:
        view["amount"] = usdc_number(contract.amount or 0)
    return view


def _require(condition: bool, status: int, code: str, detail: str) -> None:
    if not condition:
        raise Problem(status, code, detail)


def _field(body: dict[str, Any], name: str, kind: type = str) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or (kind is str and not value):
        raise Problem(422, "VALIDATION_ERROR", f"{name} is required", [{"field": name}])
    return value


def _index(contract: Contract, body: dict[str, Any]) -> int:
    raw = body.get("milestoneIndex")
    try:
        index = int(str(raw))
    except ValueError:
        raise Problem(422, "MILESTONE_INVALID_INDEX", "milestoneIndex is not a number") from None
    _require(0 <= index < len(contract.milestones), 422, "MILESTONE_INVALID_INDEX", "milestoneIndex is out of range")
    return index


class EscrowRuntime:
    """Build-time checks, prepared calls, and apply-time effects of every escrow call."""

    FUNCTIONS: ClassVar[dict[str, str]] = {
        "deployer/single-release": "tw_new_single_release_escrow",
        "deployer/multi-release": "tw_new_multi_release_escrow",
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

    def __init__(self, world: World) -> None:
        self.world = world

    @property
    def seed(self) -> str:
        return self.world.state.seed

    @property
    def usdc(self) -> tuple[str, str]:
        return "USDC", derived_keypair(self.seed, "usdc-issuer").public_key

    # -- building ---------------------------------------------------------------------------

    def prepare(self, endpoint: str, escrow_type: str | None, body: dict[str, Any]) -> PreparedCall:
        """Check a build call against current state; store and return its prepared call."""
        overlay = Overlay(self.world.state.chain)  # read-only: never committed
        source, contract_id = self._check(overlay, endpoint, escrow_type, body)
        account = self.world.state.chain.accounts.get(source)
        _require(account is not None, 422, "VALIDATION_ERROR", f"account {source} does not exist")
        assert account is not None
        ref = self.world.next_bytes("tw-call").hex()
        stored = copy.deepcopy(body)
        if escrow_type is not None:
            stored["_type"] = escrow_type  # the apply-time re-check needs the path's type
        call = PreparedCall(
            ref=ref,
            endpoint=endpoint,
            body=stored,
            source=source,
            sequence=account.sequence + 1,
            contract_id=contract_id,
            function=self.FUNCTIONS[endpoint],
            max_time=int(self.world.now()) + int(self.world.state.settings.tw["tx_timeout_seconds"]),
        )
        self.world.state.chain.prepared[ref] = call
        return call

    def _check(self, overlay: Overlay, endpoint: str, escrow_type: str | None, body: dict[str, Any]) -> tuple[str, str]:
        """Run the contract rules; return (acting address, contract the call invokes)."""
        if endpoint.startswith("deployer/"):
            kind = endpoint.split("/", 1)[1]
            self._check_deploy(overlay, kind, body)
            return _field(body, "signer"), factory_contract_id(self.seed)
        contract_id = _field(body, "contractId")
        contract = overlay.contract(contract_id)
        _require(contract is not None, 404, "ESCROW_NOT_FOUND", f"escrow {contract_id} not found")
        assert contract is not None
        _require(contract.type == escrow_type, 422, "ESCROW_TYPE_MISMATCH", f"escrow is {contract.type}")
        roles = contract.roles
        settled = contract.flags["released"] or contract.flags["resolved"]
        if endpoint == "fund-escrow":
            signer = _field(body, "signer")
            amount = parse_amount(body.get("amount"), "amount")
            line = overlay.trustline(signer, *self.usdc)
            _require(
                line is not None and line.balance >= amount,
                422,
                "SIGNER_INSUFFICIENT_BALANCE",
                "the signer does not hold the amount",
            )
            _require(not settled, 409, "ESCROW_ALREADY_SETTLED", "the escrow is settled")
            _require(
                contract.balance + amount <= contract.total(),
                409,
                "ESCROW_OVERFUNDING",
                "funding would exceed the escrow amount",
            )
            return signer, contract_id
        if endpoint == "change-milestone-status":
            caller = _field(body, "serviceProvider")
            _require(
                caller == roles["serviceProvider"],
                403,
                "ESCROW_ONLY_SERVICE_PROVIDER_CAN_CHANGE_STATUS",
                "only the service provider can change a milestone status",
            )
            index = _index(contract, body)
            status = _field(body, "newStatus")
            _require(1 <= len(status) <= 50, 422, "VALIDATION_ERROR", "newStatus must be 1-50 characters")
            self._require_editable(contract, index)
            return caller, contract_id
        if endpoint == "approve-milestone":
            caller = _field(body, "approver")
            _require(
                caller == roles["approver"],
                403,
                "ESCROW_ONLY_APPROVER_CAN_APPROVE",
                "only the approver can approve a milestone",
            )
            index = _index(contract, body)
            _require(body.get("newFlag", True) is True, 422, "VALIDATION_ERROR", "newFlag must be true")
            _require(
                contract.milestones[index]["status"] != "pending",
                409,
                "MILESTONE_NOT_COMPLETED",
                "the service provider has not completed this milestone",
            )
            self._require_editable(contract, index)
            return caller, contract_id
        if endpoint == "release-funds":
            caller = _field(body, "releaseSigner")
            _require(
                caller == roles["releaseSigner"],
                403,
                "ESCROW_ONLY_RELEASE_SIGNER_CAN_RELEASE",
                "Only the release signer can release the escrow earnings",
            )
            _require(
                all(m["approved"] for m in contract.milestones),
                409,
                "ESCROW_NOT_COMPLETED",
                "The escrow must be completed to release earnings",
            )
            _require(
                not contract.flags["disputed"], 409, "ESCROW_OPENED_FOR_DISPUTE_RESOLUTION", "the escrow is in dispute"
            )
            _require(not settled, 409, "ESCROW_ALREADY_SETTLED", "the escrow is settled")
            _require(
                contract.balance == contract.total(),
                409,
                "ESCROW_BALANCE_NOT_EQUAL_TO_AMOUNT",
                "the escrow balance is not equal to its amount",
            )
            return caller, contract_id
        if endpoint == "release-milestone-funds":
            caller = _field(body, "releaseSigner")
            _require(
                caller == roles["releaseSigner"],
                403,
                "ESCROW_ONLY_RELEASE_SIGNER_CAN_RELEASE",
                "Only the release signer can release the escrow earnings",
            )
            index = _index(contract, body)
            milestone = contract.milestones[index]
            _require(milestone["approved"], 409, "MILESTONE_NOT_APPROVED", "the milestone is not approved")
            self._require_editable(contract, index)
            _require(
                contract.balance >= int(milestone["amount"]),
                409,
                "ESCROW_INSUFFICIENT_BALANCE",
                "the escrow balance is below the milestone amount",
            )
            return caller, contract_id
        if endpoint in ("dispute-escrow", "dispute-milestone"):
            signer = _field(body, "signer")
            _require(
                signer != roles["disputeResolver"],
                403,
                "ESCROW_DISPUTE_RESOLVER_CANNOT_DISPUTE",
                "the dispute resolver cannot raise a dispute",
            )
            receivers = {roles.get("receiver")} | {m.get("receiver") for m in contract.milestones}
            _require(
                signer in {roles["approver"], roles["serviceProvider"]} | receivers,
                403,
                "ESCROW_UNAUTHORIZED_TO_CHANGE_DISPUTE_FLAG",
                "this address cannot raise a dispute",
            )
            if endpoint == "dispute-milestone":
                index = _index(contract, body)
                flags = contract.milestones[index]["flags"]
                _require(not flags["disputed"], 409, "ESCROW_ALREADY_IN_DISPUTE", "the milestone is in dispute")
                _require(
                    not (flags["released"] or flags["resolved"]),
                    409,
                    "ESCROW_ALREADY_SETTLED",
                    "the milestone is settled",
                )
                _require(
                    contract.balance >= int(contract.milestones[index]["amount"]),
                    409,
                    "ESCROW_NOT_FUNDED",
                    "the milestone is not funded",
                )
            else:
                _require(not contract.flags["disputed"], 409, "ESCROW_ALREADY_IN_DISPUTE", "the escrow is in dispute")
                _require(not settled, 409, "ESCROW_ALREADY_SETTLED", "the escrow is settled")
                _require(contract.balance > 0, 409, "ESCROW_NOT_FUNDED", "the escrow holds no funds")
            return signer, contract_id
        if endpoint in ("resolve-dispute", "resolve-milestone-dispute"):
            caller = _field(body, "disputeResolver")
            _require(
                caller == roles["disputeResolver"],
                403,
                "ESCROW_ONLY_DISPUTE_RESOLVER_CAN_RESOLVE",
                "only the dispute resolver can resolve",
            )
            distributions = body.get("distributions")
            _require(
                isinstance(distributions, list) and 1 <= len(distributions) <= 10,
                422,
                "VALIDATION_ERROR",
                "distributions must hold 1-10 entries",
            )
            total = 0
            assert isinstance(distributions, list)
            for entry in distributions:
                _require(
                    isinstance(entry, dict) and isinstance(entry.get("address"), str),
                    422,
                    "VALIDATION_ERROR",
                    "each distribution needs an address and an amount",
                )
                try:
                    amount = parse_amount(entry.get("amount"), "distributions.amount")
                except Problem as exc:
                    if exc.code == "AMOUNT_MUST_BE_POSITIVE":
                        raise Problem(
                            422, "DISTRIBUTION_AMOUNT_MUST_BE_POSITIVE", "distribution amounts must be positive"
                        ) from None
                    raise
                _require(
                    overlay.trustline(entry["address"], *self.usdc) is not None,
                    422,
                    "ROLE_ADDRESS_WITHOUT_TRUSTLINE",
                    f"{entry['address']} holds no USDC trustline",
                )
                total += amount
            if endpoint == "resolve-milestone-dispute":
                index = _index(contract, body)
                milestone = contract.milestones[index]
                _require(
                    milestone["flags"]["disputed"], 409, "ESCROW_NOT_IN_DISPUTE", "the milestone is not in dispute"
                )
                expected = int(milestone["amount"])
            else:
                _require(contract.flags["disputed"], 409, "ESCROW_NOT_IN_DISPUTE", "the escrow is not in dispute")
                expected = contract.balance
            _require(
                total == expected,
                422,
                "DISTRIBUTIONS_MUST_EQUAL_ESCROW_BALANCE",
                "the distributions must equal the amount in dispute",
            )
            return caller, contract_id
        raise Problem(404, "NOT_FOUND", f"unknown call {endpoint}")

    def _require_editable(self, contract: Contract, index: int) -> None:
        milestone = contract.milestones[index]
        if contract.type == MULTI:
            flags = milestone["flags"]
            blocked = flags["disputed"] or flags["released"] or flags["resolved"]
        else:
            blocked = any(contract.flags.values())
        _require(not blocked, 409, "MILESTONE_NOT_EDITABLE", "the milestone can no longer change")

    def _check_deploy(self, overlay: Overlay, kind: str, body: dict[str, Any]) -> None:
        for name in ("signer", "engagementId", "title", "description"):
            _field(body, name)
        roles = body.get("roles")
        if not isinstance(roles, dict):
            raise Problem(422, "VALIDATION_ERROR", "roles is required", [{"field": "roles"}])
        needed = ["approver", "serviceProvider", "platformAddress", "releaseSigner", "disputeResolver"]
        if kind == "single-release":
            needed.append("receiver")
        for role in needed:
            _field(roles, role)
        milestones = body.get("milestones")
        if not isinstance(milestones, list) or not milestones:
            raise Problem(422, "VALIDATION_ERROR", "milestones must be a non-empty list", [{"field": "milestones"}])
        if kind == "multi-release":
            _require(len(milestones) <= 50, 422, "VALIDATION_ERROR", "at most 50 milestones")
            for entry in milestones:
                _require(
                    isinstance(entry, dict) and isinstance(entry.get("receiver"), str),
                    422,
                    "VALIDATION_ERROR",
                    "each milestone needs an amount and a receiver",
                )
                parse_amount(entry.get("amount"), "milestones.amount")
        else:
            parse_amount(body.get("amount"), "amount")
        try:
            fee = Decimal(str(body.get("platformFee", 0)))
        except InvalidOperation:
            raise Problem(422, "VALIDATION_ERROR", "platformFee must be a number") from None
        exponent = fee.as_tuple().exponent
        _require(
            isinstance(exponent, int) and -exponent <= 2 and 0 <= fee <= 100,
            422,
            "VALIDATION_ERROR",
            "platformFee must be 0-100 with at most 2 decimals",
        )
        trustline = body.get("trustline")
        _require(
            isinstance(trustline, dict) and trustline.get("address") == self.usdc[1],
            422,
            "VALIDATION_ERROR",
            "trustline must name the sandbox USDC issuer",
        )
        addresses = {roles[r] for r in needed} | {m.get("receiver") for m in milestones if isinstance(m, dict)}
        addresses.discard(None)
        for address in sorted(a for a in addresses if a):
            _require(
                overlay.account(address) is not None and overlay.trustline(address, *self.usdc) is not None,
                422,
                "ROLE_ADDRESS_WITHOUT_TRUSTLINE",
                f"{address} holds no USDC trustline",
            )
        others = {roles[r] for r in needed if r != "disputeResolver"} | {
            m.get("receiver") for m in milestones if isinstance(m, dict)
        }
        _require(
            roles["disputeResolver"] not in others,
            422,
            "ESCROW_DISPUTE_RESOLVER_OVERLAPS_WITH_OTHER_ROLE",
            "the dispute resolver overlaps with another role",
        )

    # -- applying -------------------------------------------------------------------------

    def apply(
        self, overlay: Overlay, source: str, contract_id: str, function: str, call_ref: bytes
    ) -> list[dict[str, Any]]:
        chain = self.world.state.chain
        call = chain.prepared.get(call_ref.hex())
        if call is None or call.used or call.source != source or call.function != function:
            raise OpFailed("function_trapped")
        if call.contract_id != contract_id or chain.accounts[source].sequence != call.sequence:
            raise OpFailed("function_trapped")
        escrow_type = None if call.endpoint.startswith("deployer/") else call.body.get("_type")
        try:
            self._check(overlay, call.endpoint, escrow_type, call.body)
        except Problem:
            raise OpFailed("function_trapped") from None
        transfers = self._effect(overlay, call)
        call.used = True
        return transfers

    def _effect(self, overlay: Overlay, call: PreparedCall) -> list[dict[str, Any]]:
        body, endpoint = call.body, call.endpoint
        code, issuer = self.usdc
        if endpoint.startswith("deployer/"):
            kind = endpoint.split("/", 1)[1]
            contract = self._deploy(call, kind)
            overlay.add_contract(contract)
            overlay.extra["contractId"] = contract.id
            overlay.extra["escrow"] = escrow_view(contract)
            self._record(contract, call, overlay)
            self._webhook(overlay, contract, "escrow.created", "CREATED")
            return []
        found = overlay.contract(body["contractId"])
        assert found is not None
        contract = found
        transfers: list[dict[str, Any]] = []
        if endpoint == "fund-escrow":
            amount = parse_amount(body["amount"], "amount")
            overlay.trustline(call.source, code, issuer).balance -= amount  # type: ignore[union-attr]
            contract.balance += amount
            contract.funded_total += amount
            transfers.append({"from": call.source, "to": contract.id, "code": code, "issuer": issuer, "amount": amount})
            if contract.balance >= contract.total():
                self._webhook(overlay, contract, "escrow.funded", "FUNDED", amount=contract.balance)
        elif endpoint == "change-milestone-status":
            milestone = contract.milestones[int(str(body["milestoneIndex"]))]
            milestone["status"] = body["newStatus"]
            milestone["evidence"] = str(body.get("newEvidence") or "")[:500]
            self._webhook(
                overlay,
                contract,
                "escrow.milestone_completed",
                "FUNDED",
                milestone_ref=str(body["milestoneIndex"]),
                amount=int(milestone.get("amount") or 0),
            )
        elif endpoint == "approve-milestone":
            contract.milestones[int(str(body["milestoneIndex"]))]["approved"] = True
        elif endpoint == "release-funds":
            transfers += self._pay(overlay, contract, contract.roles["receiver"], contract.balance)
            contract.flags["released"] = True
            self._webhook(overlay, contract, "escrow.released", "RELEASED", amount=contract.total())
        elif endpoint == "release-milestone-funds":
            index = int(str(body["milestoneIndex"]))
            milestone = contract.milestones[index]
            transfers += self._pay(overlay, contract, milestone["receiver"], int(milestone["amount"]))
            milestone["flags"]["released"] = True
            self._webhook(
                overlay,
                contract,
                "escrow.released",
                "RELEASED",
                milestone_ref=str(index),
                amount=int(milestone["amount"]),
            )
        elif endpoint in ("dispute-escrow", "dispute-milestone"):
            if endpoint == "dispute-milestone":
                index = int(str(body["milestoneIndex"]))
                contract.milestones[index]["flags"]["disputed"] = True
                self._webhook(overlay, contract, "escrow.disputed", "DISPUTED", milestone_ref=str(index))
            else:
                contract.flags["disputed"] = True
                self._webhook(overlay, contract, "escrow.disputed", "DISPUTED")
        elif endpoint in ("resolve-dispute", "resolve-milestone-dispute"):
            buyer_side = contract.roles["approver"]
            to_buyer_only = True
            total = 0
            for entry in body["distributions"]:
                amount = parse_amount(entry["amount"], "amount")
                transfers += self._pay(overlay, contract, entry["address"], amount)
                total += amount
                to_buyer_only = to_buyer_only and entry["address"] == buyer_side
            if endpoint == "resolve-milestone-dispute":
                index = int(str(body["milestoneIndex"]))
                flags = contract.milestones[index]["flags"]
                flags["resolved"], flags["disputed"] = True, False
                ref: str | None = str(index)
            else:
                contract.flags["resolved"], contract.flags["disputed"] = True, False
                ref = None
            event = "escrow.refunded" if to_buyer_only else "escrow.released"
            self._webhook(
                overlay, contract, event, "REFUNDED" if to_buyer_only else "RELEASED", milestone_ref=ref, amount=total
            )
        self._record(contract, call, overlay)
        return transfers

    def _deploy(self, call: PreparedCall, kind: str) -> Contract:
        body = call.body
        contract_id = StrKey.encode_contract(
            hashlib.sha256(f"{self.seed}/contract/".encode() + bytes.fromhex(call.ref)).digest()
        )
        milestones: list[dict[str, Any]] = []
        for entry in body["milestones"]:
            milestone: dict[str, Any] = {
                "description": str(entry.get("description", "")),
                "status": "pending",
                "evidence": "",
                "approved": False,
            }
            if kind == MULTI:
                milestone.update(
                    amount=parse_amount(entry["amount"], "amount"),
                    receiver=entry["receiver"],
                    flags={"disputed": False, "released": False, "resolved": False},
                )
            milestones.append(milestone)
        return Contract(
            id=contract_id,
            type=kind,
            engagement_id=str(body["engagementId"]),
            title=str(body["title"])[:100],
            description=str(body["description"])[:500],
            roles=dict(body["roles"]),
            amount=parse_amount(body["amount"], "amount") if kind == SINGLE else None,
            platform_fee=str(body.get("platformFee", 0)),
            milestones=milestones,
            trustline={"address": body["trustline"]["address"], "symbol": body["trustline"].get("symbol", "USDC")},
            signer=str(body["signer"]),
            created_at=self.world.now_iso(),
        )

    def _pay(self, overlay: Overlay, contract: Contract, recipient: str, gross: int) -> list[dict[str, Any]]:
        """Pay `gross` out of the contract: protocol fee, platform fee, the rest to the recipient."""
        code, issuer = self.usdc
        if contract.balance < gross:
            raise OpFailed("function_trapped")
        protocol = gross * int(self.world.state.settings.tw["protocol_fee_bps"]) // 10_000
        platform = int(Decimal(gross) * Decimal(contract.platform_fee) / 100)
        net = gross - protocol - platform
        contract.balance -= gross
        contract.paid_total += gross
        legs = [
            (recipient, net),
            (derived_keypair(self.seed, "tw-fee").public_key, protocol),
            (contract.roles["platformAddress"], platform),
        ]
        transfers = []
        for address, amount in legs:
            if amount <= 0:
                continue
            line = overlay.trustline(address, code, issuer)
            if line is None:
                raise OpFailed("function_trapped")
            line.balance += amount
            transfers.append({"from": contract.id, "to": address, "code": code, "issuer": issuer, "amount": amount})
        return transfers

    def _record(self, contract: Contract, call: PreparedCall, overlay: Overlay) -> None:
        contract.calls.append(
            {"call": call.endpoint, "signer": call.source, "tx_hash": overlay.tx_hash, "ledger": overlay.ledger}
        )

    def _webhook(
        self,
        overlay: Overlay,
        contract: Contract,
        event: str,
        status: str,
        *,
        milestone_ref: str | None = None,
        amount: int | None = None,
    ) -> None:
        value = contract.total() if amount is None else amount
        overlay.webhooks.append(
            (
                event,
                {
                    "contract_id": contract.id,
                    "order_id": contract.engagement_id,
                    "status": status,
                    "amount": amount_text(value),
                    "currency": "USDC",
                    "buyer_address": contract.roles.get("approver"),
                    "seller_address": contract.roles.get("serviceProvider"),
                    "transaction_hash": overlay.tx_hash,
                    "milestone_ref": milestone_ref,
                    "created_at": overlay.created_at,
                    "updated_at": overlay.created_at,
                },
            )
        )
