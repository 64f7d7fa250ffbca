"""Events (JSON paging, the SSE stream and its reconnection with Last-Event-ID) and webhook
endpoints through the SDK, down to verifying a real delivery's signature."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest

from offerhub_sdk import AsyncOfferHub, NotFoundError, SignatureVerificationError, webhooks
from offerhub_sdk.models import Event
from tests.api.webhook_receiver import Received, receiver
from tests.sdk.support import sdk_user
from tests.support import Stack, assert_eventually


async def test_event_list_pages_through_every_event(async_client: AsyncOfferHub, stack: Stack) -> None:
    user = await sdk_user(async_client, stack, "5.00")

    async def settled() -> list[str] | None:
        # the deposit's last events are numbered a moment after the balance shows: page a
        # trail that no longer grows
        before = [e.id for e in (await async_client.events.list(user_id=user.id, limit=100)).data]
        await asyncio.sleep(0.5)
        after = [e.id for e in (await async_client.events.list(user_id=user.id, limit=100)).data]
        return after if after == before else None

    await assert_eventually(settled, timeout=15, message="the user's events kept arriving")
    everything = await async_client.events.list(user_id=user.id, limit=100)
    assert len(everything.data) >= 3 and not everything.has_more
    first = await async_client.events.list(user_id=user.id, limit=2)
    assert first.has_more and first.next_cursor == first.data[-1].id
    assert [e.id async for e in first] == [e.id for e in everything.data]
    oldest_first = await async_client.events.list(user_id=user.id, order="asc", types=["user.*", "balance.*"])
    assert [e.type for e in oldest_first.data][:1] == ["user.created"]
    by_resource = await async_client.events.list(resource_type="user", resource_id=user.id)
    assert {e.resource.id for e in by_resource.data} == {user.id}


class CutFirstStream(httpx.AsyncBaseTransport):
    """Forwards to the real API; the first event stream is cut right after its first event."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.stream_requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.headers.get("accept") != "text/event-stream":
            return response
        self.stream_requests.append(request)
        if len(self.stream_requests) > 1:
            return response
        upstream = response.stream
        assert isinstance(upstream, httpx.AsyncByteStream)
        source: httpx.AsyncByteStream = upstream

        class Cut(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                # cut at the blank line that ends the first event, however the server or
                # TCP grouped the bytes (one read may carry several events)
                received = b""
                async for chunk in source:
                    received += chunk
                    first = received.find(b"id:")
                    end = received.find(b"\r\n\r\n", first) if first >= 0 else -1
                    if end < 0:
                        yield chunk
                        continue
                    yield chunk[: len(chunk) - (len(received) - (end + 4))]
                    raise httpx.RemoteProtocolError("peer closed the connection")

            async def aclose(self) -> None:
                await source.aclose()

        return httpx.Response(response.status_code, headers=response.headers, stream=Cut(), request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_stream_resumes_after_a_dropped_connection_with_every_event_once(
    async_client: AsyncOfferHub, stack: Stack, api_key: str
) -> None:
    cursor = (await async_client.events.list(limit=1)).data[0].id
    users = [await async_client.users.create(external_user_id=f"sdk-{secrets.token_hex(6)}") for _ in range(2)]
    transport = CutFirstStream()
    http = httpx.AsyncClient(transport=transport)
    async with AsyncOfferHub(api_key=api_key, base_url=stack.api_url, http_client=http) as client:
        stream = client.events.stream(types="user.created", last_event_id=cursor)
        seen: list[Event] = []

        async def ours() -> None:
            async for event in stream:
                seen.append(event)
                if {u.id for u in users} <= {e.resource.id for e in seen}:
                    return

        async with stream:
            await asyncio.wait_for(ours(), timeout=30)
    assert len(transport.stream_requests) == 2 and stream.reconnects == 1
    assert transport.stream_requests[0].headers["last-event-id"] == cursor
    assert transport.stream_requests[1].headers["last-event-id"] == seen[0].id
    assert len({e.id for e in seen}) == len(seen)  # every event once
    assert [e.resource.id for e in seen if e.resource.id in {u.id for u in users}] == [u.id for u in users]
    assert stream.last_event_id == seen[-1].id


async def test_live_stream_from_now_sees_a_new_user(async_client: AsyncOfferHub) -> None:
    seen: list[Event] = []
    async with async_client.events.stream(types=["user.created"]) as stream:

        async def consume() -> None:
            async for event in stream:  # the connection opens at the first iteration
                seen.append(event)

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(1.0)  # live only: the stream starts at the newest event when it connects
        user = await async_client.users.create(external_user_id=f"sdk-{secrets.token_hex(6)}")

        async def arrived() -> bool:
            return any(e.resource.id == user.id for e in seen)

        try:
            await assert_eventually(arrived, timeout=20, message="the live stream never showed the new user")
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
    [event] = [e for e in seen if e.resource.id == user.id]
    assert (event.type, stream.last_event_id is not None) == ("user.created", True)


async def test_webhook_endpoint_lifecycle_and_a_real_delivery_verifies(
    async_client: AsyncOfferHub, stack: Stack
) -> None:
    client = async_client
    async with receiver() as box:
        endpoint = await client.webhook_endpoints.create(url=box.url, event_types=["user.created"], description="sdk")
        assert endpoint.secret is not None and endpoint.status == "ACTIVE"
        try:
            assert (await client.webhook_endpoints.retrieve(endpoint.id)).secret is None
            assert endpoint.id in [e.id async for e in await client.webhook_endpoints.list(limit=1)]
            user = await client.users.create(external_user_id=f"sdk-{secrets.token_hex(6)}")

            async def delivered(resource_id: str) -> Received | None:
                return next((r for r in box.requests if r.event["resource"]["id"] == resource_id), None)

            request = await assert_eventually(lambda: delivered(user.id), timeout=20, message="never delivered")
            assert request is not None
            event = webhooks.verify(
                payload=request.body, signature_header=request.headers["offerhub-signature"], secret=endpoint.secret
            )
            assert (event.type, event.resource.id, event.id) == (
                "user.created",
                user.id,
                request.headers["offerhub-event-id"],
            )
            with pytest.raises(SignatureVerificationError):
                webhooks.verify(
                    payload=request.body + b" ",
                    signature_header=request.headers["offerhub-signature"],
                    secret=endpoint.secret,
                )
            with pytest.raises(SignatureVerificationError):
                webhooks.verify(
                    payload=request.body,
                    signature_header=request.headers["offerhub-signature"],
                    secret=endpoint.secret,
                    now=9e9,
                )

            async def succeeded() -> bool:
                page = await client.webhook_endpoints.list_deliveries(endpoint.id, event_id=event.id)
                return [d.status for d in page.data] == ["SUCCEEDED"]

            await assert_eventually(succeeded, timeout=20)

            rotated = await client.webhook_endpoints.rotate_secret(endpoint.id)
            assert rotated.secret is not None and rotated.secret != endpoint.secret
            second = await client.users.create(external_user_id=f"sdk-{secrets.token_hex(6)}")
            request = await assert_eventually(lambda: delivered(second.id), timeout=20, message="never delivered")
            assert request is not None
            header = request.headers["offerhub-signature"]
            assert header.count("v1=") == 2
            for secret in (rotated.secret, endpoint.secret):  # both during the overlap
                webhooks.verify(payload=request.body, signature_header=header, secret=secret)
        finally:
            deleted = await client.webhook_endpoints.delete(endpoint.id)
        assert (deleted.status, deleted.deleted_at is not None) == ("DELETED", True)
        with pytest.raises(NotFoundError) as gone:
            await client.webhook_endpoints.retrieve(endpoint.id)
        assert gone.value.code == "WEBHOOK_ENDPOINT_NOT_FOUND"


def test_signature_helpers_round_trip() -> None:
    created = {"type": "user", "id": "usr_1"}
    body = json.dumps(
        {"id": "evt_1", "type": "user.created", "occurred_at": "2026-01-12T10:00:00.000Z", "resource": created}
        | {"created_at": "2026-01-12T10:00:00.000Z"}
    ).encode()
    header = webhooks.generate_signature_header(body, "whsec_a")
    assert webhooks.verify(payload=body, signature_header=header, secret="whsec_a").id == "evt_1"
    for bad in ("", "t=1", "v1=abc", header.replace("t=", "t=x")):
        with pytest.raises(SignatureVerificationError):
            webhooks.verify(payload=body, signature_header=bad, secret="whsec_a")
