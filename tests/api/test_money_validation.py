"""Money and currency errors of the request layer, through the real app's route class.

No foundation endpoint takes an amount yet, so a probe route is mounted on the same app
factory and driven over ASGI; later issues test the same mapping on their own endpoints.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from api.policy import Access, GuardedRoute, policy
from models.money import Currency, Money
from tests.support import Stack, in_process_api


class Charge(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Money
    currency: Currency = "USD"


probe = APIRouter(route_class=GuardedRoute)


@probe.post("/api/v1/_probe/charges")
@policy(Access.PUBLIC)
async def charge(body: Charge) -> dict[str, Any]:
    return {"cents": body.amount}


@pytest.fixture
async def probe_client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_api(stack, probe) as http:
        yield http


@pytest.mark.parametrize("amount", [100, 1e3, "100", "1e3", "-1.00", "0.00", "100.0", "1.001", None, True])
async def test_bad_amounts_are_invalid_amount_format(probe_client: httpx.AsyncClient, amount: object) -> None:
    response = await probe_client.post("/_probe/charges", json={"amount": amount})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "INVALID_AMOUNT_FORMAT"
    assert error["details"]["fields"][0]["field"] == "amount"


async def test_good_amount_becomes_cents(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post("/_probe/charges", json={"amount": "120.50"})
    assert response.status_code == 200 and response.json() == {"cents": 12050}


async def test_other_currency_is_invalid_currency(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post("/_probe/charges", json={"amount": "1.00", "currency": "EUR"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "INVALID_CURRENCY"
    assert error["details"]["field"] == "currency" and error["details"]["supported"] == ["USD"]
