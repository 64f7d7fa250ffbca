"""List endpoints over a large history: `GET /orders`, `/events` and `/audit/logs` p50/p99
with 100k orders, 1M events and 1M audit entries seeded, each filter the API offers.

The rows are written straight into PostgreSQL with COPY (valid rows: every CHECK holds,
events sequenced and already relayed so the worker leaves them alone, orders without escrow
or milestones as a freshly created order has none), then ANALYZE, as autovacuum would.
Every case is requested REQUESTS times, one at a time, through the real API process,
from a random page start (first pages, and pages deep in the history by cursor).
Target: p99 < 50 ms for every case.

Run: `make bench` (or `python bench/lists.py`). Loopback only; bounded; stops by itself.
BENCH_LIST_ORDERS / BENCH_LIST_EVENTS / BENCH_LIST_AUDIT / BENCH_LIST_REQUESTS shrink a run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx
import uvloop

from bench.results_file import save
from bench.stacks import BENCH_STACK
from models.event_catalog import EVENT_TYPES
from models.ids import IdPrefix, new_id
from models.states import OrderStatus

ORDERS = int(os.environ.get("BENCH_LIST_ORDERS", "100000"))
EVENTS = int(os.environ.get("BENCH_LIST_EVENTS", "1000000"))
AUDIT = int(os.environ.get("BENCH_LIST_AUDIT", "1000000"))
USERS = 5000
REQUESTS = int(os.environ.get("BENCH_LIST_REQUESTS", "200"))
TARGET_MS = 50.0
SEQUENCER_LOCK = 7_311_001  # activities/event_sequencer.py: seeded seqs must not race the sequencer
AUDIT_ACTIONS = (
    "user.create",
    "order.create",
    "order.reserve",
    "order.release",
    "order.cancel",
    "topup.create",
    "withdrawal.create",
    "dispute.open",
    "api_key.create",
    "maintenance.enable",
)
ACTOR_TYPES = ("api_key", "api_key", "api_key", "token", "system", "system", "master_key", "operator")


def _stamps(count: int, days: int, now: datetime) -> list[datetime]:
    """`count` moments spread over the last `days`, oldest first."""
    span = days * 86400.0
    return sorted(now - timedelta(seconds=random.random() * span) for _ in range(count))


def order_rows(users: list[str], now: datetime, count: int = ORDERS) -> list[tuple[Any, ...]]:
    statuses = list(OrderStatus)
    rows = []
    for created in _stamps(count, 90, now):
        buyer, seller = random.sample(users, 2)
        status = random.choice(statuses)
        amount = random.randint(100, 500_000)
        closed = status == OrderStatus.CLOSED
        rows.append(
            (
                new_id(IdPrefix.ORDER),
                None,
                buyer,
                seller,
                "bench order",
                None,
                amount,
                "USD",
                status.value,
                amount if closed else 0,
                0,
                "RELEASED" if closed else None,
                None,
                "{}",
                None,
                created + timedelta(hours=1) if closed else None,
                created,
                created,
            )
        )
    return rows


def event_rows(users: list[str], first_seq: int, now: datetime, count: int = EVENTS) -> list[tuple[Any, ...]]:
    rows = []
    for n, occurred in enumerate(_stamps(count, 25, now)):  # inside the 30-day retention
        kind = random.choice(EVENT_TYPES)
        family = kind.split(".", 1)[0]
        resource_type = {"balance": "balance", "escrow": "escrow"}.get(family, family)
        prefix = {
            "user": IdPrefix.USER,
            "wallet": IdPrefix.WALLET,
            "balance": IdPrefix.USER,
            "topup": IdPrefix.TOPUP,
            "order": IdPrefix.ORDER,
            "escrow": IdPrefix.ESCROW,
            "dispute": IdPrefix.DISPUTE,
            "withdrawal": IdPrefix.WITHDRAWAL,
        }[family]
        involved = random.sample(users, 2 if family in ("order", "escrow", "dispute") else 1)
        rows.append(
            (
                new_id(IdPrefix.EVENT),
                first_seq + n,
                kind,
                occurred,
                resource_type,
                new_id(prefix),
                involved,
                "system",
                None,
                None,
                new_id(IdPrefix.ORDER),
                json.dumps({"status": "bench"}),
                occurred,
            )
        )
    return rows


def audit_rows(users: list[str], now: datetime, count: int = AUDIT) -> list[tuple[Any, ...]]:
    rows = []
    for occurred in _stamps(count, 60, now):
        action = random.choice(AUDIT_ACTIONS)
        resource_type = action.split(".", 1)[0]
        prefix = {
            "user": IdPrefix.USER,
            "order": IdPrefix.ORDER,
            "topup": IdPrefix.TOPUP,
            "withdrawal": IdPrefix.WITHDRAWAL,
            "dispute": IdPrefix.DISPUTE,
            "api_key": IdPrefix.API_KEY,
            "maintenance": IdPrefix.MARKETPLACE,
        }[resource_type]
        rows.append(
            (
                new_id(IdPrefix.AUDIT),
                occurred,
                action,
                resource_type,
                new_id(prefix),
                random.choice(users) if random.random() < 0.8 else None,
                random.choice(ACTOR_TYPES),
                None,
                "SUCCESS",
                None,
                '{"status": "bench"}',
                None,
                f"req_{random.getrandbits(64):016x}",
                None,
                None,
                "127.0.0.1",
                "bench",
                occurred,
                occurred,
            )
        )
    return rows


async def seed(
    dsn: str, users_count: int = USERS, orders_count: int = ORDERS, events_count: int = EVENTS, audit_count: int = AUDIT
) -> dict[str, Any]:
    """Users, orders, events and audit entries, then ANALYZE; what the cases need to name
    (ids, moments). tests/api/test_query_plans.py seeds its own database with it too."""
    random.seed(17)
    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    try:
        users = [new_id(IdPrefix.USER) for _ in range(users_count)]
        await conn.copy_records_to_table(
            "users",
            records=[(u, f"bench-{u}", now, now) for u in users],
            columns=["id", "external_user_id", "created_at", "updated_at"],
        )
        started = time.perf_counter()
        orders = order_rows(users, now, orders_count)
        await conn.copy_records_to_table(
            "orders",
            records=orders,
            columns=[
                "id",
                "client_order_ref",
                "buyer_id",
                "seller_id",
                "title",
                "description",
                "amount",
                "currency",
                "status",
                "released_amount",
                "refunded_amount",
                "close_reason",
                "cancel_reason",
                "metadata",
                "last_error",
                "closed_at",
                "created_at",
                "updated_at",
            ],
        )
        async with conn.transaction():  # hold the sequencer's lock: seeded seqs follow the highest given
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SEQUENCER_LOCK)
            top = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM events"))
            events = event_rows(users, top + 1, now, events_count)
            await conn.copy_records_to_table(
                "events",
                records=events,
                columns=[
                    "id",
                    "seq",
                    "type",
                    "occurred_at",
                    "resource_type",
                    "resource_id",
                    "user_ids",
                    "actor_type",
                    "actor_id",
                    "request_id",
                    "correlation_id",
                    "payload",
                    "relayed_at",
                ],
            )
        audit = audit_rows(users, now, audit_count)
        await conn.copy_records_to_table(
            "audit_logs",
            records=audit,
            columns=[
                "id",
                "occurred_at",
                "action",
                "resource_type",
                "resource_id",
                "user_id",
                "actor_type",
                "actor_id",
                "result",
                "payload_before",
                "payload_after",
                "error",
                "request_id",
                "idempotency_key",
                "correlation_id",
                "ip",
                "user_agent",
                "created_at",
                "updated_at",
            ],
        )
        for table in ("users", "orders", "events", "audit_logs"):
            await conn.execute(f"ANALYZE {table}")
        print(
            f"seeded {len(users)} users, {len(orders)} orders, {len(events)} events, {len(audit)} audit entries "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        return {"users": users, "orders": orders, "events": events, "audit": audit, "now": now}
    finally:
        await conn.close()


Case = tuple[str, str, Callable[[], dict[str, str]]]


def cases(seeded: dict[str, Any]) -> list[Case]:
    """(name, path, parameters): fresh parameters each request, so no page is served twice from a cache."""
    users: list[str] = seeded["users"]
    orders: list[tuple[Any, ...]] = seeded["orders"]
    events: list[tuple[Any, ...]] = seeded["events"]
    audit: list[tuple[Any, ...]] = seeded["audit"]
    now: datetime = seeded["now"]

    def user() -> str:
        return random.choice(users)

    def ago(days: float) -> str:
        return (now - timedelta(days=random.random() * days)).isoformat()

    def pick(rows: list[tuple[Any, ...]], column: int) -> Any:
        return random.choice(rows)[column]

    return [
        ("orders", "/orders", lambda: {}),
        ("orders status", "/orders", lambda: {"status": random.choice(list(OrderStatus)).value}),
        ("orders buyer_id", "/orders", lambda: {"buyer_id": user()}),
        ("orders seller_id", "/orders", lambda: {"seller_id": user()}),
        ("orders user_id", "/orders", lambda: {"user_id": user()}),
        ("orders created_after", "/orders", lambda: {"created_after": ago(90)}),
        ("orders created_before", "/orders", lambda: {"created_before": ago(90)}),
        ("orders cursor (deep)", "/orders", lambda: {"cursor": pick(orders, 0)}),
        ("orders status+cursor", "/orders", lambda: {"status": pick(orders, 8), "cursor": pick(orders, 0)}),
        ("orders buyer+cursor", "/orders", lambda: _buyer_cursor(orders)),
        ("orders limit=100", "/orders", lambda: {"limit": "100"}),
        ("events", "/events", lambda: {}),
        ("events asc", "/events", lambda: {"order": "asc"}),
        ("events user_id", "/events", lambda: {"user_id": user()}),
        ("events types exact", "/events", lambda: {"types": random.choice(EVENT_TYPES)}),
        ("events types family", "/events", lambda: {"types": random.choice(("order.*", "topup.*", "escrow.*"))}),
        ("events resource_type", "/events", lambda: {"resource_type": pick(events, 4)}),
        ("events resource_id", "/events", lambda: _resource(events)),
        ("events cursor (deep)", "/events", lambda: {"cursor": pick(events, 0)}),
        ("events cursor asc", "/events", lambda: {"cursor": pick(events, 0), "order": "asc"}),
        ("events since", "/events", lambda: {"since": ago(25)}),
        ("events since asc", "/events", lambda: {"since": ago(25), "order": "asc"}),
        ("events user+types", "/events", lambda: {"user_id": user(), "types": "order.*"}),
        ("events user+cursor", "/events", lambda: _user_cursor(events)),
        ("audit", "/audit/logs", lambda: {}),
        ("audit action", "/audit/logs", lambda: {"action": random.choice(AUDIT_ACTIONS)}),
        ("audit user_id", "/audit/logs", lambda: {"user_id": user()}),
        ("audit actor_type", "/audit/logs", lambda: {"actor_type": random.choice(ACTOR_TYPES)}),
        ("audit resource", "/audit/logs", lambda: {"resource_type": pick(audit, 3), "resource_id": pick(audit, 4)}),
        ("audit resource_type", "/audit/logs", lambda: {"resource_type": pick(audit, 3)}),
        ("audit request_id", "/audit/logs", lambda: {"request_id": pick(audit, 12)}),
        ("audit from/to", "/audit/logs", lambda: {"from": ago(60), "to": now.isoformat()}),
        ("audit cursor (deep)", "/audit/logs", lambda: {"cursor": pick(audit, 0)}),
        ("audit action+cursor", "/audit/logs", lambda: _action_cursor(audit)),
    ]


def _buyer_cursor(orders: list[tuple[Any, ...]]) -> dict[str, str]:
    row = random.choice(orders)
    return {"buyer_id": row[2], "cursor": row[0]}


def _resource(events: list[tuple[Any, ...]]) -> dict[str, str]:
    row = random.choice(events)
    return {"resource_type": row[4], "resource_id": row[5]}


def _user_cursor(events: list[tuple[Any, ...]]) -> dict[str, str]:
    row = random.choice(events)
    return {"user_id": row[6][0], "cursor": row[0]}


def _action_cursor(audit: list[tuple[Any, ...]]) -> dict[str, str]:
    row = random.choice(audit)
    return {"action": row[2], "cursor": row[0]}


async def measure(api: httpx.AsyncClient, case: Case) -> dict[str, float]:
    name, path, params = case
    for _ in range(5):  # warm the connection and the plan cache
        (await api.get(path, params=params())).raise_for_status()
    took = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        answer = await api.get(path, params=params())
        took.append(1000 * (time.perf_counter() - started))
        assert answer.status_code == 200, (name, answer.text)
    took.sort()
    return {
        "p50_ms": statistics.median(took),
        "p99_ms": took[min(len(took) - 1, int(len(took) * 0.99))],
        "max_ms": took[-1],
    }


async def run() -> dict[str, Any]:
    from tests.api.test_idempotency import pg_dsn
    from tests.support import create_key, start_stack

    stack = await asyncio.to_thread(start_stack, BENCH_STACK)
    try:
        seeded = await seed(pg_dsn(stack))
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api:
            key = await create_key(api, stack.master_key, ["read", "support"], name="bench-lists")
            api.headers["Authorization"] = f"Bearer {key['key']}"
            results: dict[str, Any] = {}
            print(f"\n{'case':<24} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}  (target p99 < {TARGET_MS:.0f} ms)")
            for case in cases(seeded):
                figures = await measure(api, case)
                results[case[0]] = figures
                mark = "" if figures["p99_ms"] < TARGET_MS else "  <-- over target"
                p50, p99, most = figures["p50_ms"], figures["p99_ms"], figures["max_ms"]
                print(f"{case[0]:<24} {p50:>7.1f} {p99:>7.1f} {most:>7.1f}{mark}", flush=True)
        return {
            "seeded": {"users": USERS, "orders": ORDERS, "events": EVENTS, "audit_logs": AUDIT},
            "requests_per_case": REQUESTS,
            "target_p99_ms": TARGET_MS,
            "cases": results,
            "over_target": [name for name, f in results.items() if f["p99_ms"] >= TARGET_MS],
        }
    finally:
        await asyncio.to_thread(stack.stop)


def main() -> dict[str, Any]:
    results = uvloop.run(run())
    save("lists", results)
    return results


if __name__ == "__main__":
    main()
