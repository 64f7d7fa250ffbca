"""Trustless Work client (providers.md §3): raw endpoints. Builds answer unsigned
envelopes; `send_transaction` submits the signed ones; reads return escrows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from providers.errors import (
    ProviderNotFound,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    UnexpectedProviderData,
)
from providers.http import ProviderHttp, TokenBucket, json_body

PROVIDER = "trustless_work"
BUILD_TIMEOUT = 30.0  # providers.md §1.8
MAX_BUILD_TIMEOUT = 120.0
# Older deployments report contract rules as HTTP 500 with one of these messages.
RULE_MESSAGES = (
    "The escrow must be completed to release earnings",
    "Only the release signer can release the escrow earnings",
    "Only the approver can approve",
    "Only the service provider",
    "Only the dispute resolver",
    "The escrow is already in dispute",
    "Escrow not found",
)


@dataclass(frozen=True)
class SendResult:
    applied: bool
    successful: bool
    tx_code: str
    op_codes: list[str] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def contract_id(self) -> str | None:
        value = self.body.get("contractId")
        return str(value) if value else None


class TrustlessWorkClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        submit_timeout: float = 60.0,
        rate_per_minute: int = 45,
        transport: httpx.AsyncBaseTransport | None = None,
        build_timeout: float = BUILD_TIMEOUT,
    ) -> None:
        self.http = ProviderHttp(
            PROVIDER,
            base_url,
            read_timeout=BUILD_TIMEOUT,
            headers={"x-api-key": api_key},
            bucket=TokenBucket(rate_per_minute, 60.0),
            transport=transport,
        )
        self.submit_timeout = submit_timeout
        # A build has no effect at the provider, so waiting longer is always safe: after a build
        # timed out, the next ones wait twice as long (up to MAX_BUILD_TIMEOUT), and back to the
        # base once a build answers within half of it. A provider that is slow but working is
        # waited for instead of being timed out forever.
        self.base_build_timeout = build_timeout
        self.build_timeout = build_timeout

    async def close(self) -> None:
        await self.http.close()

    async def build(self, path: str, body: dict[str, Any], *, operation: str) -> str:
        """POST a build call; the unsigned transaction (base64 XDR) it answers."""
        started = time.monotonic()
        try:
            response = await self.http.request(
                "POST",
                path,
                operation=operation,
                has_effect=False,
                json=body,
                check_5xx=False,
                timeout=self.build_timeout,
            )
        except ProviderTimeout:
            self.build_timeout = min(self.build_timeout * 2, max(MAX_BUILD_TIMEOUT, self.base_build_timeout))
            raise
        if time.monotonic() - started < self.base_build_timeout / 2:
            self.build_timeout = self.base_build_timeout
        data = self._parse(response, operation)
        if response.status_code in (200, 201) and isinstance(data, dict) and data.get("unsignedTransaction"):
            return str(data["unsignedTransaction"])
        raise UnexpectedProviderData(
            f"trustless work {operation} answered without a transaction",
            provider=PROVIDER,
            operation=operation,
            http_status=response.status_code,
        )

    async def send_transaction(self, signed_xdr: str) -> SendResult:
        response = await self.http.request(
            "POST",
            "/helper/send-transaction",
            operation="send_transaction",
            has_effect=True,
            timeout=self.submit_timeout,
            json={"signedXdr": signed_xdr},
        )
        body = json_body(response, PROVIDER, "send_transaction")
        if response.status_code == 200 and body.get("status") == "SUCCESS":
            return SendResult(True, True, "tx_success", [], body)
        if response.status_code == 400 and isinstance(body, dict):
            extensions = body.get("extensions") or {}
            codes = extensions.get("result_codes") or {}
            if codes:
                tx_code = str(codes.get("transaction", ""))
                return SendResult(tx_code == "tx_failed", False, tx_code, list(codes.get("operations", [])), body)
            if body.get("code") == "TRANSACTION_MALFORMED":
                return SendResult(False, False, "transaction_malformed", [], body)
        # a failure without result codes: we cannot know whether it landed
        raise ProviderOutcomeUnknown(
            f"trustless work send-transaction answered {response.status_code}",
            provider=PROVIDER,
            operation="send_transaction",
            http_status=response.status_code,
        )

    async def get_escrow(self, escrow_type: str, contract_id: str, signer: str) -> dict[str, Any]:
        response = await self.http.request(
            "GET",
            f"/escrow/{escrow_type}/get-escrow",
            operation="get_escrow",
            has_effect=False,
            params={"contractId": contract_id, "signer": signer},
        )
        return dict(self._parse(response, "get_escrow"))

    async def escrows_by_contract_ids(self, contract_ids: list[str]) -> list[dict[str, Any]]:
        response = await self.http.request(
            "GET",
            "/helper/get-escrow-by-contract-ids",
            operation="get_escrows",
            has_effect=False,
            params=[("contractIds[]", c) for c in contract_ids],
        )
        return list(self._parse(response, "get_escrows"))

    async def escrows_by_signer(self, signer: str) -> list[dict[str, Any]]:
        response = await self.http.request(
            "GET",
            "/helper/get-escrows-by-signer",
            operation="get_escrows_by_signer",
            has_effect=False,
            params={"signer": signer},
        )
        return list(self._parse(response, "get_escrows_by_signer"))

    def _parse(self, response: httpx.Response, operation: str) -> Any:
        body = json_body(response, PROVIDER, operation)
        status = response.status_code
        if status < 400:
            return body
        code = body.get("code") if isinstance(body, dict) else None
        detail = str(body.get("detail") or body.get("message") or "") if isinstance(body, dict) else ""
        if status >= 500:
            if any(message.lower() in detail.lower() for message in RULE_MESSAGES):
                raise ProviderRejected(detail, provider=PROVIDER, operation=operation, http_status=status)
            raise ProviderUnavailable(
                f"trustless work {operation} answered {status}",
                provider=PROVIDER,
                operation=operation,
                http_status=status,
            )
        if status == 404:
            raise ProviderNotFound(
                detail or "not found", provider=PROVIDER, operation=operation, http_status=404, provider_code=code
            )
        raise ProviderRejected(
            detail or f"refused ({status})",
            provider=PROVIDER,
            operation=operation,
            http_status=status,
            provider_code=code,
        )
