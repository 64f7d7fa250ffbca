"""Outbound webhook delivery (api.md §11.6): the outbox relay starts one WebhookDeliveryWorkflow per
(event, endpoint), which POSTs the signed event until a 2xx, recording every attempt.

The session's workers retry after 0.5 s, 1 s, 1 s, then every 2 s (WEBHOOK_RETRY_SCHEDULE_SECONDS
in tests/support.py). Events come from `POST /users` (`user.created`), which moves no money."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from models.webhook_delivery import verify
from tests.api.webhook_receiver import Receiver, receiver
from tests.support import Stack, assert_books_balanced, assert_eventually


async def new_endpoint(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, event_types: list[str] | None = None
) -> dict[str, Any]:
    response = await client.post(
        "/webhook-endpoints", json={"url": url, "event_types": event_types or ["user.created"]}, headers=headers
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def new_user(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post("/users", json={"external_user_id": f"ext-{secrets.token_hex(6)}"}, headers=headers)
    assert response.status_code == 201, response.text
    user_id: str = response.json()["id"]
    return user_id


async def user_created_event(client: httpx.AsyncClient, headers: dict[str, str], user_id: str) -> dict[str, Any]:
    async def served() -> dict[str, Any] | None:
        page = await client.get("/events", params={"resource_id": user_id, "types": "user.created"}, headers=headers)
        data = page.json()["data"]
        return data[0] if data else None

    event = await assert_eventually(served, timeout=10, message="user.created not served")
    assert event is not None
    return event


async def deliveries(client: httpx.AsyncClient, headers: dict[str, str], endpoint_id: str, **params: Any) -> Any:
    response = await client.get(
        f"/webhook-endpoints/{endpoint_id}/deliveries", params={"limit": 100, **params}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def delivery_row(stack: Stack, delivery_id: str) -> Any:
    engine = create_async_engine(stack.database_url)
    try:
        async with engine.connect() as conn:
            return (
                await conn.execute(text("SELECT * FROM webhook_deliveries WHERE id = :id"), {"id": delivery_id})
            ).first()
    finally:
        await engine.dispose()


async def delivery_report(stack: Stack, event_ids: set[str]) -> str:
    """Where each event stands (sequenced, relayed, its delivery rows), for a failed wait's message."""
    engine = create_async_engine(stack.database_url)
    try:
        async with engine.connect() as conn:
            events = await conn.execute(
                text("SELECT id, seq, relayed_at FROM events WHERE id = ANY(:ids)"), {"ids": sorted(event_ids)}
            )
            rows = await conn.execute(
                text("SELECT id, status, attempts, last_error FROM webhook_deliveries WHERE event_id = ANY(:ids)"),
                {"ids": sorted(event_ids)},
            )
            lines = [f"event {e.id} seq={e.seq} relayed_at={e.relayed_at}" for e in events]
            lines += [f"delivery {d.id} {d.status} attempts={d.attempts} error={d.last_error}" for d in rows]
    finally:
        await engine.dispose()
    relay = [line for name in ("worker", "worker-2") for line in stack.log_text(name).splitlines() if "relay" in line]
    return "\n".join(lines + relay[-20:])


def requests_for(box: Receiver, event_id: str) -> list[Any]:
    return [r for r in box.requests if r.headers.get("offerhub-event-id") == event_id]


