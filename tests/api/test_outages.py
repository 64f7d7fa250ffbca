"""PostgreSQL, Redis or Temporal unreachable: `503 SERVICE_UNAVAILABLE` with `Retry-After`
within a few seconds, nothing changed, and the API recovers by itself once it is back.

The shared stack keeps running for the other tests: an in-process API reaches each
dependency through a loopback TCP proxy that the test takes down and brings back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import pytest

from api.app import create_app
from tests.api.test_envelope import assert_error
from tests.support import Stack, bearer, create_key, stack_settings

DEADLINE_SECONDS = 8.0  # "within a few seconds": connect timeouts are 2-3 s


class Proxy:
    """A loopback TCP forwarder (to a TCP port or a Unix socket) that can refuse connections
    (down) and accept again (up) on the same port."""

    def __init__(self, target: tuple[str, int] | Path) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._pipes):
            writer.close()
        self._pipes.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if isinstance(self.target, Path):
                upstream_reader, upstream_writer = await asyncio.open_unix_connection(self.target)
            else:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._pipes.update((writer, upstream_writer))
        await asyncio.gather(_pump(reader, upstream_writer), _pump(upstream_reader, writer))
        self._pipes.difference_update((writer, upstream_writer))


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.close()


def _through(url: str, proxy: Proxy) -> str:
    """`url` with its host replaced by the proxy's port (and no Unix socket `host=` query)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host, query=""))


def _postgres_target(url: str) -> tuple[str, int] | Path:
    parts = urlsplit(url)
    socket_dir = parse_qs(parts.query).get("host")
    if socket_dir:  # the embedded server listens on a Unix socket
        return next(Path(socket_dir[0]).glob(".s.PGSQL.*[0-9]"))
    return parts.hostname or "127.0.0.1", parts.port or 5432


class Proxied:
    def __init__(self, http: httpx.AsyncClient, proxies: dict[str, Proxy]) -> None:
        self.http = http
        self.proxies = proxies


@pytest.fixture
async def proxied(stack: Stack) -> AsyncIterator[Proxied]:
    settings = stack_settings(stack)
    redis = urlsplit(settings.redis_url.get_secret_value())
    temporal_host, temporal_port = settings.temporal_address.rsplit(":", 1)
    proxies = {
        "postgres": Proxy(_postgres_target(settings.database_url.get_secret_value())),
        "redis": Proxy((redis.hostname or "127.0.0.1", redis.port or 6379)),
        "temporal": Proxy((temporal_host, int(temporal_port))),
    }
    for proxy in proxies.values():
        await proxy.up()
    rerouted = settings.model_copy(
        update={
            "database_url": type(settings.database_url)(
                _through(settings.database_url.get_secret_value(), proxies["postgres"])
            ),
            "redis_url": type(settings.redis_url)(_through(settings.redis_url.get_secret_value(), proxies["redis"])),
            "temporal_address": f"127.0.0.1:{proxies['temporal'].port}",
        }
    )
    app = create_app(rerouted)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://in-process/api/v1", timeout=30
            ) as http,
        ):
            yield Proxied(http, proxies)
    finally:
        for proxy in proxies.values():
            await proxy.down()


async def _timed(call: asyncio.Future[httpx.Response] | object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await call  # type: ignore[misc]
    return response, time.monotonic() - started


async def _warm(proxied: Proxied, key: dict[str, str]) -> str:
    """Every pool holds connections through the proxies; returns a user ID."""
    user = await proxied.http.post("/users", headers=key, json={"external_user_id": f"ext-{uuid.uuid4().hex}"})
    assert user.status_code == 201, user.text
    assert (await proxied.http.get(f"/users/{user.json()['id']}", headers=key)).status_code == 200
    return str(user.json()["id"])


async def _until_answered(call: Callable[[], Awaitable[httpx.Response]], ok: int) -> None:
    deadline = time.monotonic() + 20
    while (answer := await call()).status_code != ok:
        assert answer.status_code == 503, answer.text
        assert time.monotonic() < deadline, "no recovery"
        await asyncio.sleep(0.5)


def _assert_unavailable(response: httpx.Response, took: float) -> None:
    error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert response.headers["retry-after"] == "5" and error["details"]["retry_after_seconds"] == 5
    assert took < DEADLINE_SECONDS, f"answered after {took:.1f}s"


async def test_postgres_unreachable_is_503_and_recovers(
    proxied: Proxied, client: httpx.AsyncClient, stack: Stack
) -> None:
    key = bearer((await create_key(client, stack.master_key, ["read", "write"]))["key"])
    user_id = await _warm(proxied, key)
    await proxied.proxies["postgres"].down()
    for call in (
        proxied.http.get(f"/users/{user_id}", headers=key),
        proxied.http.post("/users", headers=key, json={"external_user_id": f"ext-{uuid.uuid4().hex}"}),
    ):
        _assert_unavailable(*await _timed(call))
    await proxied.proxies["postgres"].up()
    await _until_answered(lambda: proxied.http.get(f"/users/{user_id}", headers=key), 200)


async def test_temporal_unreachable_is_503_and_changes_nothing(
    proxied: Proxied, client: httpx.AsyncClient, stack: Stack
) -> None:
    key = bearer((await create_key(client, stack.master_key, ["read", "write"]))["key"])
    buyer, seller = await _warm(proxied, key), await _warm(proxied, key)
    order = {"buyer_id": buyer, "seller_id": seller, "amount": "10.00", "title": "Outage"}
    await proxied.proxies["temporal"].down()
    _assert_unavailable(*await _timed(proxied.http.post("/orders", headers=key, json=order)))
    listed = await client.get("/orders", headers=key, params={"buyer_id": buyer})
    assert listed.json()["data"] == []  # nothing changed
    # a user is still created (its wallet setup is started again by the worker), promptly
    created, took = await _timed(
        proxied.http.post("/users", headers=key, json={"external_user_id": f"ext-{uuid.uuid4().hex}"})
    )
    assert created.status_code == 201 and took < DEADLINE_SECONDS
    await proxied.proxies["temporal"].up()
    await _until_answered(lambda: proxied.http.post("/orders", headers=key, json=order), 201)


async def test_redis_unreachable_fails_open_promptly(proxied: Proxied, client: httpx.AsyncClient, stack: Stack) -> None:
    """Redis holds nothing durable (architecture.md): without it rate limits fail open and
    caches are skipped, so requests are still answered, within the socket timeouts."""
    key = bearer((await create_key(client, stack.master_key, ["read", "write"]))["key"])
    user_id = await _warm(proxied, key)
    await proxied.proxies["redis"].down()
    for call in (
        proxied.http.get(f"/users/{user_id}", headers=key),
        proxied.http.post("/users", headers=key, json={"external_user_id": f"ext-{uuid.uuid4().hex}"}),
    ):
        response, took = await _timed(call)
        assert response.status_code in (200, 201), response.text
        assert took < DEADLINE_SECONDS, f"answered after {took:.1f}s"
    await proxied.proxies["redis"].up()
    await _until_answered(lambda: proxied.http.get(f"/users/{user_id}", headers=key), 200)
