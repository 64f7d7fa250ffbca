"""A Trustless Work that answers a forged envelope (sandbox fault `forge_envelope`: a USDC
transfer of the signer's funds instead of the escrow call) is never signed: the step fails
for good, nothing is recorded as signed or submitted, and no money moves
(providers.md §1.7.1 step 4)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from models.escrow_io import EscrowDeploy, EscrowFund
from models.ids import IdPrefix, new_id
from providers.errors import UnexpectedProviderData
from tests.api.orders_support import act, contract_balance, funded_order
from tests.api.test_envelope import assert_error
from tests.api.test_idempotency import pg_dsn
from tests.api.test_order_durability import entries, order_status
from tests.api.test_order_recovery import assert_ledger_is_chain, chain_attempts
from tests.api.test_users import balance_of
from tests.providers.chain import Chain
from tests.providers.test_escrow_flows import users
from tests.support import Stack, assert_books_balanced


def forge(rule_id: str, path: str = "/escrow/*/fund-escrow") -> dict[str, Any]:
    """The next Trustless Work build on `path` answers a forged envelope (a fresh `rule_id`
    per use: the sandbox's fault log outlives its rules)."""
    rule = {"id": rule_id, "target": "tw", "method": "POST", "path": path, "action": "forge_envelope", "times": 1}
    return {"rules": [rule]}


async def fired(control: httpx.AsyncClient, rule_id: str) -> int:
    return len((await control.get("/faults/log", params={"rule_id": rule_id})).json())


async def rows(stack: Stack, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(pg_dsn(stack))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_forged_deploy_and_fund_envelopes_are_refused_and_nothing_is_signed(chain: Chain) -> None:
    treasury, resolver, buyer, seller = await users(chain)
    await chain.faucet(buyer, "30.00")
    order_id, esc = new_id(IdPrefix.ORDER), new_id(IdPrefix.ESCROW)
    deploy = EscrowDeploy(
        operation_key=f"escrow:{esc}:deploy",
        order_id=order_id,
        title="Logo design",
        description="Two concepts",
        escrow_type="single-release",
        amount_cents=3000,
        parties=chain.parties(buyer=buyer, seller=seller, treasury=treasury, resolver=resolver),
    )
    await chain.control.put("/faults", json=forge(f"forge-deploy-{esc}", "/deployer/*"))
    with pytest.raises(UnexpectedProviderData, match="USDC asset contract"):
        await chain.escrow.deploy(deploy)
    assert await fired(chain.control, f"forge-deploy-{esc}") == 1
    assert await chain_attempts(chain.stack, f"escrow:{esc}:deploy") == []
    deployed = await chain.escrow.deploy(deploy)
    rule = f"forge-{esc}"
    await chain.control.put("/faults", json=forge(rule))
    fund = EscrowFund(
        operation_key=f"escrow:{esc}:fund",
        contract_id=deployed.contract_id,
        escrow_type="single-release",
        amount_cents=3000,
        funder=chain.ref(buyer),
    )
    with pytest.raises(UnexpectedProviderData, match="USDC asset contract") as refused:
        await chain.escrow.fund(fund)
    assert not refused.value.retryable and refused.value.operation == "ESCROW_FUND"
    assert await fired(chain.control, rule) == 1
    assert await chain_attempts(chain.stack, f"escrow:{esc}:fund") == []  # never signed, recorded nor submitted
    assert await chain.usdc_of(buyer.public_key) == Decimal("30")
    assert await chain.usdc_of(deployed.contract_id) == 0
    assert (await chain.invariants())["ok"]
    funded = await chain.escrow.fund(fund)  # the fault fired once: the honest envelope is signed
    assert funded.tx_hash and await chain.usdc_of(deployed.contract_id) == Decimal("30")


async def test_an_order_whose_funding_envelope_is_forged_fails_for_good_with_nothing_moved(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    buyer, seller, order = await funded_order(client, stack, full_key, "40.00", ["reserve", "escrow"])
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.sandbox_port}/_sandbox", timeout=30) as control:
        rule = f"forge-{order['id']}"
        await control.put("/faults", json=forge(rule))
        try:
            refused = await client.post(f"/orders/{order['id']}/escrow/fund", headers=full_key)
            assert await fired(control, rule) == 1
        finally:
            await control.delete("/faults")
        assert_error(refused, 422, "ESCROW_FUNDING_FAILED")
        stuck = await order_status(client, full_key, order["id"])
        assert stuck["status"] == "ESCROW_FUNDING" and stuck["escrow"]["status"] == "CREATED"
        assert stuck["last_error"]["operation"] == "fund_escrow"
        assert stuck["last_error"]["code"] == "UnexpectedProviderData"
        assert "envelope refused before signing" in stuck["last_error"]["message"]
        escrow_id = stuck["escrow"]["id"]
        assert await chain_attempts(stack, f"escrow:{escrow_id}:fund") == []  # nothing signed nor submitted
        signed = await rows(
            stack,
            "SELECT id FROM audit_logs WHERE action = 'WALLET_SECRET_USED' AND actor_id LIKE $1",
            f"escrow:{escrow_id}:fund%",
        )
        assert signed == []
        audited = await rows(
            stack,
            "SELECT result, error FROM audit_logs WHERE action = 'ESCROW_FUNDING_FAILED' AND resource_id = $1",
            order["id"],
        )
        assert len(audited) == 1 and audited[0]["result"] == "FAILURE"
        assert "UnexpectedProviderData" in audited[0]["error"]
        # balances unchanged: still reserved in the books, still in the buyer's wallet on chain
        assert (await balance_of(client, full_key, buyer["id"]))["reserved"] == "40.00"
        assert await entries(stack, order["id"]) == {"ORDER_RESERVE": 1}
        assert await contract_balance(stack, stuck["escrow"]["trustless_contract_id"]) == 0
        await assert_ledger_is_chain(client, full_key, control, buyer, seller)
        await assert_books_balanced(stack)

        funded = await act(client, full_key, order["id"], "escrow/fund")  # an honest provider again
        assert funded["status"] == "IN_PROGRESS" and funded["last_error"] is None
        attempts = await chain_attempts(stack, f"escrow:{escrow_id}:fund")
        assert attempts == [(f"escrow:{escrow_id}:fund:r2", 1, "CONFIRMED")]
        await assert_ledger_is_chain(client, full_key, control, buyer, seller)
        await assert_books_balanced(stack)