async def test_failing_receiver_gets_the_event_once_accepted_with_a_valid_signature(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    async with receiver(script=[500, 500, 500]) as box:
        endpoint = await new_endpoint(client, full_key, box.url)
        try:
            user_id = await new_user(client, full_key)
            event = await user_created_event(client, full_key, user_id)

            async def accepted() -> bool:
                return any(r.status == 200 for r in requests_for(box, event["id"]))

            await assert_eventually(accepted, timeout=30, message="the event was never accepted")
            sent = requests_for(box, event["id"])
            assert [r.status for r in sent] == [500, 500, 500, 200]
            delivery_id = f"whd_{event['id']}_{endpoint['id']}"
            for number, request in enumerate(sent, start=1):
                headers = request.headers
                assert headers["content-type"] == "application/json"
                assert headers["user-agent"] == "OfferHub-Webhooks/1.0"
                assert headers["offerhub-event-id"] == event["id"]
                assert headers["offerhub-event-type"] == "user.created"
                assert headers["offerhub-delivery-id"] == delivery_id
                assert headers["offerhub-delivery-attempt"] == str(number)
                assert request.event == event  # the Event object, as GET /events shows it
            final = sent[-1]
            signature = final.headers["offerhub-signature"]
            assert signature.count("v1=") == 1
            assert verify(endpoint["secret"], signature, final.body, now=int(time.time()))
            assert not verify("whsec_" + "x" * 32, signature, final.body, now=int(time.time()))
            assert sent[1].at - sent[0].at >= 0.45  # backoff between attempts

            async def recorded() -> Any:
                rows = await deliveries(client, full_key, endpoint["id"])
                return rows if rows and rows[0]["status"] == "SUCCEEDED" else None

            [delivery] = await assert_eventually(recorded, timeout=10, message="delivery not recorded SUCCEEDED")
            assert delivery["id"] == delivery_id and delivery["event_id"] == event["id"]
            assert delivery["endpoint_id"] == endpoint["id"] and delivery["event_type"] == "user.created"
            assert delivery["attempts"] == 4 and delivery["last_response_status"] == 200
            assert delivery["last_error"] is None and delivery["next_attempt_at"] is None
            assert delivery["succeeded_at"] is not None and delivery["last_attempt_at"] == delivery["succeeded_at"]
            log = delivery["attempt_log"]
            assert [a["attempt"] for a in log] == [1, 2, 3, 4]
            assert [a["response_status"] for a in log] == [500, 500, 500, 200]
            assert [a["error"] for a in log] == ["HTTP_500", "HTTP_500", "HTTP_500", None]
            assert all(a["duration_ms"] >= 0 for a in log)
            by_event = await deliveries(client, full_key, endpoint["id"], event_id=event["id"], status="SUCCEEDED")
            assert by_event == [delivery]
            assert await deliveries(client, full_key, endpoint["id"], status="FAILED") == []
        finally:
            await client.delete(f"/webhook-endpoints/{endpoint['id']}", headers=full_key)
    await assert_books_balanced(stack)


async def test_two_workers_deliver_each_event_to_each_endpoint_once(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    second = stack.spawn("worker-2", ["worker"])
    try:
        await assert_eventually(
            lambda: asyncio.sleep(0, "worker polling task queue" in stack.log_text("worker-2")),
            timeout=30,
            message="worker-2 never started polling",
        )
        async with receiver() as first_box, receiver() as second_box:
            endpoints = [
                await new_endpoint(client, full_key, first_box.url),
                await new_endpoint(client, full_key, second_box.url, ["user.*", "order.*"]),
            ]
            try:
                users = [await new_user(client, full_key) for _ in range(8)]
                events = [await user_created_event(client, full_key, u) for u in users]
                wanted = {e["id"] for e in events}

                async def all_delivered() -> bool:
                    return all(
                        wanted <= {r.headers["offerhub-event-id"] for r in b.requests} for b in (first_box, second_box)
                    )

                try:
                    await assert_eventually(all_delivered, timeout=45, message="not every event was delivered")
                except AssertionError as exc:
                    boxes = (first_box, second_box)
                    missing = [sorted(wanted - {r.headers["offerhub-event-id"] for r in b.requests}) for b in boxes]
                    raise AssertionError(f"{exc}; missing {missing}\n{await delivery_report(stack, wanted)}") from exc
                await asyncio.sleep(1.5)  # time for a duplicate to show up, if there were one
                for box in (first_box, second_box):
                    counts = Counter(r.headers["offerhub-event-id"] for r in box.requests)
                    assert {e: counts[e] for e in wanted} == dict.fromkeys(wanted, 1)
                for endpoint in endpoints:
                    rows = [d for d in await deliveries(client, full_key, endpoint["id"]) if d["event_id"] in wanted]
                    assert len(rows) == 8 and all(d["attempts"] == 1 for d in rows)
                    assert {d["id"] for d in rows} == {f"whd_{e}_{endpoint['id']}" for e in wanted}
            finally:
                for endpoint in endpoints:
                    await client.delete(f"/webhook-endpoints/{endpoint['id']}", headers=full_key)
    finally:
        second.stop()
    await assert_books_balanced(stack)


async def test_deleted_endpoint_receives_nothing_more(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    async with receiver(default=503) as box:
        endpoint = await new_endpoint(client, full_key, box.url)
        user_id = await new_user(client, full_key)
        event = await user_created_event(client, full_key, user_id)

        delivery_id = f"whd_{event['id']}_{endpoint['id']}"

        async def tried() -> bool:
            # received and recorded: an attempt cut short by the deletion itself is not recorded
            row = await delivery_row(stack, delivery_id)
            return len(requests_for(box, event["id"])) >= 1 and row is not None and row.attempts >= 1

        await assert_eventually(tried, timeout=15, message="no first attempt")
        deleted = await client.delete(f"/webhook-endpoints/{endpoint['id']}", headers=full_key)
        assert deleted.status_code == 200
        seen = len(box.requests)
        await asyncio.sleep(4)  # longer than the session's retry delays (0.5, 1, 1, 2 s)
        assert len(box.requests) == seen

    async def canceled() -> Any:
        row = await delivery_row(stack, delivery_id)
        return row if row is not None and row.status == "FAILED" else None

    row = await assert_eventually(canceled, timeout=10, message="delivery not FAILED after the deletion")
    assert row.last_error == "ENDPOINT_DELETED" and row.next_attempt_at is None and row.attempts >= 1
    await assert_books_balanced(stack)


async def test_gone_ends_the_delivery_and_rotation_signs_with_both_secrets(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    async with receiver(script=[410]) as box:
        endpoint = await new_endpoint(client, full_key, box.url)
        try:
            rotated = await client.post(f"/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=full_key)
            assert rotated.status_code == 200
            first = await user_created_event(client, full_key, await new_user(client, full_key))

            async def failed() -> Any:
                rows = await deliveries(client, full_key, endpoint["id"], event_id=first["id"])
                return rows if rows and rows[0]["status"] == "FAILED" else None

            [gone] = await assert_eventually(failed, timeout=15, message="a 410 did not end the delivery")
            assert gone["attempts"] == 1 and gone["last_response_status"] == 410 and gone["last_error"] == "HTTP_410"
            [request] = requests_for(box, first["id"])
            header = request.headers["offerhub-signature"]
            assert header.count("v1=") == 2  # during the rotation overlap both secrets sign
            for secret in (endpoint["secret"], rotated.json()["secret"]):
                assert verify(secret, header, request.body, now=int(time.time()))

            second = await user_created_event(client, full_key, await new_user(client, full_key))

            async def accepted() -> bool:
                return any(r.status == 200 for r in requests_for(box, second["id"]))

            await assert_eventually(accepted, timeout=15, message="the endpoint stopped receiving after a 410")
        finally:
            await client.delete(f"/webhook-endpoints/{endpoint['id']}", headers=full_key)
    await assert_books_balanced(stack)
