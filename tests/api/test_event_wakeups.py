"""Event streams are woken by Redis pub/sub (api.md §10): the sequencer announces each
numbered batch, the API process's one subscriber reads it and wakes its streams; with Redis
unreachable, the feed's safety poll still delivers every event."""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import AsyncIterator

import httpx

from api.event_feed import SAFETY_POLL_SECONDS
from cli.stack import LOOPBACK, free_port
from tests.api.test_events import next_event
from tests.support import Stack

SSE = {"Accept": "text/event-stream"}


async def _delivered_in(
    reader: httpx.AsyncClient, writer: httpx.AsyncClient, headers: dict[str, str], *, timeout: float
) -> list[float]:
    """Seconds from each of three `POST /users` to its `user.created` on a stream of `reader`'s API."""
    took = []
    params = {"types": "user.created"}
    async with reader.stream("GET", "/events", params=params, headers={**SSE, **headers}, timeout=60) as stream:
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry: 3000")
        for _ in range(3):
            created = await writer.post(
                "/users", json={"external_user_id": f"wake-{secrets.token_hex(6)}"}, headers=headers
            )
            assert created.status_code == 201, created.text
            started = time.monotonic()
            while True:
                event = await asyncio.wait_for(next_event(lines), timeout=timeout)
                if event["resource"]["id"] == created.json()["id"]:
                    break
            took.append(time.monotonic() - started)
    return took


async def test_a_new_event_reaches_a_stream_well_before_the_safety_poll(
    client: httpx.AsyncClient, full_key: dict[str, str]
) -> None:
    took = await _delivered_in(client, client, full_key, timeout=SAFETY_POLL_SECONDS * 3)
    # one delivery could meet a safety poll by chance; three in a row only through the wake-ups
    assert max(took) < SAFETY_POLL_SECONDS / 3, took


async def test_with_redis_unreachable_the_safety_poll_still_delivers(
    stack: Stack, client: httpx.AsyncClient, full_key: dict[str, str]
) -> None:
    # an API process whose Redis is a closed port: no wake-up ever reaches it
    deaf = stack.spawn_api("api-no-redis", {"REDIS_URL": f"redis://{LOOPBACK}:{free_port()}/0"})
    async with httpx.AsyncClient(base_url=deaf, timeout=30) as reader:
        took = await _delivered_in(reader, client, full_key, timeout=SAFETY_POLL_SECONDS * 3)
    assert max(took) <= SAFETY_POLL_SECONDS + 2, took
    assert "event wake-ups unavailable" in stack.log_text("api-no-redis")


async def test_a_stopping_api_ends_its_streams_at_once(stack: Stack, full_key: dict[str, str]) -> None:
    # streams hold no task the server waits on: asked to stop, the API ends them and exits
    url = stack.spawn_api("api-stopping", {"SSE_CREDENTIAL_CHECK_SECONDS": "15"})  # an override: a port of its own
    process = next(p.process for p in stack.processes if p.name == "api-stopping")
    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as reader,
        reader.stream("GET", "/events", headers={**SSE, **full_key}) as stream,
    ):
        lines = stream.aiter_lines()
        assert (await asyncio.wait_for(anext(lines), timeout=10)).startswith("retry: 3000")
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(_rest(lines), timeout=10)
        assert rest == []  # a clean end, no error
        await asyncio.to_thread(process.wait, 10)
    assert time.monotonic() - stopping < 5


async def _rest(lines: AsyncIterator[str]) -> list[str]:
    return [line async for line in lines if line]
