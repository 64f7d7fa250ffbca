"""`GET /metrics` (operations.md §4): Prometheus text for the API process.

Request count and latency by route template and status (an ASGI middleware, so errors and
refusals count too); the ledger totals of domain.md §3.5 (`IN`, `OUT`, `ESC`, `A`, `R`) and
the outbox lag read from PostgreSQL at scrape time; SSE streams open in this process; the
last reconciliation run. Each app has its own registry (several apps may live in one test
process). Temporal SDK metrics come from the worker's own exporter (docs/operators.md).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.policy import API_PREFIX, Access, GuardedRoute, ServicesDep, policy
from api.services import Services
from models.errors import ErrorCode, OfferhubError

LEDGER_TOTALS = """
SELECT
  coalesce(sum(amount) FILTER (WHERE entry_type = 'DEPOSIT'), 0) AS "in",
  coalesce(sum(amount) FILTER (WHERE entry_type = 'WITHDRAWAL_PAYOUT'), 0) AS "out",
  coalesce(sum(amount) FILTER (WHERE entry_type = 'ESCROW_FUND'), 0)
    - coalesce(sum(amount) FILTER (WHERE entry_type IN ('ESCROW_RELEASE', 'ESCROW_REFUND')), 0) AS esc,
  (SELECT coalesce(sum(available), 0) FROM balances) AS a,
  (SELECT coalesce(sum(reserved), 0) FROM balances) AS r
FROM ledger_entries
"""
OUTBOX_LAG = """
SELECT
  coalesce(extract(epoch FROM now() - min(occurred_at) FILTER (WHERE seq IS NULL)), 0) AS unsequenced,
  coalesce(extract(epoch FROM now() - min(occurred_at) FILTER (WHERE relayed_at IS NULL)), 0) AS unrelayed
FROM events
WHERE seq IS NULL OR relayed_at IS NULL
"""
LAST_RECONCILIATION = (
    "SELECT status, jsonb_array_length(findings) AS findings FROM reconciliation_runs ORDER BY id DESC LIMIT 1"
)
RECONCILIATION_STATUSES = ("RUNNING", "OK", "FINDINGS", "ERROR")


class ApiMetrics:
    """The metrics of one API app, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "offerhub_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "offerhub_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            registry=self.registry,
        )
        self.ledger = Gauge(
            "offerhub_ledger_total_cents",
            "Ledger totals of domain.md 3.5: in (deposits), out (payouts), esc (in funded escrows), "
            "a (available), r (reserved)",
            ["total"],
            registry=self.registry,
        )
        self.outbox_lag = Gauge(
            "offerhub_outbox_lag_seconds",
            "Age of the oldest event not yet sequenced (stage=sequence) or not yet relayed to webhooks (stage=relay)",
            ["stage"],
            registry=self.registry,
        )
        self.sse_streams = Gauge(
            "offerhub_sse_streams_open", "Event streams open in this API process", registry=self.registry
        )
        self.reconciliation = Gauge(
            "offerhub_reconciliation_last_status",
            "1 for the status of the last reconciliation run",
            ["status"],
            registry=self.registry,
        )
        self.findings = Gauge(
            "offerhub_reconciliation_last_findings", "Findings of the last reconciliation run", registry=self.registry
        )

    async def refresh(self, services: Services, streams_open: int) -> None:
        """Read what lives in PostgreSQL; a database that does not answer leaves the last values."""
        async with services.sessions() as session:
            totals = (await session.execute(text(LEDGER_TOTALS))).mappings().one()
            lag = (await session.execute(text(OUTBOX_LAG))).mappings().one()
            last = (await session.execute(text(LAST_RECONCILIATION))).mappings().first()
        for name in ("in", "out", "esc", "a", "r"):
            self.ledger.labels(total=name).set(int(totals[name]))
        self.outbox_lag.labels(stage="sequence").set(float(lag["unsequenced"]))
        self.outbox_lag.labels(stage="relay").set(float(lag["unrelayed"]))
        self.sse_streams.set(streams_open)
        for status in RECONCILIATION_STATUSES:
            self.reconciliation.labels(status=status).set(1 if last is not None and last["status"] == status else 0)
        self.findings.set(int(last["findings"] or 0) if last is not None else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetricsMiddleware:
    """Counts and times every request by its route template (`/api/v1/orders/{order_id}`),
    so IDs never become label values; requests matching no route count as `unmatched`."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = _template(scope)
            method = scope["method"]
            self.metrics.requests.labels(method=method, route=route, status=str(status["code"])).inc()
            self.metrics.latency.labels(method=method, route=route).observe(time.perf_counter() - started)


def _template(scope: Scope) -> str:
    """The matched route's path template, under the prefix the request came through."""
    template = getattr(scope.get("route"), "path", None)
    if template is None:
        return "unmatched"
    if scope["path"].startswith(API_PREFIX + "/") and not template.startswith(API_PREFIX):
        return f"{API_PREFIX}{template}"
    return str(template)


router = APIRouter(route_class=GuardedRoute, tags=["operations"])


@router.get("/metrics", operation_id="metrics", summary="Prometheus metrics (outside /api/v1)")
@policy(Access.PUBLIC)
async def metrics(request: Request, services: ServicesDep) -> Response:
    if not services.settings.metrics_enabled:
        raise OfferhubError(ErrorCode.NOT_FOUND, "Metrics are disabled (METRICS_ENABLED=false)")
    collected: ApiMetrics = request.app.state.metrics
    registry: Any = getattr(request.app.state, "event_streams", None)
    await collected.refresh(services, len(registry.open) if registry is not None else 0)
    return Response(collected.render(), media_type=CONTENT_TYPE_LATEST)
