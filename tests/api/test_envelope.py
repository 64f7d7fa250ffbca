"""Bad input never yields a 500: every refusal uses the spec's envelope and codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support import Stack, bearer


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["details"], dict)
    assert "x-request-id" in response.headers
    error: dict[str, Any] = body["error"]
    return error


async def test_unknown_route_is_not_found(client: httpx.AsyncClient, stack: Stack) -> None:
    assert_error(await client.get("/nothing-here"), 404, "NOT_FOUND")
    assert_error(await client.get(stack.api_url.removesuffix("/api/v1") + "/elsewhere"), 404, "NOT_FOUND")


async def test_wrong_method_lists_allowed_methods(client: httpx.AsyncClient) -> None:
    response = await client.put("/health")
    error = assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in error["details"]["allowed_methods"] and "GET" in response.headers["allow"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'"a string"', "application/json"),
        (b'{"name": "x", "scopes": ["read"]}', "text/plain"),
        (b"name=x", "application/x-www-form-urlencoded"),
    ],
)
async def test_bodies_that_are_not_json_objects(
    client: httpx.AsyncClient, master: dict[str, str], content: bytes, content_type: str
) -> None:
    response = await client.post("/auth/api-keys", content=content, headers={**master, "Content-Type": content_type})
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_wrong_types_missing_and_unknown_fields_are_each_named(
    client: httpx.AsyncClient, master: dict[str, str]
) -> None:
    response = await client.post("/auth/api-keys", json={"name": 5, "scopes": "read", "nmae": "typo"}, headers=master)
    error = assert_error(response, 400, "VALIDATION_ERROR")
    fields = {f["field"] for f in error["details"]["fields"]}
    assert {"name", "scopes", "nmae"} <= fields
    missing = assert_error(await client.post("/auth/api-keys", json={}, headers=master), 400, "VALIDATION_ERROR")
    assert {f["field"] for f in missing["details"]["fields"]} == {"name", "scopes"}


async def test_unknown_query_parameters_are_refused(client: httpx.AsyncClient, master: dict[str, str]) -> None:
    error = assert_error(await client.get("/auth/api-keys?stauts=ACTIVE", headers=master), 400, "VALIDATION_ERROR")
    assert error["details"]["fields"] == [{"field": "stauts", "message": "unknown query parameter"}]
    assert_error(await client.get("/auth/api-keys?limit=101", headers=master), 400, "VALIDATION_ERROR")
    assert_error(await client.get("/auth/api-keys?limit=abc", headers=master), 400, "VALIDATION_ERROR")
    assert_error(
        await client.get("/auth/api-keys?cursor=key_doesnotexist123456789", headers=master), 400, "VALIDATION_ERROR"
    )


async def test_ten_megabyte_body_is_payload_too_large(client: httpx.AsyncClient, master: dict[str, str]) -> None:
    big = b'{"name": "' + b"a" * (10 * 1024 * 1024) + b'", "scopes": ["read"]}'
    assert_error(
        await client.post("/auth/api-keys", content=big, headers={**master, "Content-Type": "application/json"}),
        413,
        "PAYLOAD_TOO_LARGE",
    )

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit counts streamed bytes
        for _ in range(20):
            yield b"a" * (512 * 1024)

    streamed = await client.post(
        "/auth/api-keys", content=chunks(), headers={**master, "Content-Type": "application/json"}
    )
    assert_error(streamed, 413, "PAYLOAD_TOO_LARGE")


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/health/live", headers={"X-Request-ID": "req-abc-123"})
    assert echoed.headers["x-request-id"] == "req-abc-123"
    generated = await client.get("/health/live", headers={"X-Request-ID": "x" * 200})
    assert generated.headers["x-request-id"] != "x" * 200 and generated.headers["x-request-id"]


async def test_bad_idempotency_key_header(client: httpx.AsyncClient, master: dict[str, str]) -> None:
    response = await client.post(
        "/auth/api-keys", json={"name": "k", "scopes": ["read"]}, headers={**master, "Idempotency-Key": "x" * 256}
    )
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["details"] == {"header": "Idempotency-Key"}


async def test_scope_error_names_required_and_current(client: httpx.AsyncClient, stack: Stack) -> None:
    from tests.support import create_key

    key = await create_key(client, stack.master_key, ["write"])
    error = assert_error(await client.get("/config", headers=bearer(key["key"])), 403, "INSUFFICIENT_SCOPE")
    assert error["details"] == {"required_scope": "read", "current_scopes": ["write"]}
