"""Airtm Enterprise client (providers.md §4): users, pay-ins, payouts with commit.

Creation is exactly-once through our resource ID as Airtm's `code`: read by code first,
create if absent, and on a duplicate-code answer or an unknown outcome read by code again.
"""

from __future__ import annotations

import base64
import contextlib
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from providers.errors import (
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderOutcomeUnknown,
    ProviderRejected,
    UnexpectedProviderData,
)
from providers.http import ProviderHttp, TokenBucket, json_body
from providers.money import cents_to_json_number, json_number_to_cents

PROVIDER = "airtm"
DUPLICATE_CODES = {"415029", "415056"}
ALREADY_PROCESSED = {"415027", "415030", "415032", "415055"}


class AirtmClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        api_secret: str,
        *,
        timeout: float = 30.0,
        rate_per_second: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
        self.http = ProviderHttp(
            PROVIDER,
            base_url,
            read_timeout=timeout,
            headers={"Authorization": f"Basic {token}"},
            bucket=TokenBucket(rate_per_second, 1.0),
            transport=transport,
        )

    async def close(self) -> None:
        await self.http.close()

    async def _call(self, method: str, path: str, operation: str, *, has_effect: bool, **kw: Any) -> Any:
        response = await self.http.request(method, path, operation=operation, has_effect=has_effect, **kw)
        if response.status_code == 204:
            return None
        body = json_body(response, PROVIDER, operation)
        if response.status_code < 400:
            return body
        code = str(body.get("code", "")) if isinstance(body, dict) else ""
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
        if response.status_code == 404:
            raise ProviderNotFound(
                message or "not found", provider=PROVIDER, operation=operation, http_status=404, provider_code=code
            )
        if code in DUPLICATE_CODES or code in ALREADY_PROCESSED:
            raise ProviderConflict(
                message, provider=PROVIDER, operation=operation, http_status=response.status_code, provider_code=code
            )
        raise ProviderRejected(
            message or f"refused ({response.status_code})",
            provider=PROVIDER,
            operation=operation,
            http_status=response.status_code,
            provider_code=code,
        )

    async def me(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/me", "me", has_effect=False))

    async def user_by_email(self, email: str) -> dict[str, Any] | None:
        try:
            return dict(await self._call("GET", f"/users/{quote(email, safe='')}", "user", has_effect=False))
        except ProviderNotFound:
            return None

    # pay-ins ----------------------------------------------------------------------------

    async def payin(self, payin_id: str) -> dict[str, Any]:
        return dict(await self._call("GET", f"/payins/{payin_id}", "payin_read", has_effect=False))

    async def payin_by_code(self, code: str) -> dict[str, Any] | None:
        try:
            return dict(await self._call("GET", f"/payins/by-code/{quote(code)}", "payin_read", has_effect=False))
        except ProviderNotFound:
            return None

    async def create_payin_once(self, body: dict[str, Any]) -> dict[str, Any]:
        """The pay-in with `body["code"]`, created at most once whatever the retries."""
        code = str(body["code"])
        found = await self.payin_by_code(code)
        if found is None:
            try:
                found = dict(await self._call("POST", "/payins", "payin_create", has_effect=True, json=body))
            except (ProviderConflict, ProviderOutcomeUnknown) as exc:
                if isinstance(exc, ProviderConflict) and exc.provider_code not in DUPLICATE_CODES:
                    raise
                found = await self.payin_by_code(code)
                if found is None:
                    raise
        _expect_amount(found, body["amount"], "payin_create")
        return found

    async def cancel_payin(self, payin_id: str) -> dict[str, Any]:
        """Cancel; when Airtm says it can no longer be canceled, the state read decides."""
        try:
            return dict(await self._call("DELETE", f"/payins/{payin_id}", "payin_cancel", has_effect=True))
        except (ProviderConflict, ProviderOutcomeUnknown):
            return await self.payin(payin_id)

    # payouts --------------------------------------------------------------------------

    async def payout(self, payout_id: str) -> dict[str, Any]:
        return dict(await self._call("GET", f"/payouts/{payout_id}", "payout_read", has_effect=False))

    async def payout_by_code(self, code: str) -> dict[str, Any] | None:
        try:
            return dict(await self._call("GET", f"/payouts/by-code/{quote(code)}", "payout_read", has_effect=False))
        except ProviderNotFound:
            return None

    async def create_payout_once(self, body: dict[str, Any]) -> dict[str, Any]:
        code = str(body["code"])
        found = await self.payout_by_code(code)
        if found is None:
            try:
                found = dict(await self._call("POST", "/payouts", "payout_create", has_effect=True, json=body))
            except (ProviderConflict, ProviderOutcomeUnknown) as exc:
                if isinstance(exc, ProviderConflict) and exc.provider_code not in DUPLICATE_CODES:
                    raise
                found = await self.payout_by_code(code)
                if found is None:
                    raise
        _expect_amount(found, body["amount"], "payout_create")
        if str(found.get("airtmUserEmail", "")).lower() != str(body.get("airtmUserEmail", "")).lower():
            raise UnexpectedProviderData(
                "payout found by code has another recipient", provider=PROVIDER, operation="payout_create"
            )
        return found

    async def commit_payout(self, payout_id: str) -> dict[str, Any]:
        """Commit (204), then read; "already processed" answers lead to the read too."""
        with contextlib.suppress(ProviderConflict):
            await self._call("POST", f"/payouts/{payout_id}/commit", "payout_commit", has_effect=True)
        return await self.payout(payout_id)

    async def cancel_payout(self, payout_id: str) -> dict[str, Any]:
        try:
            return dict(await self._call("DELETE", f"/payouts/{payout_id}", "payout_cancel", has_effect=True))
        except (ProviderConflict, ProviderOutcomeUnknown):
            return await self.payout(payout_id)


def _expect_amount(resource: dict[str, Any], requested: Any, operation: str) -> None:
    expected = json_number_to_cents(Decimal(str(requested)), max_decimals=2)
    if json_number_to_cents(resource.get("amount", 0), max_decimals=2) != expected:
        raise UnexpectedProviderData(
            f"{operation}: the resource found by code has another amount", provider=PROVIDER, operation=operation
        )


def payin_body(topup_id: str, amount_cents: int, description: str, public_base_url: str) -> dict[str, Any]:
    callback = f"{public_base_url.rstrip('/')}/api/v1/topups/{topup_id}/callback"
    amount = cents_to_json_number(amount_cents)
    return {
        "code": topup_id,
        "amount": amount,
        "description": description[:250],
        "items": [{"description": description[:250], "amount": amount, "quantity": 1}],
        "confirmationUri": f"{callback}?status=confirmed",
        "cancelUri": f"{callback}?status=canceled",
    }


__all__ = ["AirtmClient", "ProviderError", "payin_body"]
