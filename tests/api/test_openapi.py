"""The OpenAPI document: valid, every answer declared with its model or the error envelope, no
FastAPI 422, and real answers of the stack matching the schema declared for their route and status."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.openapi import OPERATIONS
from models.errors import HTTP_STATUS
from settings import Settings
from tests.api.orders_support import funded_order, funded_user
from tests.api.withdrawals_support import external_account
from tests.support import Stack, bearer, create_key

ENVELOPE = "#/components/schemas/ErrorEnvelope"
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def document() -> Doc:
    placeholder = Settings(  # as `offerhub openapi` builds it
        _env_file=None,
        offerhub_master_key="x" * 32,
        wallet_encryption_key="0" * 64,
        trustless_work_api_key="-",
        trustless_work_webhook_secret="-",
    )
    schema: Doc = create_app(placeholder).openapi()
    return schema


def operations(document: Doc) -> list[tuple[str, str, Doc]]:
    return [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_document_is_valid_openapi(document: Doc) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)


def test_operation_ids_are_clean_and_unique(document: Doc) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)*", i) for i in ids), ids
    declared = {op["operationId"] for _, path, op in operations(document) if path.startswith("/api/v1/")}
    assert declared == set(OPERATIONS)


def test_no_framework_validation_response(document: Doc) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "ValidationError" not in document["components"]["schemas"]
    for _, _, op in operations(document):
        answer = op["responses"].get("422")
        if answer is not None:  # a business 422 (INSUFFICIENT_FUNDS, ...), in the envelope
            assert answer["content"]["application/json"]["schema"] == {"$ref": ENVELOPE}


def test_every_answer_is_a_declared_model_or_the_envelope(document: Doc) -> None:
    for method, path, op in operations(document):
        if not path.startswith("/api/v1/"):
            continue
        responses = op["responses"]
        for status in ("400", "429", "500"):
            assert status in responses, (method, path, status)
        if "security" in op:
            assert "401" in responses, (method, path)
        for status, answer in responses.items():
            content = answer.get("content", {}).get("application/json")
            if status == "302":
                assert content is None
                continue
            assert content is not None, (method, path, status)
            ref = content["schema"]["$ref"]
            if int(status) >= 400 and not (path == "/api/v1/health" and status == "503"):
                assert ref == ENVELOPE, (method, path, status)
                for name, example in content["examples"].items():
                    assert HTTP_STATUS[name] == int(status)
                    assert example["value"]["error"]["code"] == name
            else:
                assert ref.endswith("Public"), (method, path, status, ref)
    schemas = document["components"]["schemas"]
    for name, schema in schemas.items():
        if name.endswith("Public") and name != "WebhookAckPublic":
            assert schema.get("additionalProperties") is False, name
            # nullable fields are present with null: only user_id (of tokens) may be left out
            assert set(schema["properties"]) - set(schema.get("required", [])) <= {"user_id"}, name


def test_state_changing_routes_take_an_idempotency_key(document: Doc) -> None:
    for method, path, op in operations(document):
        if method in ("post", "delete") and "security" in op and "Idempotency-Key retention" in op["description"]:
            assert any(p["name"] == "Idempotency-Key" for p in op.get("parameters", [])), path


# real answers -----------------------------------------------------------------------------------


def _route_of(document: Doc, method: str, url_path: str) -> Doc:
    for path, ops in document["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"
        if re.fullmatch(pattern, url_path) and method.lower() in ops:
            op: Doc = ops[method.lower()]
            return op
    raise AssertionError(f"no documented route for {method} {url_path}")


def assert_declared(document: Doc, response: httpx.Response) -> None:
    """The answer's status is declared for its route, and its JSON validates against that schema."""
    jsonschema = pytest.importorskip("jsonschema")
    op = _route_of(document, response.request.method, response.request.url.path)
    status = str(response.status_code)
    where = f"{response.request.method} {response.request.url.path} -> {status}"
    assert status in op["responses"], f"{where}: status not declared"
    schema = op["responses"][status]["content"]["application/json"]["schema"]
    root = {**schema, "components": document["components"]}
    errors = sorted(jsonschema.Draft202012Validator(root).iter_errors(response.json()), key=str)
    assert not errors, f"{where}: {[f'{list(e.absolute_path)}: {e.message}' for e in errors][:5]}"


