"""Airtm Enterprise API subset (providers.md §5.7): users, pay-ins, payouts with commit,
the user-facing checkout page, and the control actions that drive their statuses."""

from __future__ import annotations

import asyncio
import base64
import html
import json
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from sandbox.core import Sandbox

EXPIRY_SECONDS = 15 * 24 * 3600


class AirtmError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        return JSONResponse({"code": self.code, "message": self.message, "data": {}}, status_code=self.status)


def cents(value: Any, field: str) -> int:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise AirtmError(400, "415901", f"{field} must be a number") from None
    scaled = number * 100
    if not number.is_finite() or scaled != scaled.to_integral_value() or scaled < 1:
        raise AirtmError(400, "415901", f"{field} must be at least 0.01 with at most 2 decimals")
    return int(scaled)


def number(value: int) -> int | float:
    amount = Decimal(value) / 100
    return int(amount) if amount == amount.to_integral_value() else float(amount)


class AirtmDesk:
    """Airtm's state transitions; every method runs with the world lock held."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    @property
    def state(self) -> Any:
        return self.sandbox.world.state.airtm

    @property
    def settings(self) -> dict[str, Any]:
        return self.sandbox.world.state.settings.airtm

    def now(self) -> str:
        return self.sandbox.world.now_iso()

    def emit(self, event_type: str, resource: dict[str, Any]) -> None:
        event_id = "msg_" + base64.b32encode(self.sandbox.world.next_bytes("airtm-event", 17)).decode().lower()[:27]
        body = {
            "type": event_type,
            "eventType": event_type,
            "eventId": event_id,
            "occurredAt": self.now(),
            "data": self.public(resource),
        }
        self.sandbox.outbox.enqueue("airtm", event_type, body, event_id, resource["code"])

    def public(self, resource: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for key, value in resource.items():
            if key.startswith("_"):
                continue
            out[key] = (
                number(value)
                if key in {"amount", "netAmount", "airtmFee", "grossAmount", "enterpriseFee"} and isinstance(value, int)
                else value
            )
        return out

    # users -----------------------------------------------------------------------------

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        return next((u for u in self.state.users.values() if u["email"].lower() == email.lower()), None)

    def user_public(self, user: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": user["id"],
            "status": user["status"],
            "primaryEmail": user["email"],
            "firstName": user["first_name"],
            "lastName": user["last_name"],
            "country": user["country"],
            "isVerified": user["is_verified"],
        }

    def upsert_user(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        email = str(body.get("email") or "").strip()
        if "@" not in email:
            raise AirtmError(400, "415901", "email is required")
        user = self.user_by_email(email)
        created = user is None
        if user is None:
            user = {"id": self.sandbox.world.next_uuid("airtm-user"), "email": email, "balance": 0}
            self.state.users[user["id"]] = user
        user.update(
            status=str(body.get("status", user.get("status", "active"))),
            is_verified=bool(body.get("is_verified", user.get("is_verified", True))),
            first_name=body.get("first_name", user.get("first_name", "Sandbox")),
            last_name=body.get("last_name", user.get("last_name", "User")),
            country=body.get("country", user.get("country", "COL")),
        )
        if "balance" in body:
            balance = 0 if Decimal(str(body["balance"])) == 0 else cents(body["balance"], "balance")
            self.state.seeded += balance - user["balance"]
            user["balance"] = balance
        return user, created

    def user_view(self, user: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.user_public(user),
            "email": user["email"],
            "is_verified": user["is_verified"],
            "balance": f"{Decimal(user['balance']) / 100:.2f}",
        }

    # pay-ins --------------------------------------------------------------------------

    def expire_payins(self) -> None:
        now = self.sandbox.world.now()
        for payin in self.state.payins.values():
            if payin["status"] == "CREATED" and now - payin["_created_ts"] > EXPIRY_SECONDS:
                self._set(payin, "CANCELED", failureReason="EXPIRED")
                self.emit("payin.canceled", payin)

    def create_payin(self, body: dict[str, Any]) -> dict[str, Any]:
        code = body.get("code")
        if not isinstance(code, str) or not code:
            raise AirtmError(400, "415901", "code is required")
        for name in ("confirmationUri", "cancelUri"):
            if not isinstance(body.get(name), str):
                raise AirtmError(400, "415901", f"{name} is required")
        amount = cents(body.get("amount"), "amount")
        description = str(body.get("description") or f"Top-up {code}")
        if len(description) > 250:
            raise AirtmError(400, "415901", "description is longer than 250 characters")
        raw_items = body.get("items") or [{"description": description, "amount": body.get("amount"), "quantity": 1}]
        if not isinstance(raw_items, list) or not all(isinstance(item, dict) for item in raw_items):
            raise AirtmError(400, "415901", "items must be a list of objects")
        items: list[dict[str, Any]] = [
            {
                "description": str(item.get("description", "")),
                "amount": number(cents(item.get("amount"), "items.amount")),
                "quantity": int(item.get("quantity", 1)),
            }
            for item in raw_items
        ]
        total = sum(cents(item["amount"], "items.amount") * int(item["quantity"]) for item in items)
        if total != amount:
            raise AirtmError(400, "415901", "items must sum to amount")
        if any(p["code"] == code for p in self.state.payins.values()):
            raise AirtmError(409, "415029", "a pay-in with this code exists")
        payin_id = self.sandbox.world.next_uuid("airtm-payin")
        now = self.now()
        payin = {
            "id": payin_id,
            "code": code,
            "hash": self.sandbox.world.next_bytes("airtm-hash", 8).hex(),
            "status": "CREATED",
            "amount": amount,
            "netAmount": amount,
            "airtmFee": 0,
            "description": description,
            "items": items,
            "airtmUserId": None,
            "airtmUserEmail": None,
            "failureReason": None,
            "createdAt": now,
            "updatedAt": now,
            "confirmationUri": body["confirmationUri"],
            "cancelUri": body["cancelUri"],
            "_created_ts": self.sandbox.world.now(),
        }
        self.state.payins[payin_id] = payin
        self.emit("payin.created", payin)
        return payin

    def find(self, kind: str, id_or_code: str) -> dict[str, Any]:
        table = self.state.payins if kind == "payin" else self.state.payouts
        found: dict[str, Any] | None = table.get(id_or_code) or next(
            (r for r in table.values() if r["code"] == id_or_code), None
        )
        if found is None:
            raise AirtmError(404, "415031" if kind == "payin" else "415005", f"{kind} not found")
        return found

    def _set(self, resource: dict[str, Any], status: str, **fields: Any) -> None:
        resource.update(status=status, updatedAt=self.now(), **fields)

    def cancel_payin(self, payin: dict[str, Any]) -> dict[str, Any]:
        if payin["status"] != "CREATED":
            code = "415032" if payin["status"] in ("CONFIRMED", "PROCESSING") else "415030"
            raise AirtmError(409, code, f"cannot cancel a {payin['status']} pay-in")
        self._set(payin, "CANCELED")
        self.emit("payin.canceled", payin)
        return payin

    def confirm_payin(self, payin: dict[str, Any], email: str, result: str, reason: str | None) -> dict[str, Any]:
        if payin["status"] != "CREATED":
            raise AirtmError(409, "INVALID_STATE", f"the pay-in is {payin['status']}")
        user = self.user_by_email(email) if email else None
        if result.upper() != "CONFIRMED":
            failure = reason or "Payment failed"
        elif user is None or user["status"] != "active":
            failure = "USER_INACTIVE" if user else "USER_NOT_FOUND"
        elif user["balance"] < payin["amount"]:
            failure = "INSUFFICIENT_BALANCE"
        else:
            failure = None
        if failure is not None:
            self._set(
                payin,
                "FAILED",
                failureReason=failure,
                airtmUserId=user["id"] if user else None,
                airtmUserEmail=user["email"] if user else None,
            )
            self.emit("payin.failed", payin)
            return payin
        assert user is not None
        fee = payin["amount"] * int(self.settings.get("payin_fee_bps", 0)) // 10_000
        self._set(
            payin,
            "PROCESSING",
            airtmUserId=user["id"],
            airtmUserEmail=user["email"],
            airtmFee=fee,
            netAmount=payin["amount"] - fee,
        )
        user["balance"] -= payin["amount"]
        return payin

    def settle_payin(self, payin: dict[str, Any]) -> None:
        if payin["status"] != "PROCESSING":
            return
        self.state.available += payin["netAmount"]
        self.state.confirmed_in += payin["amount"]
        self.state.fees += payin["airtmFee"]
        self._set(payin, "CONFIRMED")
        self.emit("payin.confirmed", payin)

    # payouts --------------------------------------------------------------------------

    def create_payout(self, body: dict[str, Any]) -> dict[str, Any]:
        code = body.get("code")
        email = body.get("airtmUserEmail")
        if not isinstance(code, str) or not code or not isinstance(email, str) or not email:
            raise AirtmError(400, "415901", "code and airtmUserEmail are required")
        if not isinstance(body.get("notes"), str):
            raise AirtmError(400, "415901", "notes is required")
        amount = cents(body.get("amount"), "amount")
        if any(p["code"] == code for p in self.state.payouts.values()):
            raise AirtmError(409, "415056", "a payout with this code exists")
        if amount > self.state.available:
            raise AirtmError(422, "415016", "insufficient enterprise balance")
        fee = amount * int(self.settings.get("payout_fee_bps", 0)) // 10_000
        user = self.user_by_email(email)
        now = self.now()
        payout = {
            "id": self.sandbox.world.next_uuid("airtm-payout"),
            "code": code,
            "hash": self.sandbox.world.next_bytes("airtm-hash", 8).hex(),
            "airtmUserId": user["id"] if user else None,
            "airtmUserEmail": email,
            "notes": body["notes"],
            "internalNote": body.get("internalNote"),
            "status": "CREATED",
            "grossAmount": amount + fee,
            "amount": amount,
            "netAmount": amount - fee,
            "airtmFee": fee,
            "enterpriseFee": 0,
            "reasonCode": None,
            "reasonDescription": None,
            "createdAt": now,
            "updatedAt": now,
            "_require_verified": bool(body.get("requireIdVerified", False)),
            "_committed": False,
        }
        self.state.payouts[payout["id"]] = payout
        self.emit("payout.created", payout)
        if body.get("commit") is True:
            self.commit_payout(payout)
        return payout

    def commit_payout(self, payout: dict[str, Any]) -> None:
        if payout["status"] != "CREATED":
            raise AirtmError(409, "415027", f"the payout is already {payout['status']}")
        self.state.available -= payout["amount"]
        self.state.pending += payout["amount"]
        payout["_committed"] = True
        self._set(payout, "COMMITTED")
        if self.settings.get("payout_completion", "auto") == "auto":
            if self._recipient_ok(payout):
                delay = float(self.settings.get("auto_complete_delay_ms", 300)) / 1000
                asyncio.get_running_loop().create_task(self._auto_complete(payout["id"], delay))
            else:
                self.require_user_action(payout, "The recipient must sign up, verify or configure a method")

    def _recipient_ok(self, payout: dict[str, Any]) -> bool:
        user = self.user_by_email(payout["airtmUserEmail"])
        return (
            user is not None and user["status"] == "active" and (user["is_verified"] or not payout["_require_verified"])
        )

    async def _auto_complete(self, payout_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self.sandbox.world.lock:
            payout = self.state.payouts.get(payout_id)
            if payout is not None and payout["status"] == "COMMITTED":
                self.complete_payout(payout)
                self.sandbox.world.commit()

    def complete_payout(self, payout: dict[str, Any]) -> dict[str, Any]:
        if payout["status"] not in ("COMMITTED", "PENDING"):
            raise AirtmError(409, "INVALID_STATE", f"the payout is {payout['status']}")
        user = self.user_by_email(payout["airtmUserEmail"])
        if user is not None:
            user["balance"] += payout["netAmount"]
            payout["airtmUserId"] = user["id"]
        self.state.pending -= payout["amount"]
        self.state.completed_out += payout["amount"]
        self.state.fees += payout["airtmFee"]
        self._set(payout, "COMPLETED")
        self.emit("payout.completed", payout)
        return payout

    def fail_payout(self, payout: dict[str, Any], code: str, description: str) -> dict[str, Any]:
        if payout["status"] not in ("CREATED", "COMMITTED", "PENDING"):
            raise AirtmError(409, "INVALID_STATE", f"the payout is {payout['status']}")
        self._return_funds(payout)
        self._set(payout, "FAILED", reasonCode=code, reasonDescription=description)
        self.emit("payout.failed", payout)
        return payout

    def require_user_action(self, payout: dict[str, Any], description: str) -> dict[str, Any]:
        if payout["status"] != "COMMITTED":
            raise AirtmError(409, "INVALID_STATE", f"the payout is {payout['status']}")
        self._set(payout, "PENDING", reasonDescription=description)
        return payout

    def cancel_payout(self, payout: dict[str, Any]) -> dict[str, Any]:
        if payout["status"] not in ("CREATED", "PENDING"):
            raise AirtmError(409, "415055", f"cannot cancel a {payout['status']} payout")
        self._return_funds(payout)
        self._set(payout, "CANCELED")
        self.emit("payout.canceled", payout)
        return payout

    def _return_funds(self, payout: dict[str, Any]) -> None:
        if payout["_committed"]:
            self.state.pending -= payout["amount"]
            self.state.available += payout["amount"]
            payout["_committed"] = False


def build_router(sandbox: Sandbox, desk: AirtmDesk) -> APIRouter:
    router = APIRouter()

    def authorized(request: Request) -> bool:
        pair = f"{sandbox.config.airtm_api_key}:{sandbox.config.airtm_api_secret}"
        return request.headers.get("authorization") == "Basic " + base64.b64encode(pair.encode()).decode()

    async def guarded(request: Request, action: Any) -> Response:
        if not authorized(request):
            return JSONResponse({"code": "415904", "message": "Unauthorized request"}, status_code=401)
        async with sandbox.world.lock:
            desk.expire_payins()
            try:
                result = action()
            except AirtmError as exc:
                return exc.response()
            sandbox.world.commit()
        if isinstance(result, Response):
            return result
        return JSONResponse(desk.public(result) if isinstance(result, dict) and "code" in result else result)

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            data = json.loads(await request.body(), parse_float=Decimal)
        except ValueError:
            raise AirtmError(400, "415906", "the body must be JSON") from None
        if not isinstance(data, dict):
            raise AirtmError(400, "415906", "the body must be a JSON object")
        return data

    prefix = "/airtm/v2"

    @router.get(f"{prefix}/me")
    async def me(request: Request) -> Response:
        return await guarded(
            request,
            lambda: {
                "id": "sandbox-enterprise",
                "cancelPendingPayoutsAfterDays": 90,
                "payoutRequireIdVerification": False,
            },
        )

    @router.get(f"{prefix}/me/balance")
    async def balance(request: Request) -> Response:
        return await guarded(
            request, lambda: {"available": number(desk.state.available), "pending": number(desk.state.pending)}
        )

    @router.get(prefix + "/users/{email}")
    async def user(email: str, request: Request) -> Response:
        def lookup() -> dict[str, Any]:
            found = desk.state.users.get(email) or desk.user_by_email(email)
            if found is None:
                raise AirtmError(404, "415902", "user not found")
            return desk.user_public(found)

        return await guarded(request, lookup)

    @router.post(f"{prefix}/payins")
    async def create_payin(request: Request) -> Response:
        try:
            body = await body_of(request)
        except AirtmError as exc:
            return exc.response()
        return await guarded(request, lambda: desk.create_payin(body))

    @router.get(prefix + "/payins/by-code/{code}")
    async def payin_by_code(code: str, request: Request) -> Response:
        return await guarded(request, lambda: _by_code(desk, "payin", code))

    @router.get(prefix + "/payins/{payin_id}")
    async def get_payin(payin_id: str, request: Request) -> Response:
        return await guarded(request, lambda: _by_id(desk, "payin", payin_id))

    @router.delete(prefix + "/payins/{payin_id}")
    async def delete_payin(payin_id: str, request: Request) -> Response:
        return await guarded(request, lambda: desk.cancel_payin(_by_id(desk, "payin", payin_id)))

    @router.post(f"{prefix}/payouts")
    async def create_payout(request: Request) -> Response:
        try:
            body = await body_of(request)
        except AirtmError as exc:
            return exc.response()
        return await guarded(request, lambda: desk.create_payout(body))

    @router.post(prefix + "/payouts/{payout_id}/commit")
    async def commit_payout(payout_id: str, request: Request) -> Response:
        def commit() -> Response:
            desk.commit_payout(_by_id(desk, "payout", payout_id))
            return Response(status_code=204)

        return await guarded(request, commit)

    @router.get(prefix + "/payouts/by-code/{code}")
    async def payout_by_code(code: str, request: Request) -> Response:
        return await guarded(request, lambda: _by_code(desk, "payout", code))

    @router.get(prefix + "/payouts/{payout_id}")
    async def get_payout(payout_id: str, request: Request) -> Response:
        return await guarded(request, lambda: _by_id(desk, "payout", payout_id))

    @router.delete(prefix + "/payouts/{payout_id}")
    async def delete_payout(payout_id: str, request: Request) -> Response:
        return await guarded(request, lambda: desk.cancel_payout(_by_id(desk, "payout", payout_id)))

    @router.get("/airtm/checkout/payin/{payin_id}", response_class=HTMLResponse)
    async def checkout(payin_id: str) -> Response:
        payin = desk.state.payins.get(payin_id)
        if payin is None:
            return HTMLResponse("<h1>Pay-in not found</h1>", status_code=404)
        users = "".join(f'<option value="{html.escape(u["email"])}">' for u in desk.state.users.values())
        amount = f"{Decimal(payin['amount']) / 100:.2f}"
        page = f"""<!doctype html><html><head><title>Airtm sandbox checkout</title></head><body>
