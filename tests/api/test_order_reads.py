"""`GET /orders/{id}` reads one statement on the driver (api/repositories/orders.py `read`,
api/database.py `DriverReads`): it shows an order exactly as the list (ORM entities) shows it, an
unreachable PostgreSQL is a 503 it recovers from, and a connection the server ended is
replaced at checkout without failing a request. A read is refused once other replicas spent
the window's budget (api/ratelimit.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis
from pydantic import SecretStr

from api.app import create_app
from api.ratelimit import WINDOW_SECONDS
from tests.api.orders_support import order_in
from tests.api.test_disputes import disputed_order
from tests.api.test_envelope import assert_error
from tests.api.test_idempotency import pg_dsn
from tests.api.test_outages import Proxied, _assert_unavailable, _timed, _until_answered, proxied  # noqa: F401
from tests.support import Stack, assert_eventually, bearer, create_key, crypto_user, stack_settings


async def _listed(client: httpx.AsyncClient, headers: dict[str, str], order: dict[str, Any]) -> dict[str, Any]:
    page = await client.get("/orders", headers=headers, params={"buyer_id": order["buyer_id"]})
    assert page.status_code == 200, page.text
    (listed,) = [item for item in page.json()["data"] if item["id"] == order["id"]]
    return dict(listed)


async def test_a_read_shows_the_order_as_the_list_does(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    buyer, seller = await crypto_user(client, full_key), await crypto_user(client, full_key)
    milestones = [
        {"milestone_ref": "design", "title": "Design", "amount": "4.00"},
        {"milestone_ref": "build", "title": "Build", "amount": "6.00"},
    ]
    plain = await order_in(
        client, full_key, buyer["id"], seller["id"], "10.00", [], description=None, metadata={"k": "v"}
    )
    staged = await order_in(client, full_key, buyer["id"], seller["id"], "10.00", [], milestones=milestones)
    *_, disputed, _ = await disputed_order(client, stack, full_key, "3.00")
    for order in (plain, staged, disputed):
        read = await client.get(f"/orders/{order['id']}", headers=full_key)
        assert read.status_code == 200, read.text
        assert read.headers["content-type"] == "application/json; charset=utf-8"
        assert read.json() == await _listed(client, full_key, order)
    shown = (await client.get(f"/orders/{staged['id']}", headers=full_key)).json()
    assert [m["milestone_ref"] for m in shown["milestones"]] == ["design", "build"]
    assert shown["escrow"] is None and shown["dispute"] is None
    frozen = (await client.get(f"/orders/{disputed['id']}", headers=full_key)).json()
    assert frozen["escrow"]["status"] == "DISPUTED" and frozen["dispute"]["status"] == "OPEN"


async def test_an_unreachable_postgres_read_is_503_and_recovers(
    proxied: Proxied,  # noqa: F811
    client: httpx.AsyncClient,
    stack: Stack,
) -> None:
    key = bearer((await create_key(client, stack.master_key, ["read", "write"]))["key"])
    buyer, seller = await crypto_user(client, key), await crypto_user(client, key)
    order = await order_in(client, key, buyer["id"], seller["id"], "10.00", [])
    assert (await proxied.http.get(f"/orders/{order['id']}", headers=key)).status_code == 200
    await proxied.proxies["postgres"].down()
    for _ in range(2):  # the pooled connection the proxy cut, then a new one it refuses
        _assert_unavailable(*await _timed(proxied.http.get(f"/orders/{order['id']}", headers=key)))
    await proxied.proxies["postgres"].up()
    await _until_answered(lambda: proxied.http.get(f"/orders/{order['id']}", headers=key), 200)


async def test_a_connection_the_server_ended_is_replaced_at_checkout(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    buyer, seller = await crypto_user(client, full_key), await crypto_user(client, full_key)
    order = await order_in(client, full_key, buyer["id"], seller["id"], "10.00", [])
    app = create_app(stack_settings(stack))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://in-process/api/v1") as http,
    ):
        assert (await http.get(f"/orders/{order['id']}", headers=full_key)).status_code == 200
        pool = app.state.services.reads._pool
        async with pool.acquire() as pooled:  # the one the read used (the pool hands out the latest)
            pid = pooled.get_server_pid()
        admin = await asyncpg.connect(pg_dsn(stack))
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)

            async def ended() -> bool:
                return not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)

            await assert_eventually(ended, message=f"backend {pid} still running")
        finally:
            await admin.close()
        for _ in range(3):
            read = await http.get(f"/orders/{order['id']}", headers=full_key)
            assert read.status_code == 200, read.text


async def test_a_read_is_refused_once_other_replicas_spent_the_window(client: httpx.AsyncClient, stack: Stack) -> None:
    key = await create_key(client, stack.master_key, ["read", "write"])
    headers = bearer(key["key"])
    buyer, seller = await crypto_user(client, headers), await crypto_user(client, headers)
    order = await order_in(client, headers, buyer["id"], seller["id"], "10.00", [])
    settings = stack_settings(stack)
    redis_url = settings.redis_url.get_secret_value().rsplit("/", 1)[0] + "/2"  # counters of its own
    limited = settings.model_copy(update={"rate_limit_per_key_per_minute": 10, "redis_url": SecretStr(redis_url)})
    app = create_app(limited)
    if WINDOW_SECONDS - time.time() % WINDOW_SECONDS < 3:  # the whole test in one window
        await asyncio.sleep(3)
    redis = aioredis.from_url(redis_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://in-process/api/v1") as http,
    ):
        first = await http.get(f"/orders/{order['id']}", headers=headers)
        assert first.status_code == 200 and first.headers["x-ratelimit-remaining"] == "9"
        # other replicas spend the rest of the window's budget (a small limit is claimed token by token)
        window = int(time.time() // WINDOW_SECONDS)
        await redis.set(f"offerhub:rl:api_key:{key['id']}:{window}", 10)
        for path in (f"/orders/{order['id']}", "/orders/ord_doesnotexist", f"/orders/{order['id']}?x=1"):
            refused = await http.get(path, headers=headers)
            error = assert_error(refused, 429, "RATE_LIMITED")  # not the read's 200, 404 or 400
            assert refused.headers["x-ratelimit-remaining"] == "0" and error["details"]["scope"] == "api_key"
    await redis.aclose()
