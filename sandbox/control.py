"""The control API under /_sandbox (providers.md §5.10): what tests, the demo and
developers use to drive the sandbox. JSON, snake_case, amounts as strings."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from stellar_sdk import Asset, StrKey

from sandbox.airtm import AirtmDesk, AirtmError
from sandbox.contracts import escrow_view
from sandbox.core import Sandbox
from sandbox.engine import amount_text, stroops
from sandbox.faults import FaultConfigError
from sandbox.world import XLM_SUPPLY


def error(status: int, code: str, message: str, **details: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details}}, status_code=status)


def build_router(sandbox: Sandbox, desk: AirtmDesk) -> APIRouter:
    router = APIRouter(prefix="/_sandbox")
    world = sandbox.world

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        data = json.loads(raw)
        return data if isinstance(data, dict) else {}

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/info")
    async def info() -> dict[str, Any]:
        return sandbox.info()

    @router.post("/reset")
    async def reset(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        async with world.lock:
            world.reset(body.get("seed"), keep_settings=bool(body.get("keep_settings", True)))
            if not body.get("keep_faults", False):
                sandbox.faults.clear()
                sandbox.outbox.set_faults({}, world.state.seed)
        return sandbox.info()

    @router.post("/snapshots")
    async def snapshot() -> dict[str, str]:
        async with world.lock:
            return {"snapshot_id": world.snapshot()}

    @router.post("/snapshots/{snapshot_id}/restore")
    async def restore(snapshot_id: str) -> Any:
        async with world.lock:
            if not world.restore(snapshot_id):
                return error(404, "NOT_FOUND", f"snapshot {snapshot_id} not found")
        return sandbox.info()

    @router.get("/clock")
    async def clock() -> dict[str, Any]:
        return {"now": world.now_iso(), "offset_seconds": world.state.clock_offset}

    @router.post("/clock")
    async def set_clock(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        async with world.lock:
            if "advance_seconds" in body:
                world.state.clock_offset += float(body["advance_seconds"])
            if "offset_seconds" in body:
                world.state.clock_offset = float(body["offset_seconds"])
            world.commit()
        return {"now": world.now_iso(), "offset_seconds": world.state.clock_offset}

    def faucet_result(outcome: Any, source: str, address: str, amount: int, asset: Asset | None) -> Any:
        if not outcome.successful:
            codes = outcome.op_codes or [outcome.tx_code]
            return error(409, "TRANSACTION_FAILED", f"the faucet transaction failed: {codes}", result_codes=codes)
        record = next(p for p in reversed(world.state.chain.payments) if p.tx_hash == outcome.hash)
        return {
            "transaction_hash": outcome.hash,
            "operation_id": record.id,
            "ledger": outcome.record.ledger,
            "from": source,
            "to": address,
            "amount": amount_text(amount),
            "asset": {"code": asset.code, "issuer": asset.issuer} if asset else {"code": "XLM", "issuer": None},
        }

    @router.post("/faucet/usdc")
    async def faucet_usdc(request: Request) -> Any:
        body = await body_of(request)
        address = str(body.get("address", ""))
        try:
            amount = stroops(Decimal(str(body.get("amount"))))
        except (InvalidOperation, ValueError):
            return error(400, "VALIDATION_ERROR", "amount must be a decimal string with at most 7 decimals")
        if amount <= 0 or not StrKey.is_valid_ed25519_public_key(address):
            return error(400, "VALIDATION_ERROR", "a valid address and a positive amount are required")
        kind = body.get("operation_type", "payment")
        asset = sandbox.usdc
        text = amount_text(amount)
        async with world.lock:
            chain = world.state.chain
            if address not in chain.accounts:
                return error(409, "ACCOUNT_NOT_FOUND", f"{address} does not exist")
            if (address, asset.code, asset.issuer) not in chain.trustlines:
                return error(409, "NO_TRUSTLINE", f"{address} holds no USDC trustline")

            def build(builder: Any) -> None:
                if kind == "path_payment_strict_send":
                    builder.append_path_payment_strict_send_op(address, asset, text, asset, text, [])
                elif kind == "path_payment_strict_receive":
                    builder.append_path_payment_strict_receive_op(address, asset, text, asset, text, [])
                else:
                    builder.append_payment_op(address, asset, text)

            outcome = sandbox.sandbox_transaction("faucet", build, memo=body.get("memo"))
        return faucet_result(outcome, sandbox.keypair("faucet").public_key, address, amount, asset)

    @router.post("/faucet/xlm")
    async def faucet_xlm(request: Request) -> Any:
        body = await body_of(request)
        address = str(body.get("address", ""))
        try:
            amount = stroops(Decimal(str(body.get("amount", "100"))))
        except (InvalidOperation, ValueError):
            return error(400, "VALIDATION_ERROR", "amount must be a decimal string")
        if not StrKey.is_valid_ed25519_public_key(address) or amount <= 0:
            return error(400, "VALIDATION_ERROR", "a valid address and a positive amount are required")
        text = amount_text(amount)
        async with world.lock:
            exists = address in world.state.chain.accounts

            def build(builder: Any) -> None:
                if exists:
                    builder.append_payment_op(address, Asset.native(), text)
                else:
                    builder.append_create_account_op(address, text)

            outcome = sandbox.sandbox_transaction("root", build)
        return faucet_result(outcome, sandbox.keypair("root").public_key, address, amount, None)

    @router.get("/accounts/{account_id}")
    async def account(account_id: str) -> Any:
        contract = world.state.chain.contracts.get(account_id)
        if contract is not None:
            return {
                "id": contract.id,
                "type": "contract",
                "balances": [
                    {
                        "asset_code": "USDC",
                        "asset_issuer": sandbox.usdc.issuer,
                        "balance": amount_text(contract.balance),
                    }
                ],
            }
        view = sandbox.account_view(account_id)
        return view if view is not None else error(404, "NOT_FOUND", f"{account_id} not found")

    @router.get("/ledger/totals")
    async def totals() -> dict[str, Any]:
        return ledger_totals(sandbox)

    @router.get("/invariants")
    async def invariants() -> dict[str, Any]:
        return check_invariants(sandbox, desk)

    @router.get("/requests")
    async def requests(
        target: str | None = None, method: str | None = None, path_prefix: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        found = [
            r
            for r in sandbox.faults.requests
            if (target is None or r["target"] == target)
            and (method is None or r["method"] == method.upper())
            and (path_prefix is None or r["path"].startswith(path_prefix))
        ]
        return found[-min(max(limit, 1), 1000) :]

    @router.get("/faults")
    async def faults() -> dict[str, Any]:
        return sandbox.faults.view()

    @router.put("/faults")
    async def put_faults(request: Request) -> Any:
        body = await body_of(request)
        try:
            sandbox.faults.configure(body)
        except (FaultConfigError, TypeError) as exc:
            return error(400, "VALIDATION_ERROR", str(exc))
        sandbox.outbox.set_faults(body.get("webhooks", {}), sandbox.faults.config["seed"])
        return sandbox.faults.view()

    @router.delete("/faults")
    async def delete_faults() -> dict[str, Any]:
        sandbox.faults.clear()
        sandbox.outbox.set_faults({}, world.state.seed)
        return sandbox.faults.view()

    @router.get("/faults/log")
    async def fault_log(rule_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        found = [e for e in sandbox.faults.log if rule_id is None or e["rule_id"] == rule_id]
        return found[-min(max(limit, 1), 1000) :]

    @router.get("/tw/escrows")
    async def escrows() -> list[dict[str, Any]]:
        return [escrow_view(c) for c in world.state.chain.contracts.values()]

    @router.get("/tw/escrows/{contract_id}")
    async def escrow(contract_id: str) -> Any:
        contract = world.state.chain.contracts.get(contract_id)
        if contract is None:
            return error(404, "NOT_FOUND", f"escrow {contract_id} not found")
        return {**escrow_view(contract), "calls": list(contract.calls)}

    @router.put("/tw/settings")
    async def tw_settings(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        async with world.lock:
            world.state.settings.tw.update({k: v for k, v in body.items() if k in world.state.settings.tw})
            world.commit()
        return dict(world.state.settings.tw)

    # Airtm ------------------------------------------------------------------------------

    @router.post("/airtm/users")
    async def airtm_user(request: Request) -> Any:
        body = await body_of(request)
        async with world.lock:
            try:
                user, created = desk.upsert_user(body)
            except AirtmError as exc:
                return error(400, "VALIDATION_ERROR", exc.message)
            world.commit()
        return JSONResponse(desk.user_view(user), status_code=201 if created else 200)

    @router.get("/airtm/users")
    async def airtm_users() -> list[dict[str, Any]]:
        return [desk.user_view(u) for u in desk.state.users.values()]

    def listing(kind: str, code: str | None, status: str | None) -> list[dict[str, Any]]:
        table = desk.state.payins if kind == "payin" else desk.state.payouts
        return [
            desk.public(r)
            for r in table.values()
            if (code is None or r["code"] == code) and (status is None or r["status"] == status)
        ]

    @router.get("/airtm/payins")
    async def payins(code: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        return listing("payin", code, status)

    @router.get("/airtm/payouts")
    async def payouts(code: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        return listing("payout", code, status)

    async def airtm_action(kind: str, id_or_code: str, action: Any) -> Any:
        async with world.lock:
            try:
                resource = desk.find(kind, id_or_code)
            except AirtmError:
                return error(404, "NOT_FOUND", f"{kind} {id_or_code} not found")
            try:
                action(resource)
            except AirtmError as exc:
                return error(409, "INVALID_STATE", exc.message, current_status=resource["status"])
            world.commit()
        return desk.public(resource)

    @router.post("/airtm/payins/{id_or_code}/confirm")
    async def confirm(id_or_code: str, request: Request) -> Any:
        body = await body_of(request)

        def run(payin: dict[str, Any]) -> None:
            desk.confirm_payin(
                payin,
                str(body.get("email") or _linked_email(desk)),
                str(body.get("result", "CONFIRMED")),
                body.get("failure_reason"),
            )
            if not body.get("processing_ms"):
                desk.settle_payin(payin)

        result = await airtm_action("payin", id_or_code, run)
        if body.get("processing_ms") and isinstance(result, dict):
            import asyncio

            async def later(payin_id: str) -> None:
                await asyncio.sleep(float(body["processing_ms"]) / 1000)
                async with world.lock:
                    desk.settle_payin(desk.state.payins[payin_id])
                    world.commit()

            asyncio.get_running_loop().create_task(later(result["id"]))
        return result

    @router.post("/airtm/payins/{id_or_code}/cancel")
    async def cancel_payin(id_or_code: str) -> Any:
        return await airtm_action("payin", id_or_code, desk.cancel_payin)

    @router.post("/airtm/payouts/{id_or_code}/complete")
    async def complete(id_or_code: str) -> Any:
        return await airtm_action("payout", id_or_code, desk.complete_payout)

    @router.post("/airtm/payouts/{id_or_code}/fail")
    async def fail(id_or_code: str, request: Request) -> Any:
        body = await body_of(request)
        return await airtm_action(
            "payout",
            id_or_code,
            lambda p: desk.fail_payout(
                p, str(body.get("reason_code", "415073")), str(body.get("reason_description", "Payout failed"))
            ),
        )

    @router.post("/airtm/payouts/{id_or_code}/require-user-action")
    async def user_action(id_or_code: str, request: Request) -> Any:
        body = await body_of(request)
        return await airtm_action(
            "payout",
            id_or_code,
            lambda p: desk.require_user_action(
                p, str(body.get("reason_description", "The recipient must complete a step"))
            ),
        )

    @router.post("/airtm/payouts/{id_or_code}/cancel")
    async def cancel_payout(id_or_code: str) -> Any:
        return await airtm_action("payout", id_or_code, desk.cancel_payout)

    @router.put("/airtm/settings")
    async def airtm_settings(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        async with world.lock:
            settings = world.state.settings.airtm
            settings.update({k: v for k, v in body.items() if k in settings})
            if "enterprise_balance" in body:
                value = int(Decimal(str(body["enterprise_balance"])) * 100)
                desk.state.initial += value - desk.state.available
                desk.state.available = value
            world.commit()
        return dict(world.state.settings.airtm)

    # webhooks -----------------------------------------------------------------------------

    @router.get("/webhooks")
    async def webhooks(
        provider: str | None = None, status: str | None = None, resource_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        found = [
            sandbox.outbox.view(w)
            for w in world.state.webhooks
            if (provider is None or w.provider == provider)
            and (status is None or w.status == status)
            and (resource_id is None or w.resource_id == resource_id)
        ]
        return found[-min(max(limit, 1), 1000) :]

    @router.post("/webhooks/{webhook_id}/redeliver")
    async def redeliver(webhook_id: str) -> Any:
        async with world.lock:
            original = next((w for w in world.state.webhooks if w.id == webhook_id), None)
            if original is None:
                return error(404, "NOT_FOUND", f"webhook {webhook_id} not found")
            copy = sandbox.outbox.enqueue(
                original.provider, original.event_type, original.body, original.event_id, original.resource_id
            )
            world.commit()
        return sandbox.outbox.view(copy)

    @router.post("/webhooks/flush")
    async def flush(request: Request) -> dict[str, int]:
        body = await body_of(request)
        return await sandbox.outbox.flush(int(body.get("timeout_ms", 10_000)))

    @router.post("/webhooks/pause")
    async def pause() -> dict[str, bool]:
        sandbox.outbox.paused = True
        return {"paused": True}

    @router.post("/webhooks/resume")
    async def resume() -> dict[str, bool]:
        sandbox.outbox.paused = False
        sandbox.outbox.wake.set()
        return {"paused": False}

    @router.put("/webhooks/settings")
    async def webhook_settings(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        async with world.lock:
            world.state.settings.webhooks.update(body)
            world.commit()
        return sandbox.outbox.settings

    return router


def _linked_email(desk: AirtmDesk) -> str:
    users = list(desk.state.users.values())
    return users[0]["email"] if users else ""


def ledger_totals(sandbox: Sandbox) -> dict[str, Any]:
    chain = sandbox.world.state.chain
    assets = []
    for (code, issuer), minted in sorted(chain.minted.items()):
        burned = chain.burned.get((code, issuer), 0)
        in_accounts = sum(line.balance for key, line in chain.trustlines.items() if key[1:] == (code, issuer))
        in_contracts = sum(c.balance for c in chain.contracts.values() if c.trustline.get("address") == issuer)
        assets.append(
            {
                "code": code,
                "issuer": issuer,
                "minted": amount_text(minted),
                "burned": amount_text(burned),
                "in_accounts": amount_text(in_accounts),
                "in_contracts": amount_text(in_contracts),
            }
        )
    native = sum(a.native for a in chain.accounts.values())
    return {
        "assets": assets,
        "xlm": {
            "supply": amount_text(XLM_SUPPLY),
            "in_accounts": amount_text(native),
            "fees_collected": amount_text(chain.fees_collected),
        },
    }


def check_invariants(sandbox: Sandbox, desk: AirtmDesk) -> dict[str, Any]:
    chain = sandbox.world.state.chain
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        checks.append({"name": name, "ok": ok, "detail": detail})

    conserved = True
    details = []
    for (code, issuer), minted in chain.minted.items():
        burned = chain.burned.get((code, issuer), 0)
        held = sum(line.balance for key, line in chain.trustlines.items() if key[1:] == (code, issuer))
        held += sum(c.balance for c in chain.contracts.values() if c.trustline.get("address") == issuer)
        if minted - burned != held:
            conserved = False
            details.append(f"{code}: minted-burned {minted - burned} != held {held}")
    check("asset_conserved", conserved, "; ".join(details))
    native = sum(a.native for a in chain.accounts.values())
    check(
        "xlm_conserved",
        native + chain.fees_collected == XLM_SUPPLY,
        f"accounts {native} + fees {chain.fees_collected} vs supply {XLM_SUPPLY}",
    )
    negative = [a.id for a in chain.accounts.values() if a.native < 0] + [
        f"{k[0]}:{k[1]}" for k, line in chain.trustlines.items() if line.balance < 0
    ]
    check("no_negative_balances", not negative, ", ".join(negative))
    hashes = [t.hash for t in chain.transactions.values()]
    check("hash_applied_once", len(hashes) == len(set(hashes)))
    bad = []
    for contract in chain.contracts.values():
        if (
            contract.balance != contract.funded_total - contract.paid_total
            or contract.balance < 0
            or (contract.type == "single-release" and contract.balance > (contract.amount or 0))
        ):
            bad.append(contract.id)
    check("contract_balance_consistent", not bad, ", ".join(bad))
    airtm = desk.state
    users = sum(u["balance"] for u in airtm.users.values())
    enterprise = airtm.available + airtm.pending
    # money only enters by seeding (enterprise balance, user balances) and leaves as fees
    expected = airtm.initial + airtm.seeded - airtm.fees
    check(
        "airtm_conserved",
        enterprise + users == expected,
        f"enterprise {enterprise} + users {users} vs seeded {expected}",
    )
    return {"ok": all(c["ok"] for c in checks), "checks": checks}
