"""The client itself: errors mapped to classes, retries that reuse one Idempotency-Key, the
instance endpoints, credentials (tokens, API keys, maintenance, reconciliation), the sync
client generated from the async one, and a package that never imports the server."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

import offerhub_sdk
from offerhub_sdk import (
    APIConnectionError,
    APIError,
    AsyncOfferHub,
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    OfferHub,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServiceUnavailableError,
    UnprocessableError,
)
from tests.sdk.conftest import new_key
from tests.sdk.support import sdk_user
from tests.support import ROOT, Stack, assert_books_balanced


def test_missing_api_key_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OFFERHUB_API_KEY", raising=False)
    with pytest.raises(AuthenticationError):
        OfferHub()
    with pytest.raises(AuthenticationError):
        AsyncOfferHub(api_key="")


async def test_error_answers_raise_their_class_with_code_details_and_request_id(
    async_client: AsyncOfferHub, stack: Stack
) -> None:
    client = async_client
    with pytest.raises(NotFoundError) as missing:
        await client.orders.retrieve("ord_doesnotexist000000000")
    assert (missing.value.status, missing.value.code) == (404, "ORDER_NOT_FOUND")
    assert missing.value.request_id and missing.value.request_id in str(missing.value)

    buyer = await sdk_user(client, stack)
    seller = await sdk_user(client, stack)
    with pytest.raises(InvalidRequestError) as money:
        await client.orders.create(buyer_id=buyer.id, seller_id=seller.id, amount="100", title="x")
    assert (money.value.status, money.value.code) == (400, "INVALID_AMOUNT_FORMAT")
    assert money.value.details["fields"][0]["field"] == "amount"

    order = await client.orders.create(buyer_id=buyer.id, seller_id=seller.id, amount="10.00", title="x")
    with pytest.raises(UnprocessableError) as funds:
        await client.orders.reserve(order.id)
    assert (funds.value.code, funds.value.details["available"]) == ("INSUFFICIENT_FUNDS", "0.00")
    with pytest.raises(ConflictError) as state:
        await client.orders.fund_escrow(order.id)
    assert state.value.code == "INVALID_STATE"

    key = "same-key-" + secrets.token_hex(4)
    await client.orders.cancel(order.id, idempotency_key=key)
    with pytest.raises(ConflictError) as reused:
        await client.orders.cancel(order.id, reason="other body", idempotency_key=key)
    assert reused.value.code == "IDEMPOTENCY_KEY_REUSED"
    replay = await client.orders.cancel(order.id, idempotency_key=key)
    assert replay.replayed and replay.status == "CLOSED"

    async with AsyncOfferHub(api_key="ohk_test_" + "x" * 43, base_url=stack.api_url) as stranger:
        with pytest.raises(AuthenticationError) as unknown:
            await stranger.users.list()
    assert (unknown.value.status, unknown.value.code) == (401, "INVALID_API_KEY")
    async with AsyncOfferHub(api_key=new_key(stack, ["read"]), base_url=stack.api_url) as reader:
        with pytest.raises(PermissionDeniedError) as scope:
            await reader.users.create(external_user_id="nope")
        with pytest.raises(PermissionDeniedError):
            await reader.audit_logs.list()
    assert (scope.value.code, scope.value.details["required_scope"]) == ("INSUFFICIENT_SCOPE", "write")
    async with AsyncOfferHub(api_key="k", base_url="http://127.0.0.1:9/api/v1", max_retries=1) as nowhere:
        with pytest.raises(APIConnectionError):
            await nowhere.me()
    await assert_books_balanced(stack)


class LoseFirstAnswer(httpx.AsyncBaseTransport):
    """The first POST reaches the API, then its answer is lost (a read timeout)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.posts: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST":
            self.posts.append(request)
            if len(self.posts) == 1:
                await response.aread()
                raise httpx.ReadTimeout("answer lost", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_write_whose_answer_is_lost_is_retried_with_the_same_key_and_applies_once(
    stack: Stack, api_key: str
) -> None:
    transport = LoseFirstAnswer()
    http = httpx.AsyncClient(transport=transport)
    async with AsyncOfferHub(api_key=api_key, base_url=stack.api_url, http_client=http) as client:
        external = f"sdk-{secrets.token_hex(6)}"
        user = await client.users.create(external_user_id=external)
        assert user.replayed  # the retry got the stored answer of the first attempt
        keys = {r.headers["idempotency-key"] for r in transport.posts}
        assert len(transport.posts) == 2 and len(keys) == 1
        assert [u.id for u in (await client.users.list(external_user_id=external)).data] == [user.id]
        assert transport.posts[0].headers["user-agent"] == f"offerhub-sdk-python/{offerhub_sdk.__version__}"


def scripted(answers: list[httpx.Response], seen: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return handler


def error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"code": code, "message": code.lower(), "details": {}}}
    return httpx.Response(status, json=body, headers={"X-Request-ID": "req-1", **(headers or {})})


USER = {
    "id": "usr_1",
    "external_user_id": "e",
    "type": "BOTH",
    "status": "ACTIVE",
    "created_at": "2026-01-12T10:00:00.000Z",
}


