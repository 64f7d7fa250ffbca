"""`GET /metrics` is valid Prometheus text and moves with traffic (operations.md §4)."""

from __future__ import annotations

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from cli.stack import free_port
from tests.api.test_idempotency import pg_dsn
from tests.support import Stack, assert_eventually


async def scrape(stack: Stack) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of one scrape, by name and labels."""
    async with httpx.AsyncClient(base_url=stack.api_url.removesuffix("/api/v1")) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def test_metrics_count_requests_by_route_template_and_report_the_ledger(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    route = frozenset({("method", "GET"), ("route", "/api/v1/orders/{order_id}"), ("status", "404")})
    before = (await scrape(stack)).get(("offerhub_http_requests_total", route), 0.0)
    for _ in range(3):
        assert (await client.get("/orders/ord_doesnotexist000000000", headers=full_key)).status_code == 404
    samples = await scrape(stack)
    assert samples[("offerhub_http_requests_total", route)] == before + 3
    assert not any("ord_doesnotexist" in str(labels) for _, labels in samples), "IDs must not become labels"
    latency = frozenset({("method", "GET"), ("route", "/api/v1/orders/{order_id}"), ("le", "+Inf")})
    assert samples[("offerhub_http_request_duration_seconds_bucket", latency)] >= 3

    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        deposits = await conn.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE entry_type = 'DEPOSIT'"
        )
        available = await conn.fetchval("SELECT coalesce(sum(available), 0) FROM balances")
    finally:
        await conn.close()
    assert samples[("offerhub_ledger_total_cents", frozenset({("total", "in")}))] == deposits
    assert samples[("offerhub_ledger_total_cents", frozenset({("total", "a")}))] == available
    assert ("offerhub_outbox_lag_seconds", frozenset({("stage", "sequence")})) in samples
    assert ("offerhub_sse_streams_open", frozenset()) in samples


async def test_the_worker_serves_the_temporal_sdk_metrics(stack: Stack) -> None:
    port = free_port()
    env = {
        **stack.env,
        "TEMPORAL_TASK_QUEUE": "offerhub-test-metrics",
        "TEMPORAL_METRICS_BIND_ADDRESS": f"127.0.0.1:{port}",
    }
    worker = stack.spawn("worker-metrics", ["worker"], env=env)
    try:

        async def exported() -> str:
            try:
                async with httpx.AsyncClient() as http:
                    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.TransportError:
                return ""
            return text if "temporal_" in text else ""

        text = await assert_eventually(exported, timeout=30, message="no Temporal SDK metrics on the worker")
        families = {family.name for family in text_string_to_metric_families(text)}
        assert any(name.startswith("temporal_") for name in families), sorted(families)[:10]
    finally:
        worker.stop()
