"""Fault injection (providers.md §5.9) and the request log, as one ASGI middleware.

Rules match by target, method and path glob; each draws from its own seeded RNG, so the
same seed and request order affect the same requests. `error` and `timeout` never reach
the handler (no state change); `drop_after_effect` lets the handler commit, then loses
the answer. Control and checkout paths are never faulted.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.world import World

TARGETS = (("/horizon", "horizon"), ("/friendbot", "friendbot"), ("/tw", "tw"), ("/airtm/v2", "airtm"))
ACTIONS = ("latency_only", "error", "timeout", "drop_after_effect", "fail_transaction", "forge_envelope")
# Set while a `fail_transaction` rule handles a request: the engine applies the submitted
# transaction as failed (sequence and fee consumed, no effect), as a contract that traps would.
FAILING_OPERATION: ContextVar[str | None] = ContextVar("failing_operation", default=None)
# Set while a `forge_envelope` rule handles a Trustless Work build: the call is prepared as
# usual, but the answered envelope moves the signer's USDC to another account instead, as a
# compromised provider would (the orchestrator must refuse to sign it).
FORGING_ENVELOPE: ContextVar[bool] = ContextVar("forging_envelope", default=False)
MAX_LOG = 5000


def split_target(path: str) -> tuple[str | None, str]:
    for prefix, target in TARGETS:
        if path == prefix or path.startswith(prefix + "/") or (prefix == "/friendbot" and path.startswith(prefix)):
            return target, path[len(prefix) :] or "/"
    return None, path


def glob_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for segment in pattern.strip("/").split("/"):
        if segment == "**":
            parts.append(".*")
        else:
            parts.append(re.escape(segment).replace(r"\*", "[^/]+"))
    return re.compile("^/" + "/".join(parts) + "/?$")


class FaultConfigError(ValueError):
    pass


@dataclass
class Rule:
    id: str
    target: str
    path: str
    action: str
    method: str | None = None
    after: int = 0
    times: int | None = None
    probability: float = 1.0
    latency_ms: int | list[int] | None = None
    status: int = 503
    retry_after_s: int | None = None
    hold_ms: int = 30_000
    drop_mode: str = "hang"
    op_code: str = "invoke_host_function_trapped"  # fail_transaction: the operation result code
    matched: int = 0
    fired: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    regex: re.Pattern[str] = field(default_factory=lambda: re.compile("$^"), repr=False)

    def public(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("rng", "regex")}
        return data


def parse_rules(config: dict[str, Any], seed: str) -> list[Rule]:
    rules: list[Rule] = []
    seen: set[str] = set()
    for raw in config.get("rules", []):
        if not isinstance(raw, dict) or not raw.get("id") or raw.get("target") not in {t for _, t in TARGETS}:
            raise FaultConfigError("each rule needs a unique id and a target of horizon, friendbot, tw, airtm")
        if raw["id"] in seen:
            raise FaultConfigError(f"duplicate rule id {raw['id']}")
        seen.add(raw["id"])
        action = raw.get("action", "error")
        if action not in ACTIONS:
            raise FaultConfigError(f"unknown action {action}")
        status = int(raw.get("status", 503))
        if action == "error" and status not in (429, 500, 502, 503, 504):
            raise FaultConfigError("error status must be 429, 500, 502, 503 or 504")
        allowed = set(Rule.__dataclass_fields__) - {"matched", "fired", "rng", "regex"}
        unknown = set(raw) - allowed
        if unknown:
            raise FaultConfigError(f"unknown rule fields {sorted(unknown)}")
        rule = Rule(**{k: v for k, v in raw.items() if k in allowed})
        rule.path = rule.path or "/**"
        rule.rng = random.Random(f"{seed}:{rule.id}")
        rule.regex = glob_regex(rule.path)
        rules.append(rule)
    return rules


class Faults:
    def __init__(self, world: World) -> None:
        self.world = world
        self.config: dict[str, Any] = {"seed": world.state.seed, "rules": [], "webhooks": {}}
        self.rules: list[Rule] = []
        self.version = 0
        self.log: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._request_counter = 0

    def configure(self, config: dict[str, Any]) -> None:
        seed = str(config.get("seed") or self.world.state.seed)
        rules = parse_rules(config, seed)
        self.config = {"seed": seed, "rules": config.get("rules", []), "webhooks": config.get("webhooks", {})}
        self.rules = rules
        self.version += 1

    def clear(self) -> None:
        self.configure({"rules": [], "webhooks": {}})

    def view(self) -> dict[str, Any]:
        return {**self.config, "version": self.version, "state": [rule.public() for rule in self.rules]}

    def pick(self, target: str, method: str, path: str) -> tuple[Rule | None, float]:
        """The rule that fires for this request (if any) and the latency to add."""
        for rule in self.rules:
            if rule.target != target or (rule.method and rule.method.upper() != method) or not rule.regex.match(path):
                continue
            rule.matched += 1
            if rule.matched <= rule.after or (rule.times is not None and rule.fired >= rule.times):
                continue
            draw = rule.rng.random()
            latency = 0.0
            if isinstance(rule.latency_ms, list):
                latency = rule.rng.uniform(float(rule.latency_ms[0]), float(rule.latency_ms[1]))
            elif rule.latency_ms:
                latency = float(rule.latency_ms)
            if draw < rule.probability:
                rule.fired += 1
                return rule, latency / 1000
            return None, 0.0
        return None, 0.0

    def next_request_id(self) -> str:
        self._request_counter += 1
        return f"sbx_{self._request_counter:08d}"

    def record(self, entry: dict[str, Any], log: list[dict[str, Any]]) -> None:
        log.append(entry)
        if len(log) > MAX_LOG:
            del log[: len(log) - MAX_LOG]


def error_body(target: str, status: int) -> tuple[bytes, str]:
    titles = {
        429: "Rate Limit Exceeded",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Timeout",
    }
    title = titles.get(status, "Error")
    if target == "airtm":
        return json.dumps({"code": str(status), "message": title}).encode(), "application/json"
    if target == "tw":
        problem = {"type": "about:blank", "title": title, "status": status, "code": "SANDBOX_FAULT", "detail": title}
        return json.dumps(problem).encode(), "application/problem+json"
    kind = {429: "rate_limit_exceeded", 504: "timeout"}.get(status, "server_error")
    problem = {"type": f"https://stellar.org/horizon-errors/{kind}", "title": title, "status": status, "detail": title}
    return json.dumps(problem).encode(), "application/problem+json"


class FaultMiddleware:
    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        faults = self.faults
        request_id = faults.next_request_id()
        target, rel_path = split_target(scope["path"])
        method = scope["method"]
        started = time.monotonic()
        rule, latency = faults.pick(target, method, rel_path) if target else (None, 0.0)
        if latency:
            await asyncio.sleep(latency)  # outside the state lock: other requests proceed
        status_box = {"status": 0}
        x_request_id = next((v.decode() for k, v in scope["headers"] if k == b"x-request-id"), None)

        async def send_tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-sandbox-request-id", request_id.encode())]
            await send(message)

        effect_applied = rule is None or rule.action in (
            "latency_only",
            "drop_after_effect",
            "fail_transaction",
            "forge_envelope",
        )
        if rule is not None and rule.action in ("error", "timeout"):
            if rule.action == "timeout":
                await asyncio.sleep(rule.hold_ms / 1000)
                status = 504
            else:
                status = rule.status
            await self._answer(send_tagged, target or "", status, rule.retry_after_s if status in (429, 503) else None)
        elif rule is not None and rule.action == "drop_after_effect":
            await self.app(scope, receive, _discard)
            if rule.drop_mode == "error":
                await self._answer(send_tagged, target or "", 502, None)
            else:
                await asyncio.sleep(rule.hold_ms / 1000)
                await self._answer(send_tagged, target or "", 504, None)
        elif rule is not None and rule.action == "fail_transaction":
            token = FAILING_OPERATION.set(rule.op_code)
            try:
                await self.app(scope, receive, send_tagged)
            finally:
                FAILING_OPERATION.reset(token)
        elif rule is not None and rule.action == "forge_envelope":
            forging = FORGING_ENVELOPE.set(True)
            try:
                await self.app(scope, receive, send_tagged)
            finally:
                FORGING_ENVELOPE.reset(forging)
        else:
            await self.app(scope, receive, send_tagged)
        if target is not None:
            faults.record(
                {
                    "request_id": request_id,
                    "at": faults.world.now_iso(),
                    "target": target,
                    "method": method,
                    "path": rel_path,
                    "status": status_box["status"],
                    "duration_ms": round((time.monotonic() - started) * 1000),
                    "fault_rule_id": rule.id if rule else None,
                    "effect_applied": effect_applied,
                    "x_request_id": x_request_id,
                },
                faults.requests,
            )
        if rule is not None:
            faults.record(
                {
                    "seq": len(faults.log) + 1,
                    "at": faults.world.now_iso(),
                    "rule_id": rule.id,
                    "target": target,
                    "method": method,
                    "path": rel_path,
                    "action": rule.action,
                    "status": status_box["status"],
                    "effect_applied": effect_applied,
                    "request_id": request_id,
                },
                faults.log,
            )

    async def _answer(self, send: Send, target: str, status: int, retry_after: int | None) -> None:
        body, media = error_body(target, status)
        headers = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
        if retry_after is not None:
            headers.append((b"retry-after", str(retry_after).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _discard(message: Message) -> None:
    return None
