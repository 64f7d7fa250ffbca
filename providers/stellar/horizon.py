"""Horizon client (providers.md §2.7): accounts, submissions, transactions, payments, friendbot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from providers.errors import ProviderOutcomeUnknown, ProviderRejected, UnexpectedProviderData
from providers.http import ProviderHttp, json_body

PROVIDER = "stellar"
READ_TIMEOUT, SUBMIT_TIMEOUT = 15.0, 30.0


@dataclass(frozen=True)
class Submission:
    """A submission's answer: applied (ok or failed, sequence consumed), or rejected at admission."""

    applied: bool
    successful: bool
    tx_code: str
    op_codes: list[str] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)


class HorizonClient:
    def __init__(
        self, base_url: str, friendbot_url: str | None = None, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.http = ProviderHttp(PROVIDER, base_url, read_timeout=READ_TIMEOUT, transport=transport)
        self.friendbot_url = friendbot_url
        self.transport = transport

    async def close(self) -> None:
        await self.http.close()

    async def root(self) -> dict[str, Any]:
        response = await self.http.request("GET", "/", operation="root", has_effect=False)
        return dict(json_body(response, PROVIDER, "root"))

    async def account(self, account_id: str) -> dict[str, Any] | None:
        """The account resource, or None when it does not exist."""
        response = await self.http.request("GET", f"/accounts/{account_id}", operation="account", has_effect=False)
        if response.status_code == 404:
            return None
        self._expect_ok(response, "account")
        return dict(json_body(response, PROVIDER, "account"))

    async def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        response = await self.http.request("GET", f"/transactions/{tx_hash}", operation="transaction", has_effect=False)
        if response.status_code == 404:
            return None
        self._expect_ok(response, "transaction")
        return dict(json_body(response, PROVIDER, "transaction"))

    async def submit(self, envelope_xdr: str) -> Submission:
        response = await self.http.request(
            "POST",
            "/transactions",
            operation="submit",
            has_effect=True,
            timeout=SUBMIT_TIMEOUT,
            data={"tx": envelope_xdr},
        )
        body = json_body(response, PROVIDER, "submit")
        if response.status_code == 200:
            return Submission(True, bool(body.get("successful", True)), "tx_success", [], body)
        if response.status_code == 400 and str(body.get("type", "")).endswith("transaction_failed"):
            codes = body.get("extras", {}).get("result_codes", {})
            tx_code = str(codes.get("transaction", ""))
            applied = tx_code == "tx_failed"
            return Submission(applied, False, tx_code, list(codes.get("operations", [])), body)
        if response.status_code == 400 and str(body.get("type", "")).endswith("transaction_malformed"):
            return Submission(False, False, "transaction_malformed", [], body)
        if response.status_code == 504:
            raise ProviderOutcomeUnknown(
                "horizon submission timed out", provider=PROVIDER, operation="submit", http_status=504
            )
        raise ProviderRejected(
            f"horizon refused the submission ({response.status_code})",
            provider=PROVIDER,
            operation="submit",
            http_status=response.status_code,
        )

    async def payments(
        self, account_id: str, *, cursor: str | None, order: str = "asc", limit: int = 200, join: bool = True
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"order": order, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        if join:
            params["join"] = "transactions"
        response = await self.http.request(
            "GET", f"/accounts/{account_id}/payments", operation="payments", has_effect=False, params=params
        )
        if response.status_code == 404:
            return []
        self._expect_ok(response, "payments")
        body = json_body(response, PROVIDER, "payments")
        return list(body.get("_embedded", {}).get("records", []))

    async def friendbot(self, address: str) -> None:
        """Fund an account on a test network; an already funded account counts as success."""
        if not self.friendbot_url:
            raise ProviderRejected("no friendbot on this network", provider=PROVIDER, operation="friendbot")
        http = ProviderHttp(PROVIDER, self.friendbot_url, read_timeout=SUBMIT_TIMEOUT, transport=self.transport)
        try:
            response = await http.request("GET", "", operation="friendbot", has_effect=True, params={"addr": address})
        finally:
            await http.close()
        if response.status_code == 200:
            return
        body = json_body(response, PROVIDER, "friendbot")
        operations = body.get("extras", {}).get("result_codes", {}).get("operations", [])
        if "op_already_exists" in operations:
            return
        raise ProviderRejected(
            f"friendbot refused ({response.status_code})",
            provider=PROVIDER,
            operation="friendbot",
            http_status=response.status_code,
        )

    def _expect_ok(self, response: httpx.Response, operation: str) -> None:
        if response.status_code != 200:
            raise UnexpectedProviderData(
                f"horizon {operation} answered {response.status_code}",
                provider=PROVIDER,
                operation=operation,
                http_status=response.status_code,
            )


def usdc_balance_stroops(account: dict[str, Any], code: str, issuer: str) -> int | None:
    """The account's balance of an asset in stroops, None without a trustline."""
    from providers.money import stellar_amount_to_stroops

    for line in account.get("balances", []):
        if line.get("asset_code") == code and line.get("asset_issuer") == issuer:
            return stellar_amount_to_stroops(str(line["balance"]))
    return None
