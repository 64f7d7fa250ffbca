"""The sandbox's outbound webhooks: an outbox delivered in order per provider, retried
with backoff, with the same event ID and body on every attempt (Airtm attempts re-signed
with the current timestamp, as Svix does), and the webhook faults of §5.9."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import random
import time
from typing import Any

import httpx

from sandbox.world import Webhook, World

DEFAULT_SETTINGS: dict[str, Any] = {
    "enabled": True,
    "max_attempts": 8,
    "backoff_ms": [250, 500, 1000, 2000, 4000, 8000, 16000],
    "timeout_ms": 5000,
}


def tw_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def svix_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


MIN_IDLE_SECONDS, MAX_IDLE_SECONDS = 0.05, 0.5  # settings and faults changed by the control API apply within this


class Outbox:
    def __init__(self, world: World) -> None:
        self.world = world
        self.paused = False
        self.wake = asyncio.Event()
        self.faults: dict[str, Any] = {}
        self._rngs: dict[str, random.Random] = {}

    @property
    def settings(self) -> dict[str, Any]:
        return {**DEFAULT_SETTINGS, **self.world.state.settings.webhooks}

    def set_faults(self, config: dict[str, Any], seed: str) -> None:
        self.faults = config
        self._rngs = {provider: random.Random(f"{seed}:webhooks:{provider}") for provider in ("tw", "airtm")}

    def enqueue(
        self, provider: str, event_type: str, body: dict[str, Any], event_id: str, resource_id: str | None
    ) -> Webhook:
        """Called with the world lock held, inside the effect that caused the event."""
        now = time.monotonic()
        delay = self._fault_delay(provider)
        webhook = Webhook(
            id="whk_" + self.world.next_bytes("webhook-id", 10).hex(),
            provider=provider,
            event_id=event_id,
            event_type=event_type,
            resource_id=resource_id,
            body=body,
            next_attempt_at=now + delay,
            enqueued_at=now,
        )
        self.world.state.webhooks.append(webhook)
        fault = self.faults.get(provider, {})
        rng = self._rngs.get(provider)
        if rng is not None and rng.random() < float(fault.get("duplicate_probability", 0)):
            twin = Webhook(
                id="whk_" + self.world.next_bytes("webhook-id", 10).hex(),
                provider=provider,
                event_id=event_id,
                event_type=event_type,
                resource_id=resource_id,
                body=body,
                next_attempt_at=now + delay + float(fault.get("duplicate_delay_ms", 100)) / 1000,
                enqueued_at=now,
            )
            self.world.state.webhooks.append(twin)
        self.wake.set()
        return webhook

    def _fault_delay(self, provider: str) -> float:
        fault = self.faults.get(provider, {})
        rng = self._rngs.get(provider)
        delay = fault.get("delay_ms")
        if rng is None or delay is None:
            return 0.0
        if isinstance(delay, list):
            return rng.uniform(float(delay[0]), float(delay[1])) / 1000
        return float(delay) / 1000

    def _due(self) -> list[Webhook]:
        now = time.monotonic()
        pending = [w for w in self.world.state.webhooks if w.status == "PENDING"]
        due: list[Webhook] = []
        for provider in ("tw", "airtm"):
            queue = [w for w in pending if w.provider == provider]
            fault = self.faults.get(provider, {})
            if fault.get("reorder") and queue:
                window = float(fault.get("reorder_window_ms", 500)) / 1000
                first = queue[0]
                group = [w for w in queue if w.enqueued_at - first.enqueued_at <= window]
                if now - first.enqueued_at < window:
                    continue  # wait for the window to fill, then send newest first
                queue = list(reversed(group)) + queue[len(group) :]
            if queue and queue[0].next_attempt_at <= now:
                due.append(queue[0])  # one at a time per provider: commit order
        return due

    async def run(self) -> None:
        async with httpx.AsyncClient() as client:
            while True:
                if not self.paused and self.settings.get("enabled", True):
                    for webhook in self._due():
                        await self._attempt(client, webhook)
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    # asleep until the next attempt is due or a new webhook arrives, not polling
                    await asyncio.wait_for(self.wake.wait(), timeout=self._idle_seconds())

    def _idle_seconds(self) -> float:
        pending = [w.next_attempt_at for w in self.world.state.webhooks if w.status == "PENDING"]
        if not pending:
            return MAX_IDLE_SECONDS
        return min(MAX_IDLE_SECONDS, max(MIN_IDLE_SECONDS, min(pending) - time.monotonic()))

    async def _attempt(self, client: httpx.AsyncClient, webhook: Webhook) -> None:
        settings = self.settings
        url = settings.get("tw_url") if webhook.provider == "tw" else settings.get("airtm_url")
        raw = json.dumps(webhook.body, separators=(",", ":"), default=str).encode()
        headers = {"Content-Type": "application/json"}
        if webhook.provider == "tw":
            headers["X-TW-Signature"] = tw_signature(str(settings.get("tw_secret", "")), raw)
        else:
            timestamp = int(time.time())  # signatures use the real clock
            headers.update(
                {
                    "svix-id": webhook.event_id,
                    "svix-timestamp": str(timestamp),
                    "svix-signature": svix_signature(
                        str(settings.get("airtm_secret", "")), webhook.event_id, timestamp, raw
                    ),
                }
            )
        started = time.monotonic()
        entry: dict[str, Any] = {"at": self.world.now_iso(), "status_code": None, "error": None, "duration_ms": 0}
        fault = self.faults.get(webhook.provider, {})
        rng = self._rngs.get(webhook.provider)
        dropped = (
            not webhook.attempts
            and rng is not None
            and rng.random() < float(fault.get("drop_first_attempt_probability", 0))
        )
        if dropped:
            entry["error"] = "dropped by fault injection"
        elif not url:
            entry["error"] = "no webhook URL configured"
        else:
            try:
                response = await client.post(url, content=raw, headers=headers, timeout=settings["timeout_ms"] / 1000)
                entry["status_code"] = response.status_code
            except httpx.HTTPError as exc:
                entry["error"] = type(exc).__name__
        entry["duration_ms"] = round((time.monotonic() - started) * 1000)
        async with self.world.lock:
            webhook.attempts.append(entry)
            code = entry["status_code"]
            if code is not None and 200 <= code < 300:
                webhook.status = "DELIVERED"
            elif len(webhook.attempts) >= int(settings["max_attempts"]):
                webhook.status = "FAILED"
            else:
                backoff = settings["backoff_ms"]
                step = backoff[min(len(webhook.attempts) - 1, len(backoff) - 1)]
                webhook.next_attempt_at = time.monotonic() + step / 1000
            self.world.commit()

    async def flush(self, timeout_ms: int) -> dict[str, int]:
        deadline = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < deadline:
            pending = [w for w in self.world.state.webhooks if w.status == "PENDING"]
            if not pending or self.paused:
                break
            for webhook in pending:
                webhook.next_attempt_at = min(webhook.next_attempt_at, time.monotonic())
            self.wake.set()
            await asyncio.sleep(0.02)
        counts = {"delivered": 0, "failed": 0, "pending": 0}
        for webhook in self.world.state.webhooks:
            counts[webhook.status.lower()] = counts.get(webhook.status.lower(), 0) + 1
        return counts

    def view(self, webhook: Webhook) -> dict[str, Any]:
        url = self.settings.get("tw_url") if webhook.provider == "tw" else self.settings.get("airtm_url")
        remaining = max(0.0, webhook.next_attempt_at - time.monotonic()) if webhook.status == "PENDING" else None
        return {
            "id": webhook.id,
            "provider": webhook.provider,
            "event_id": webhook.event_id,
            "event_type": webhook.event_type,
            "resource_id": webhook.resource_id,
            "url": url,
            "status": webhook.status,
            "attempts": list(webhook.attempts),
            "next_attempt_at": None if remaining is None else round(self.world.now() + remaining, 3),
            "body": webhook.body,
        }