async def test_real_answers_match_their_declared_schemas(
    document: Doc, stack: Stack, client: httpx.AsyncClient, master: dict[str, str], full_key: dict[str, str]
) -> None:
    answers: list[httpx.Response] = []

    async def call(method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        response = await client.request(method, url, headers=headers if headers is not None else full_key, **kwargs)
        answers.append(response)
        return response

    # instance, auth, admin
    await call("GET", "/health", {})
    await call("GET", "/health/live", {})
    await call("GET", "/me")
    await call("GET", "/config")
    await call("GET", "/admin/maintenance/status", master)
    key = (await call("POST", "/auth/api-keys", master, json={"name": "openapi", "scopes": ["read"]})).json()
    await call("GET", "/auth/api-keys", master, params={"limit": 2})
    await call("POST", "/auth/token", bearer(key["key"]), json={})
    await call("DELETE", f"/auth/api-keys/{key['id']}", master)
    await call("GET", "/admin/reconciliation/runs", master)

    # users, wallets; orders through escrow, milestones, a dispute
    buyer, seller, order = await funded_order(
        client,
        stack,
        full_key,
        "30.00",
        ["reserve", "escrow", "escrow/fund"],
        milestones=[
            {"milestone_ref": "a", "title": "First", "amount": "10.00"},
            {"milestone_ref": "b", "title": "Second", "amount": "20.00"},
        ],
    )
    await call("POST", "/users", json={"external_user_id": buyer["external_user_id"]})
    for suffix in ("", "/balance", "/wallet", "/wallet/deposit", "/wallet/transactions", "/balance/verify"):
        await call("GET", f"/users/{buyer['id']}{suffix}")
    await call("POST", f"/users/{buyer['id']}/balance/sync")
    await call("GET", "/users", params={"limit": 1})
    await call("GET", f"/orders/{order['id']}")
    await call("GET", "/orders", params={"limit": 2})
    await call("GET", f"/orders/{order['id']}/milestones")
    await call("GET", f"/orders/{order['id']}/milestones/a")
    await call("POST", f"/orders/{order['id']}/milestones/a/complete", json={"note": "done"})
    await call("POST", f"/orders/{order['id']}/milestones/a/approve")
    dispute = (
        await call("POST", f"/orders/{order['id']}/resolution/dispute", json={"opened_by": "BUYER", "reason": "OTHER"})
    ).json()
    await call("POST", f"/disputes/{dispute['id']}/comments", json={"author_type": "SUPPORT", "message": "Looking"})
    await call("GET", f"/disputes/{dispute['id']}/comments")
    await call("POST", f"/disputes/{dispute['id']}/assign", json={"assigned_to": "agent-07"})
    await call("GET", f"/disputes/{dispute['id']}")
    await call("GET", "/disputes", params={"limit": 2})
    await call("GET", f"/orders/{order['id']}")  # with its escrow, milestones and dispute summary

    # an order canceled, withdrawals, events, audit, webhook endpoints
    other = await funded_user(client, stack, full_key, "0")
    small = (
        await call(
            "POST", "/orders", json={"buyer_id": other["id"], "seller_id": seller["id"], "amount": "5.00", "title": "T"}
        )
    ).json()
    await call("POST", f"/orders/{small['id']}/reserve")  # 422 INSUFFICIENT_FUNDS
    await call("POST", f"/orders/{small['id']}/cancel", json={"reason": "changed plans"})
    await call("POST", f"/orders/{small['id']}/cancel")  # 409 INVALID_STATE
    destination = await external_account(stack)
    seller_funded = await funded_user(client, stack, full_key, "15.00")
    withdrawal = (
        await call(
            "POST",
            "/withdrawals",
            json={
                "user_id": seller_funded["id"],
                "amount": "10.00",
                "destination_type": "crypto",
                "destination_ref": destination,
                "commit": False,
            },
        )
    ).json()
    await call("GET", f"/withdrawals/{withdrawal['id']}")
    await call("POST", f"/withdrawals/{withdrawal['id']}/cancel")
    await call("GET", "/withdrawals", params={"limit": 2})
    await call("GET", "/topups", params={"limit": 2})
    await call("GET", "/events", params={"limit": 5}, headers={**full_key, "Accept": "application/json"})
    await call("GET", "/audit/logs", params={"limit": 5})
    endpoint = (
        await call("POST", "/webhook-endpoints", json={"url": "https://example.com/hook", "event_types": ["*"]})
    ).json()
    await call("GET", "/webhook-endpoints")
    await call("GET", f"/webhook-endpoints/{endpoint['id']}")
    await call("POST", f"/webhook-endpoints/{endpoint['id']}/rotate-secret")
    await call("GET", f"/webhook-endpoints/{endpoint['id']}/deliveries")
    await call("DELETE", f"/webhook-endpoints/{endpoint['id']}")

    # errors
    await call("GET", "/orders", {})  # 401
    await call("GET", "/orders", bearer("ohk_test_" + "x" * 43))  # 401
    await call("GET", "/orders", bearer(key["key"]))  # 401 (revoked)
    reader = await create_key(client, stack.master_key, ["read"])
    await call("POST", "/users", bearer(reader["key"]), json={"external_user_id": "nope"})  # 403
    await call("GET", "/orders/ord_doesnotexist000000000")  # 404
    await call("GET", "/orders", params={"limit": 1000})  # 400
    await call("POST", "/orders", json={"amount": 5})  # 400
    await call("POST", "/topups", json={"user_id": buyer["id"], "amount": "5.00"})  # 409 PROVIDER_NOT_ENABLED
    await call("POST", "/webhooks/trustless-work", {}, content=b"{}")  # 400 signature

    for response in answers:
        assert response.status_code < 500, f"{response.request.url}: {response.text}"
        assert_declared(document, response)
    statuses = {r.status_code for r in answers}
    assert {200, 201, 400, 401, 403, 404, 409, 422} <= statuses, statuses
