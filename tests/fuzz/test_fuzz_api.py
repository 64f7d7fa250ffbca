"""Property: no request, however malformed, is answered with a 5xx (api.md §1.2, §1.8).

Every operation of the OpenAPI document gets FUZZ_EXAMPLES generated requests (a fixed
seed: the same requests every run) against the session's real stack; every error answer
must use the envelope. The last test prints how many requests went out and how many 5xx
came back.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from api.app import openapi_document
from tests.fuzz.requests import LOOPBACK_SINK, Operation, Request, operations, requests
from tests.support import Stack, bearer

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
FUZZ_SEED = 20261207


@dataclass
class Tally:
    sent: int = 0
    unsendable: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    bad_envelopes: list[str] = field(default_factory=list)


TALLY = Tally()


@dataclass
class Target:
    base: str
    known: dict[str, list[str]]
    credentials: dict[str, str]
    operations: dict[str, Operation]


OPERATIONS = {op.operation_id: op for op in operations(openapi_document())}


@pytest.fixture(scope="module")
def target(stack: Stack) -> Target:
    """Real resources for the generated paths to hit (a dispute on a funded order, users, a
    withdrawal, a webhook endpoint), and the credentials the requests carry."""
    import asyncio

    from tests.fuzz.resources import seed_resources

    known, credentials = asyncio.run(seed_resources(stack))
    return Target(stack.api_url.removesuffix("/api/v1"), known, credentials, OPERATIONS)


def _send(http: httpx.Client, request: Request) -> httpx.Response | None:
    try:
        return http.request(
            request.method, request.url, params=request.params, headers=request.headers, content=request.content
        )
    except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeError, ValueError):
        return None  # the client refused to put it on the wire: nothing reached the API


def _check(request: Request, response: httpx.Response) -> None:
    TALLY.sent += 1
    TALLY.by_status[response.status_code] += 1
    if response.status_code >= 500:
        TALLY.server_errors.append(f"{response.status_code} {request.describe()} -> {response.text[:300]}")
    elif response.status_code >= 400 and not request.url.endswith("/metrics"):
        try:
            error = response.json()["error"]
            assert isinstance(error["code"], str) and isinstance(error["details"], dict)
        except (ValueError, KeyError, TypeError, AssertionError):
            TALLY.bad_envelopes.append(f"{response.status_code} {request.describe()} -> {response.text[:200]}")


@pytest.mark.parametrize("operation_id", sorted(OPERATIONS))
def test_no_request_gets_a_5xx(target: Target, operation_id: str) -> None:
    op = target.operations[operation_id]

    @seed(FUZZ_SEED)
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        request = data.draw(requests(op, target.known, target.credentials))
        response = _send(http, request)
        if response is None:
            TALLY.unsendable += 1
            return
        _check(request, response)
        if op.operation_id == "maintenance-enable" and response.status_code == 200:
            # the rest of the suite runs on this stack: maintenance never outlives the request
            http.post("/api/v1/admin/maintenance/disable", headers=bearer(target.credentials["master"]))

    with httpx.Client(base_url=target.base, timeout=30) as http:
        run()


def test_fuzz_summary(target: Target, capsys: pytest.CaptureFixture[str]) -> None:
    _delete_sink_endpoints(target)
    with capsys.disabled():
        print(
            f"\nfuzz: {TALLY.sent} requests to {len(OPERATIONS)} operations (seed {FUZZ_SEED}), "
            f"{len(TALLY.server_errors)} answered >= 500, {TALLY.unsendable} refused by the client; "
            f"statuses {dict(sorted(TALLY.by_status.items()))}"
        )
    assert TALLY.server_errors == [], "\n".join(TALLY.server_errors[:20])
    assert TALLY.bad_envelopes == [], "\n".join(TALLY.bad_envelopes[:20])
    assert TALLY.sent >= len(OPERATIONS) * FUZZ_EXAMPLES * 0.8


def _delete_sink_endpoints(target: Target) -> None:
    """Endpoints the fuzzer registered (all on the loopback sink) stop their deliveries."""
    headers = bearer(target.credentials["key"])
    with httpx.Client(base_url=target.base + "/api/v1", timeout=30) as http:
        for endpoint in http.get("/webhook-endpoints", headers=headers, params={"limit": 100}).json()["data"]:
            if endpoint["url"] == LOOPBACK_SINK:
                http.delete(f"/webhook-endpoints/{endpoint['id']}", headers=headers)
