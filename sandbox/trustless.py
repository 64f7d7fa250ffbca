"""Trustless Work subset (providers.md §5.6): build calls answer unsigned envelopes for the
acting role; `/helper/send-transaction` runs them through the engine; reads return the
escrow of §3.7. Errors are RFC 9457 problems."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from stellar_sdk import Account as SdkAccount
from stellar_sdk import TransactionBuilder, scval

from sandbox.contracts import MULTI, SINGLE, Problem, escrow_view, parse_amount
from sandbox.core import Sandbox
from sandbox.engine import Outcome
from sandbox.faults import FORGING_ENVELOPE

PROBLEM = "application/problem+json"
TYPES = (SINGLE, MULTI)


def problem_response(status: int, code: str, detail: str, instance: str, **extensions: Any) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": code.replace("_", " ").title(),
        "status": status,
        "code": code,
        "detail": detail,
        "instance": instance,
        **extensions,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def build_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter(prefix="/tw")

    def authorized(request: Request) -> bool:
        return request.headers.get("x-api-key") == sandbox.config.tw_api_key

    def unauthorized(request: Request) -> JSONResponse:
        return problem_response(401, "UNAUTHORIZED", "invalid or missing x-api-key", request.url.path)

    async def body_of(request: Request) -> dict[str, Any] | None:
        try:
            data = json.loads(await request.body(), parse_float=Decimal)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def build(request: Request, endpoint: str, escrow_type: str | None) -> JSONResponse:
        if not authorized(request):
            return unauthorized(request)
        body = await body_of(request)
        if body is None:
            return problem_response(400, "VALIDATION_ERROR", "the body must be a JSON object", request.url.path)
        async with sandbox.world.lock:
            try:
                call = sandbox.runtime.prepare(endpoint, escrow_type, body)
            except Problem as exc:
                extra = {"errors": exc.errors} if exc.errors else {}
                return problem_response(exc.status, exc.code, exc.detail, request.url.path, **extra)
            settings = sandbox.world.state.settings.tw
            builder = TransactionBuilder(
                SdkAccount(call.source, call.sequence - 1),
                sandbox.world.state.passphrase,
                base_fee=100 + int(settings["resource_fee_stroops"]),
            )
            if FORGING_ENVELOPE.get():  # fault `forge_envelope`: the signer's USDC to the fee account
                amount = parse_amount(body.get("amount", 1), "amount")
                thief = sandbox.keypair("tw-fee").public_key
                builder.append_invoke_contract_function_op(
                    sandbox.usdc.contract_id(sandbox.world.state.passphrase),
                    "transfer",
                    [scval.to_address(call.source), scval.to_address(thief), scval.to_int128(amount)],
                )
            else:
                builder.append_invoke_contract_function_op(
                    call.contract_id, call.function, [scval.to_bytes(bytes.fromhex(call.ref))]
                )
            builder.add_time_bounds(0, call.max_time)
            unsigned = builder.build().to_xdr()
            if endpoint == "fund-escrow":
                contract = sandbox.world.state.chain.contracts[call.contract_id]
                sandbox.emit_tw(
                    "escrow.funding_started",
                    {
                        "contract_id": contract.id,
                        "order_id": contract.engagement_id,
                        "status": "FUNDING",
                        "amount": f"{Decimal(str(body['amount'])):.7f}",
                        "currency": "USDC",
                        "buyer_address": contract.roles.get("approver"),
                        "seller_address": contract.roles.get("serviceProvider"),
                        "transaction_hash": None,
                        "milestone_ref": None,
                        "created_at": sandbox.world.now_iso(),
                        "updated_at": sandbox.world.now_iso(),
                    },
                )
            sandbox.world.commit()
        return JSONResponse({"status": "SUCCESS", "unsignedTransaction": unsigned}, status_code=201)

    @router.get("/")
    @router.get("")
    async def root() -> dict[str, str]:
        return {"status": "ok"}

    @router.post("/deployer/{kind}")
    async def deploy(kind: str, request: Request) -> JSONResponse:
        if kind not in TYPES:
            return problem_response(404, "NOT_FOUND", f"unknown deployer {kind}", request.url.path)
        return await build(request, f"deployer/{kind}", None)

    @router.post("/escrow/{kind}/{action}")
    async def escrow_call(kind: str, action: str, request: Request) -> JSONResponse:
        allowed = {
            SINGLE: {
                "fund-escrow",
                "change-milestone-status",
                "approve-milestone",
                "release-funds",
                "dispute-escrow",
                "resolve-dispute",
            },
            MULTI: {
                "fund-escrow",
                "change-milestone-status",
                "approve-milestone",
                "release-milestone-funds",
                "dispute-milestone",
                "resolve-milestone-dispute",
            },
        }
        if kind not in TYPES or action not in allowed[kind]:
            return problem_response(404, "NOT_FOUND", f"unknown call {kind}/{action}", request.url.path)
        return await build(request, action, kind)

    @router.post("/helper/send-transaction")
    async def send_transaction(request: Request) -> JSONResponse:
        if not authorized(request):
            return unauthorized(request)
        body = await body_of(request)
        signed = body.get("signedXdr") if body else None
        if not isinstance(signed, str) or not signed:
            return problem_response(400, "VALIDATION_ERROR", "signedXdr is required", request.url.path)
        async with sandbox.world.lock:
            outcome = sandbox.submit(signed, via="tw")
        return send_response(outcome, request.url.path)

    @router.get("/escrow/{kind}/get-escrow")
    async def get_escrow(kind: str, request: Request, contractId: str = "", signer: str = "") -> JSONResponse:
        if not authorized(request):
            return unauthorized(request)
        contract = sandbox.world.state.chain.contracts.get(contractId)
        if contract is None:
            return problem_response(404, "ESCROW_NOT_FOUND", f"escrow {contractId} not found", request.url.path)
        if contract.type != kind:
            return problem_response(422, "ESCROW_TYPE_MISMATCH", f"escrow is {contract.type}", request.url.path)
        return JSONResponse(escrow_view(contract))

    @router.get("/helper/get-escrow-by-contract-ids")
    async def by_ids(request: Request) -> JSONResponse:
        if not authorized(request):
            return unauthorized(request)
        ids = request.query_params.getlist("contractIds[]") + request.query_params.getlist("contractIds")
        contracts = sandbox.world.state.chain.contracts
        return JSONResponse([escrow_view(contracts[i]) for i in ids if i in contracts])

    @router.get("/helper/get-escrows-by-signer")
    async def by_signer(request: Request, signer: str = "") -> JSONResponse:
        if not authorized(request):
            return unauthorized(request)
        found = [c for c in sandbox.world.state.chain.contracts.values() if c.signer == signer]
        found.sort(key=lambda c: c.created_at, reverse=True)
        return JSONResponse([escrow_view(c) for c in found])

    return router


def send_response(outcome: Outcome, instance: str) -> JSONResponse:
    if outcome.malformed:
        return problem_response(400, "TRANSACTION_MALFORMED", outcome.malformed, instance)
    if outcome.successful and outcome.record is not None:
        body: dict[str, Any] = {
            "status": "SUCCESS",
            "message": "Transaction applied",
            "hash": outcome.hash,
            "ledger": outcome.record.ledger,
        }
        if "contractId" in outcome.extra:
            body["contractId"] = outcome.extra["contractId"]
            body["escrow"] = outcome.extra.get("escrow")
        return JSONResponse(body)
    codes: dict[str, Any] = {"transaction": outcome.tx_code}
    if outcome.op_codes:
        codes["operations"] = outcome.op_codes
    code = "TRANSACTION_FAILED" if outcome.applied else "TRANSACTION_REJECTED"
    return problem_response(
        400,
        code,
        f"the transaction was not applied ({outcome.tx_code})",
        instance,
        extensions={"hash": outcome.hash, "result_codes": codes},
    )
