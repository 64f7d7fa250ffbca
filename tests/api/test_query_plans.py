"""The list endpoints' queries use indexes: `GET /orders`, `/events` and `/audit/logs`, with
each filter, are called on the real app over a database of their own holding enough rows
(20k orders, 60k events, 60k audit entries, then ANALYZE, as autovacuum would), every SQL
statement they issue is captured, and PostgreSQL's plan for it (EXPLAIN, the same
parameters) must read orders, events and audit_logs through an index, never a Seq Scan.
The planner decides with its ordinary settings; bench/lists.py measures the same lists
at 100k orders and 1M events."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import event, make_url
from sqlalchemy.engine import Connection

import migrations
from api.app import create_app
from bench.lists import AUDIT_ACTIONS, seed
from tests.api.test_idempotency import pg_dsn
from tests.support import Stack, bearer, stack_settings

LISTED = ("orders", "events", "audit_logs")
# how a table may be read: through an index, or the heap pages a Bitmap Index Scan chose
INDEX_READS = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
ORDERS_NEWEST = "ix_orders_listing"
EVENTS_BY_SEQ = "uq_events_seq"
AUDIT_NEWEST = "ix_audit_logs_listing"


@pytest.fixture(scope="module")
def plans_db(stack: Stack) -> Iterator[dict[str, Any]]:
    """A database of its own on the session's PostgreSQL, migrated and seeded (then dropped)."""
    name = f"plans_{secrets.token_hex(4)}"
    admin = pg_dsn(stack)
    asyncio.run(_execute(admin, f"CREATE DATABASE {name}"))
    url = make_url(stack.database_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrations.upgrade(url)
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        seeded = asyncio.run(seed(dsn, 500, 20_000, 60_000, 60_000))
        yield {"url": url, "dsn": dsn, **seeded}
    finally:
        asyncio.run(_execute(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def recording_api(stack: Stack, url: str) -> AsyncIterator[tuple[httpx.AsyncClient, list[tuple[str, Any]]]]:
    """The real app on the plans database, with every statement it sends recorded."""
    settings = stack_settings(stack).model_copy(update={"database_url": SecretStr(url)})
    app = create_app(settings)
    statements: list[tuple[str, Any]] = []

    def record(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        statements.append((statement, parameters))

    async with app.router.lifespan_context(app):
        event.listen(app.state.services.engine.sync_engine, "before_cursor_execute", record)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://in-process/api/v1") as http:
            created = await http.post(
                "/auth/api-keys",
                json={"name": "plans", "scopes": ["read", "support"]},
                headers=bearer(stack.master_key),
            )
            assert created.status_code == 201, created.text
            http.headers.update(bearer(created.json()["key"]))
            yield http, statements


def _scans(plan: dict[str, Any]) -> Iterator[tuple[str, str | None, str | None]]:
    """(node type, relation, index) of every node reading a listed table or an index."""
    if plan.get("Relation Name") in LISTED or "Index Name" in plan:
        yield plan["Node Type"], plan.get("Relation Name"), plan.get("Index Name")
    for child in plan.get("Plans", []):
        yield from _scans(child)


async def _plans(
    dsn: str, statements: list[tuple[str, Any]]
) -> list[tuple[str, list[tuple[str, str | None, str | None]]]]:
    conn = await asyncpg.connect(dsn)
    try:
        plans = []
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            if not any(f" {table}" in statement for table in LISTED):
                continue
            raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", *(parameters or ()))
            plans.append((statement, list(_scans(json.loads(raw)[0]["Plan"]))))
        return plans
    finally:
        await conn.close()


def _cases(seeded: dict[str, Any]) -> list[tuple[str, dict[str, str], tuple[str, ...]]]:
    """(path, query, the indexes the page itself may be read through: the planner picks by
    the filter's selectivity, e.g. a common status is met soonest walking newest first)."""
    user = seeded["users"][7]
    order = seeded["orders"][len(seeded["orders"]) // 2]
    evt = seeded["events"][len(seeded["events"]) // 2]
    aud = seeded["audit"][len(seeded["audit"]) // 2]
    day = seeded["now"].replace(hour=0, minute=0, second=0, microsecond=0).isoformat()
    return [
        ("/orders", {}, (ORDERS_NEWEST,)),
        ("/orders", {"status": "IN_PROGRESS"}, ("ix_orders_status_listing", ORDERS_NEWEST)),
        ("/orders", {"buyer_id": user}, ("ix_orders_buyer_listing",)),
        ("/orders", {"seller_id": user}, ("ix_orders_seller_listing",)),
        ("/orders", {"user_id": user}, ("ix_orders_buyer", "ix_orders_seller")),
        ("/orders", {"created_after": day}, (ORDERS_NEWEST,)),
        ("/orders", {"created_before": day}, (ORDERS_NEWEST,)),
        ("/orders", {"cursor": order[0]}, (ORDERS_NEWEST,)),
        ("/orders", {"status": order[8], "cursor": order[0]}, ("ix_orders_status_listing", ORDERS_NEWEST)),
        ("/orders", {"buyer_id": order[2], "cursor": order[0]}, ("ix_orders_buyer_listing",)),
        ("/events", {}, (EVENTS_BY_SEQ,)),
        ("/events", {"order": "asc"}, (EVENTS_BY_SEQ,)),
        ("/events", {"user_id": user}, ("ix_events_user_ids", EVENTS_BY_SEQ)),
        ("/events", {"types": "order.created"}, ("ix_events_type_seq", EVENTS_BY_SEQ)),
        ("/events", {"types": "order.*"}, ("ix_events_type_seq", EVENTS_BY_SEQ)),
        ("/events", {"resource_type": evt[4], "resource_id": evt[5]}, ("ix_events_resource",)),
        ("/events", {"resource_type": "order"}, ("ix_events_resource", EVENTS_BY_SEQ)),
        ("/events", {"cursor": evt[0]}, (EVENTS_BY_SEQ,)),
        ("/events", {"cursor": evt[0], "order": "asc"}, (EVENTS_BY_SEQ,)),
        ("/events", {"since": day}, ("ix_events_occurred_at", EVENTS_BY_SEQ)),
        ("/events", {"since": day, "order": "asc"}, ("ix_events_occurred_at", EVENTS_BY_SEQ)),
        ("/audit/logs", {}, (AUDIT_NEWEST,)),
        ("/audit/logs", {"action": AUDIT_ACTIONS[1]}, ("ix_audit_logs_action_listing", AUDIT_NEWEST)),
        ("/audit/logs", {"user_id": user}, ("ix_audit_logs_user",)),
        ("/audit/logs", {"actor_type": "operator"}, ("ix_audit_logs_actor_type_listing", AUDIT_NEWEST)),
        ("/audit/logs", {"resource_type": aud[3], "resource_id": aud[4]}, ("ix_audit_logs_resource",)),
        ("/audit/logs", {"request_id": aud[12]}, ("ix_audit_logs_request",)),
        ("/audit/logs", {"from": day}, (AUDIT_NEWEST,)),
        ("/audit/logs", {"cursor": aud[0]}, (AUDIT_NEWEST,)),
        ("/audit/logs", {"action": aud[2], "cursor": aud[0]}, ("ix_audit_logs_action_listing", AUDIT_NEWEST)),
        ("/audit/logs", {"resource_type": "order"}, ("ix_audit_logs_resource", AUDIT_NEWEST)),
    ]


async def test_every_list_filter_is_read_through_an_index(stack: Stack, plans_db: dict[str, Any]) -> None:
    failures = []
    async with recording_api(stack, plans_db["url"]) as (http, statements):
        for path, query, expected in _cases(plans_db):
            statements.clear()
            answer = await http.get(path, params=query)
            assert answer.status_code == 200, (path, query, answer.text)
            assert answer.json()["data"], (path, query, "the seeded rows should fill a page")
            plans = await _plans(plans_db["dsn"], statements)
            assert plans, (path, query, "no statement read the listed tables")
            for statement, scans in plans:
                for node, relation, _ in scans:
                    if relation is not None and node not in INDEX_READS:
                        failures.append(f"{path} {query}: {node} on {relation}\n  {statement}")
            # the page itself (the statement with ORDER BY and LIMIT) is read through the expected index
            listing = [scans for statement, scans in plans if "ORDER BY" in statement and "LIMIT" in statement]
            assert listing, (path, query, "no list statement captured")
            indexes = {index for scans in listing for _, _, index in scans if index is not None}
            if not indexes & set(expected):
                failures.append(f"{path} {query}: read through {sorted(indexes)}, expected {expected}")
    assert not failures, "\n".join(failures)
