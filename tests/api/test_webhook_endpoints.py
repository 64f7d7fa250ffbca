"""`/webhook-endpoints` (api.md §11.1-11.5): create, list, get, rotate, delete, their errors,
the secret shown once, the endpoint limit, the audit entries."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from models.webhook_delivery import verify
from tests.support import Stack, assert_books_balanced, bearer, create_key

URL = "https://marketplace.example/hooks/offerhub"


async def create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post(
        "/webhook-endpoints", json={"url": URL, "event_types": ["order.*"], **body}, headers=headers
    )


def fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR", response.text
    return [f["field"] for f in response.json()["error"]["details"]["fields"]]


async def test_create_shows_the_secret_once_then_get_list_rotate_delete(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    key = {**full_key, "Idempotency-Key": str(uuid.uuid4())}
    body = {"event_types": ["order.*", "dispute.resolved", "withdrawal.completed"], "description": "Main backend"}
    created = await create(client, key, **body)
    assert created.status_code == 201, created.text
    endpoint = created.json()
    endpoint_id = endpoint["id"]
    assert endpoint_id.startswith("whe_") and created.headers["location"] == f"/api/v1/webhook-endpoints/{endpoint_id}"
    secret = endpoint["secret"]
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 32
    assert endpoint["secret_hint"] == f"whsec_…{secret[-4:]}"
    assert endpoint["url"] == URL and endpoint["event_types"] == body["event_types"]
    assert endpoint["status"] == "ACTIVE" and endpoint["deleted_at"] is None
    assert endpoint["description"] == "Main backend" and endpoint["created_at"] == endpoint["updated_at"]

    replayed = await create(client, key, **body)
    assert replayed.status_code == 201 and replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json()["id"] == endpoint_id and replayed.json()["secret"] is None

    got = await client.get(f"/webhook-endpoints/{endpoint_id}", headers=full_key)
    assert got.status_code == 200 and got.json() == {**endpoint, "secret": None}
    listed = await client.get("/webhook-endpoints", params={"limit": 100}, headers=full_key)
    assert listed.status_code == 200
    mine = [e for e in listed.json()["data"] if e["id"] == endpoint_id]
    assert mine == [{**endpoint, "secret": None}]

    rotated = await client.post(f"/webhook-endpoints/{endpoint_id}/rotate-secret", headers=full_key)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != secret
    assert rotated.json()["secret_hint"] == f"whsec_…{new_secret[-4:]}"
    assert (await client.get(f"/webhook-endpoints/{endpoint_id}", headers=full_key)).json()["secret"] is None

    deleted = await client.delete(f"/webhook-endpoints/{endpoint_id}", headers=full_key)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["status"] == "DELETED" and deleted.json()["deleted_at"] is not None
    again = await client.delete(f"/webhook-endpoints/{endpoint_id}", headers=full_key)
    assert again.status_code == 200 and again.json() == deleted.json()
    for path in ("", "/deliveries"):
        gone = await client.get(f"/webhook-endpoints/{endpoint_id}{path}", headers=full_key)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "WEBHOOK_ENDPOINT_NOT_FOUND"
        assert gone.json()["error"]["details"] == {"endpoint_id": endpoint_id}
    rotate_gone = await client.post(f"/webhook-endpoints/{endpoint_id}/rotate-secret", headers=full_key)
    assert rotate_gone.status_code == 404
    listed = await client.get("/webhook-endpoints", params={"limit": 100}, headers=full_key)
    assert endpoint_id not in {e["id"] for e in listed.json()["data"]}

    audit = await client.get("/audit/logs", params={"resource_id": endpoint_id}, headers=full_key)
    entries = audit.json()["data"]
    assert [e["action"] for e in entries][::-1] == [
        "WEBHOOK_ENDPOINT_CREATED",
        "WEBHOOK_SECRET_ROTATED",
        "WEBHOOK_ENDPOINT_DELETED",
    ]
    assert all(e["resource_type"] == "webhook_endpoint" for e in entries)
    assert secret not in audit.text and new_secret not in audit.text
    events = await client.get("/events", params={"resource_id": endpoint_id}, headers=full_key)
    assert events.json()["data"] == []  # configuration endpoints emit no events (api.md §1.4)
    await assert_books_balanced(stack)


async def test_bad_requests_are_400_naming_the_field(client: httpx.AsyncClient, full_key: dict[str, str]) -> None:
    for url in (
        "ftp://marketplace.example/hooks",
        "https://user:pass@marketplace.example/hooks",
        "marketplace.example/hooks",
        "https:///nohost",
        "https://marketplace.example/a\u0000b",
        "https://marketplace.example/a b",
        "https://marketplace.example/" + "a" * 2048,
    ):
        assert fields(await create(client, full_key, url=url)) == ["url"], url
    for event_types in ([], ["order.nope"], ["nope.*"], ["order"], ["order.*,user.created"], ["x"] * 51):
        assert fields(await create(client, full_key, event_types=event_types)) == ["event_types"], event_types
    assert fields(await create(client, full_key, description="x" * 256)) == ["description"]
    assert fields(await create(client, full_key, description="a\u0001b")) == ["description"]
    assert fields(await create(client, full_key, eventTypes=["order.*"])) == ["eventTypes"]
    missing = await client.post("/webhook-endpoints", json={}, headers=full_key)
    assert set(fields(missing)) == {"url", "event_types"}
    bad_status = await client.get(
        "/webhook-endpoints/whe_xxxxxxxxxxxxxxxxxxxxx/deliveries", params={"status": "DONE"}, headers=full_key
    )
    assert bad_status.status_code == 400


async def test_wrong_prefix_or_unknown_id_is_404(client: httpx.AsyncClient, full_key: dict[str, str]) -> None:
    for endpoint_id in ("ord_aaaaaaaaaaaaaaaaaaaaa", "whe_aaaaaaaaaaaaaaaaaaaaa", "whe_short"):
        for method, path in (
            ("GET", ""),
            ("DELETE", ""),
            ("POST", "/rotate-secret"),
            ("GET", "/deliveries"),
        ):
            response = await client.request(method, f"/webhook-endpoints/{endpoint_id}{path}", headers=full_key)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["code"] == "WEBHOOK_ENDPOINT_NOT_FOUND"


async def test_scopes(client: httpx.AsyncClient, stack: Stack) -> None:
    reader = bearer((await create_key(client, stack.master_key, ["read"]))["key"])
    writer = bearer((await create_key(client, stack.master_key, ["write"]))["key"])
    assert (await create(client, reader)).status_code == 403
    created = await create(client, writer)
    assert created.status_code == 201
    endpoint_id = created.json()["id"]
    assert (await client.get(f"/webhook-endpoints/{endpoint_id}", headers=writer)).status_code == 403
    assert (await client.get(f"/webhook-endpoints/{endpoint_id}", headers=reader)).status_code == 200
    assert (await client.delete(f"/webhook-endpoints/{endpoint_id}", headers=writer)).status_code == 200


async def test_limit_of_active_endpoints_is_409_and_deleting_frees_a_place(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    listed = await client.get("/webhook-endpoints", params={"limit": 100}, headers=full_key)
    existing = len(listed.json()["data"])
    created: list[str] = []
    try:
        for _ in range(20 - existing):
            response = await create(client, full_key)
            assert response.status_code == 201, response.text
            created.append(response.json()["id"])
        refused = await create(client, full_key)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "WEBHOOK_ENDPOINT_LIMIT_REACHED"
        assert refused.json()["error"]["details"] == {"limit": 20}
        page = await client.get("/webhook-endpoints", params={"limit": 7}, headers=full_key)
        assert len(page.json()["data"]) == 7 and page.json()["pagination"]["has_more"] is True
        after = await client.get(
            "/webhook-endpoints",
            params={"limit": 100, "cursor": page.json()["pagination"]["next_cursor"]},
            headers=full_key,
        )
        assert len(after.json()["data"]) == 13
        assert (await client.delete(f"/webhook-endpoints/{created.pop()}", headers=full_key)).status_code == 200
        again = await create(client, full_key)
        assert again.status_code == 201
        created.append(again.json()["id"])
    finally:
        for endpoint_id in created:
            await client.delete(f"/webhook-endpoints/{endpoint_id}", headers=full_key)
    await assert_books_balanced(stack)


def test_signature_helper_matches_the_documented_scheme() -> None:
    import hashlib
    import hmac

    from models.webhook_delivery import signature_header

    body = b'{"id":"evt_x"}'
    header = signature_header(["whsec_new", "whsec_old"], 1_700_000_000, body)
    expected_new = hmac.new(b"whsec_new", b"1700000000." + body, hashlib.sha256).hexdigest()
    expected_old = hmac.new(b"whsec_old", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected_new},v1={expected_old}"
    assert verify("whsec_old", header, body, now=1_700_000_100)
    assert not verify("whsec_other", header, body, now=1_700_000_100)
    assert not verify("whsec_new", header, body, now=1_700_000_400)  # older than 5 minutes
