"""Horizon subset (providers.md §5.4) and friendbot, over the shared transaction engine."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from stellar_sdk import StrKey

from sandbox.core import Sandbox
from sandbox.engine import Outcome

PROBLEM = "application/problem+json"


def problem(status: int, kind: str, title: str, detail: str, extras: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://stellar.org/horizon-errors/{kind}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if extras is not None:
        body["extras"] = extras
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def not_found() -> JSONResponse:
    return problem(404, "not_found", "Resource Missing", "The resource at the url requested was not found.")


def submission_response(sandbox: Sandbox, outcome: Outcome) -> JSONResponse:
    if outcome.malformed:
        return problem(
            400,
            "transaction_malformed",
            "Transaction Malformed",
            outcome.malformed,
            {"envelope_xdr": outcome.envelope_xdr},
        )
    if outcome.successful and outcome.record is not None:
        return JSONResponse(sandbox.transaction_view(outcome.record))
    codes: dict[str, Any] = {"transaction": outcome.tx_code}
    if outcome.op_codes:
        codes["operations"] = outcome.op_codes
    return problem(
        400,
        "transaction_failed",
        "Transaction Failed",
        "The transaction failed when submitted to the stellar network.",
        {
            "envelope_xdr": outcome.envelope_xdr,
            "result_xdr": outcome.result_xdr,
            "result_codes": codes,
            "hash": outcome.hash,
        },
    )


def build_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter()

    @router.get("/horizon/")
    @router.get("/horizon")
    async def root() -> dict[str, Any]:
        chain = sandbox.world.state.chain
        return {
            "network_passphrase": sandbox.world.state.passphrase,
            "history_latest_ledger": chain.ledger,
            "core_latest_ledger": chain.ledger,
            "horizon_version": "sandbox-1",
            "current_protocol_version": 22,
        }

    @router.get("/horizon/fee_stats")
    async def fee_stats() -> dict[str, Any]:
        p = {
            k: "100"
            for k in ("max", "min", "mode", "p10", "p20", "p30", "p40", "p50", "p60", "p70", "p80", "p90", "p95", "p99")
        }
        return {
            "last_ledger": str(sandbox.world.state.chain.ledger),
            "last_ledger_base_fee": "100",
            "ledger_capacity_usage": "0.01",
            "fee_charged": p,
            "max_fee": p,
        }

    @router.get("/horizon/accounts/{account_id}")
    async def account(account_id: str) -> Any:
        view = sandbox.account_view(account_id)
        return view if view is not None else not_found()

    @router.post("/horizon/transactions")
    async def submit(request: Request) -> JSONResponse:
        raw = await request.body()
        envelope = None
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                envelope = json.loads(raw).get("tx")
            except (ValueError, AttributeError):
                envelope = None
        else:
            # application/x-www-form-urlencoded, parsed by hand (no multipart dependency)
            values = parse_qs(raw.decode("utf-8", errors="replace")).get("tx")
            envelope = values[0] if values else None
        if not envelope:
            return problem(
                400, "transaction_malformed", "Transaction Malformed", "the tx field is required", {"envelope_xdr": ""}
            )
        async with sandbox.world.lock:
            outcome = sandbox.submit(envelope, via="horizon")
        return submission_response(sandbox, outcome)

    @router.get("/horizon/transactions/{tx_hash}")
    async def transaction(tx_hash: str) -> Any:
        record = sandbox.world.state.chain.transactions.get(tx_hash.lower())
        return sandbox.transaction_view(record) if record is not None else not_found()

    @router.get("/horizon/accounts/{account_id}/payments")
    async def payments(
        request: Request,
        account_id: str,
        cursor: str | None = None,
        order: str = "asc",
        limit: int = 10,
        include_failed: bool = False,
        join: str | None = None,
    ) -> Any:
        if order not in ("asc", "desc") or not 1 <= limit <= 200:
            return problem(400, "bad_request", "Bad Request", "order must be asc or desc, limit 1-200")
        chain = sandbox.world.state.chain
        if account_id not in chain.accounts:
            return not_found()
        records = [r for r in chain.payments if account_id in r.participants and (include_failed or r.successful)]
        records.sort(key=lambda r: int(r.id), reverse=order == "desc")
        if cursor == "now":
            records = [] if order == "asc" else records
        elif cursor:
            try:
                position = int(cursor)
            except ValueError:
                return problem(400, "bad_request", "Bad Request", "invalid cursor")
            records = [r for r in records if (int(r.id) > position if order == "asc" else int(r.id) < position)]
        page = records[:limit]
        items = []
        for record in page:
            item = {
                "id": record.id,
                "paging_token": record.id,
                "transaction_successful": record.successful,
                "source_account": record.source_account,
                "type": record.type,
                "type_i": record.type_i,
                "created_at": record.created_at,
                "transaction_hash": record.tx_hash,
                **record.fields,
            }
            if join == "transactions":
                item["transaction"] = sandbox.transaction_view(chain.transactions[record.tx_hash])
            items.append(item)
        base = str(request.url.remove_query_params(["cursor"]))
        last = page[-1].id if page else (cursor or "")
        first = page[0].id if page else (cursor or "")
        separator = "&" if "?" in base else "?"
        return {
            "_links": {
                "self": {"href": str(request.url)},
                "next": {"href": f"{base}{separator}cursor={last}"},
                "prev": {"href": f"{base}{separator}cursor={first}"},
            },
            "_embedded": {"records": items},
        }

    @router.get("/friendbot")
    @router.get("/friendbot/")
    async def friendbot(addr: str = "") -> JSONResponse:
        if not StrKey.is_valid_ed25519_public_key(addr):
            return problem(400, "bad_request", "Bad Request", "addr must be a valid account ID")
        async with sandbox.world.lock:
            outcome = sandbox.sandbox_transaction(
                "root", lambda builder: builder.append_create_account_op(addr, "10000")
            )
        return submission_response(sandbox, outcome)

    return router