@pytest.mark.parametrize(
    ("first", "kind"),
    [
        (error(429, "RATE_LIMITED", {"Retry-After": "0"}), RateLimitError),
        (error(503, "MAINTENANCE", {"Retry-After": "0"}), ServiceUnavailableError),
        (error(502, "PROVIDER_ERROR"), ProviderError),
        (error(504, "PROVIDER_TIMEOUT"), ProviderError),
        (error(409, "IDEMPOTENCY_KEY_IN_PROGRESS", {"Retry-After": "0"}), ConflictError),
    ],
)
def test_retryable_answers_are_retried_with_one_key_then_raised(first: httpx.Response, kind: type[APIError]) -> None:
    seen: list[httpx.Request] = []
    http = httpx.Client(transport=httpx.MockTransport(scripted([first, httpx.Response(201, json=USER)], seen)))
    with OfferHub(api_key="k", base_url="http://api.test/api/v1", http_client=http) as client:
        assert client.users.create(external_user_id="e").id == "usr_1"
    assert len(seen) == 2 and len({r.headers["idempotency-key"] for r in seen}) == 1

    seen.clear()
    http = httpx.Client(transport=httpx.MockTransport(scripted([first], seen)))
    client = OfferHub(api_key="k", base_url="http://api.test/api/v1", http_client=http, max_retries=1)
    with client, pytest.raises(kind) as raised:
        client.users.create(external_user_id="e", idempotency_key="mine")
    assert len(seen) == 2 and {r.headers["idempotency-key"] for r in seen} == {"mine"}
    assert (raised.value.status, raised.value.request_id) == (first.status_code, "req-1")
    if isinstance(raised.value, RateLimitError):
        assert raised.value.retry_after == 0


def test_other_errors_are_not_retried_and_unknown_fields_are_kept() -> None:
    seen: list[httpx.Request] = []
    http = httpx.Client(transport=httpx.MockTransport(scripted([error(500, "INTERNAL_ERROR")], seen)))
    with OfferHub(api_key="k", base_url="http://api.test/api/v1", http_client=http) as client, pytest.raises(APIError):
        client.users.retrieve("usr_1")
    assert len(seen) == 1
    newer = {**USER, "loyalty_tier": "gold"}
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(202, json=newer)))
    with OfferHub(api_key="k", base_url="http://api.test/api/v1", http_client=http) as client:
        user = client.users.retrieve("usr_1")
    assert user.accepted and user.model_extra == {"loyalty_tier": "gold"} and user.created_at.tzinfo is not None


async def test_instance_credentials_and_admin_endpoints(
    async_client: AsyncOfferHub, master_client: AsyncOfferHub, stack: Stack
) -> None:
    health = await async_client.health()
    assert health.status == "healthy" and health.version == offerhub_sdk.__version__
    config = await async_client.config()
    assert (config.payment_provider, config.version) == ("crypto", offerhub_sdk.__version__)
    me = await async_client.me()
    assert (me.credential.type, sorted(me.credential.scopes)) == ("api_key", ["read", "support", "write"])

    token = await async_client.tokens.create(scopes=["read"], ttl_seconds=120)
    async with AsyncOfferHub(api_key=token.token, base_url=stack.api_url) as browser:
        assert (await browser.me()).credential.type == "token"

    key = await master_client.api_keys.create(name="sdk-admin", scopes=["read"])
    assert key.key is not None and key.id in [k.id async for k in await master_client.api_keys.list(status="ACTIVE")]
    assert (await master_client.api_keys.revoke(key.id)).status == "REVOKED"
    minted = await master_client.tokens.create(api_key_id=me.credential.id, scopes=["read"])
    assert minted.api_key_id == me.credential.id

    assert not (await master_client.maintenance.status()).enabled
    try:
        enabled = await master_client.maintenance.enable(message="sdk test", retry_after_seconds=1)
        assert enabled.enabled
        async with AsyncOfferHub(api_key=new_key(stack, ["write"]), base_url=stack.api_url, max_retries=0) as c:
            with pytest.raises(ServiceUnavailableError) as closed:
                await c.users.create(external_user_id="during-maintenance")
        assert closed.value.code == "MAINTENANCE"
    finally:
        assert not (await master_client.maintenance.disable()).enabled


async def test_reconciliation_run_through_the_sdk(master_client: AsyncOfferHub) -> None:
    run = await master_client.reconciliation.run()
    assert (await master_client.reconciliation.retrieve_run(run.id)).id == run.id
    assert run.id in [r.id for r in (await master_client.reconciliation.list_runs(limit=5)).data]


def test_sync_client_is_generated_from_the_async_one() -> None:
    result = subprocess.run(
        [sys.executable, "offerhub_sdk/_unasync.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_sdk_imports_nothing_of_the_server() -> None:
    probe = (
        "import json, sys, offerhub_sdk, offerhub_sdk.webhooks;"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd="/", capture_output=True, text=True, check=True)
    loaded = set(json.loads(result.stdout))
    server = {"api", "activities", "workflows", "models", "providers", "sandbox", "cli", "settings", "worker"}
    assert not loaded & server
    assert not loaded & {"temporalio", "sqlalchemy", "fastapi", "stellar_sdk"}