<h1>Pay {amount} USD</h1><p>{html.escape(payin["description"])} ({html.escape(payin["code"])})</p>
<p>Status: <strong>{payin["status"]}</strong></p>
<form method="post"><label>Airtm e-mail <input name="email" list="users" required></label>
<datalist id="users">{users}</datalist>
<button name="action" value="confirm">Confirm</button><button name="action" value="fail">Fail</button>
<button name="action" value="cancel" formnovalidate>Cancel</button></form></body></html>"""
        return HTMLResponse(page)

    @router.post("/airtm/checkout/payin/{payin_id}")
    async def checkout_submit(payin_id: str, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        async with sandbox.world.lock:
            payin = desk.state.payins.get(payin_id)
            if payin is None:
                return HTMLResponse("<h1>Pay-in not found</h1>", status_code=404)
            try:
                if form.get("action") == "cancel":
                    desk.cancel_payin(payin)
                else:
                    result = "CONFIRMED" if form.get("action") == "confirm" else "FAILED"
                    desk.confirm_payin(payin, form.get("email", ""), result, None)
                    desk.settle_payin(payin)
            except AirtmError as exc:
                return HTMLResponse(f"<h1>{html.escape(exc.message)}</h1>", status_code=409)
            sandbox.world.commit()
        target = payin["confirmationUri"] if payin["status"] == "CONFIRMED" else payin["cancelUri"]
        separator = "&" if "?" in target else "?"
        return RedirectResponse(f"{target}{separator}code={quote(payin['code'])}", status_code=303)

    return router


def _by_id(desk: AirtmDesk, kind: str, resource_id: str) -> dict[str, Any]:
    table = desk.state.payins if kind == "payin" else desk.state.payouts
    found = table.get(resource_id)
    if found is None:
        raise AirtmError(404, "415031" if kind == "payin" else "415005", f"{kind} not found")
    return found  # type: ignore[no-any-return]


def _by_code(desk: AirtmDesk, kind: str, code: str) -> dict[str, Any]:
    table = desk.state.payins if kind == "payin" else desk.state.payouts
    found = next((r for r in table.values() if r["code"] == code), None)
    if found is None:
        raise AirtmError(404, "415031" if kind == "payin" else "415005", f"{kind} not found")
    return found  # type: ignore[no-any-return]
