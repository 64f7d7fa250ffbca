"""Shared HTTP plumbing for provider clients: one `httpx.AsyncClient` per provider and
process, the timeouts of providers.md §1.8, a client-side token bucket, and the mapping of
transport failures onto typed errors. No retries here: retries belong to Temporal."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx

from providers.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from settings import VERSION

log = logging.getLogger("offerhub.providers")
USER_AGENT = f"offerhub-orchestrator/{VERSION}"
LONG_ID = re.compile(r"[A-Za-z0-9_-]{21,}")


class TokenBucket:
    """Stay under a provider's rate limit: `rate` requests per `per` seconds, bursts included."""

    def __init__(self, rate: float, per: float) -> None:
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.fill_rate = rate / per
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self) -> None:
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.fill_rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.fill_rate)


def masked_path(path: str) -> str:
    """IDs longer than 20 characters are masked in logs."""
    return LONG_ID.sub(lambda m: m.group(0)[:4] + "…", path)


class ProviderHttp:
    """One provider's HTTP client."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        read_timeout: float,
        headers: Mapping[str, str] | None = None,
        bucket: TokenBucket | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(read_timeout, connect=5.0),
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            transport=transport,
        )
        self.bucket = bucket

    async def close(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        has_effect: bool,
        timeout: float | None = None,
        request_id: str | None = None,
        check_5xx: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request; transport failures and 429/5xx/401 become typed errors.

        `has_effect` marks calls that may change provider state: their ambiguous endings are
        `ProviderOutcomeUnknown`, so the retry resolves the outcome before acting again.
        `check_5xx=False` hands 5xx answers to the caller (Trustless Work reports some contract
        rules as 500 with a message).
        """
        if self.bucket is not None:
            await self.bucket.take()
        headers = dict(kwargs.pop("headers", {}) or {})
        if request_id:
            headers["X-Request-ID"] = request_id
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=5.0)
        started = time.monotonic()
        unknown: type[ProviderError] | None = ProviderOutcomeUnknown if has_effect else None
        try:
            response = await self.client.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            cls: type[ProviderError] = unknown or ProviderTimeout
            raise cls(f"{self.provider} {operation} timed out", provider=self.provider, operation=operation) from exc
        except httpx.TransportError as exc:
            cls = unknown or ProviderUnavailable
            raise cls(
                f"{self.provider} {operation} unreachable ({type(exc).__name__})",
                provider=self.provider,
                operation=operation,
            ) from exc
        finally:
            log.debug(
                "provider call",
                extra={
                    "provider": self.provider,
                    "method": method,
                    "path": masked_path(path),
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
        status = response.status_code
        if status == 429:
            retry_after = float(response.headers.get("retry-after") or 2)
            raise ProviderRateLimited(
                f"{self.provider} {operation} rate limited",
                retry_after=retry_after,
                provider=self.provider,
                operation=operation,
                http_status=429,
            )
        if status == 401:
            raise ProviderAuthError(
                f"{self.provider} refused the credentials", provider=self.provider, operation=operation, http_status=401
            )
        if status >= 500 and check_5xx:
            cls = unknown or ProviderUnavailable
            raise cls(
                f"{self.provider} {operation} answered {status}",
                provider=self.provider,
                operation=operation,
                http_status=status,
            )
        return response


def json_body(response: httpx.Response, provider: str, operation: str, *, decimals: bool = True) -> Any:
    """Parse a provider JSON body; numbers stay exact (`Decimal`)."""
    import json
    from decimal import Decimal

    try:
        return json.loads(response.content, parse_float=Decimal if decimals else float)
    except ValueError as exc:
        from providers.errors import UnexpectedProviderData

        raise UnexpectedProviderData(
            f"{provider} {operation} answered a body that is not JSON",
            provider=provider,
            operation=operation,
            http_status=response.status_code,
        ) from exc


__all__ = ["ProviderError", "ProviderHttp", "TokenBucket", "json_body", "masked_path"]
