"""Under injected errors and answers dropped after the effect, retries find the effect
already applied instead of applying it twice (providers.md §1.7)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from models.escrow_io import EscrowDeploy, EscrowFund, EscrowRelease, MilestoneApprove, MilestoneMark
from models.ids import IdPrefix, new_id
from providers.airtm.client import AirtmClient, payin_body
from providers.errors import ProviderTimeout
from tests.providers.chain import Chain, retrying
from tests.providers.test_escrow_flows import users

FAULTS: dict[str, Any] = {
    "seed": "faults-30",
    "rules": [
        {
            "id": "tw-send-drop",
            "target": "tw",
            "method": "POST",
            "path": "/helper/send-transaction",
            "probability": 0.3,
            "action": "drop_after_effect",
            "drop_mode": "error",
        },
        {
            "id": "tw-build-5xx",
            "target": "tw",
            "method": "POST",
            "path": "/escrow/**",
            "probability": 0.3,
            "action": "error",
            "status": 503,
            "retry_after_s": 0,
        },
        {
            "id": "tw-deploy-5xx",
            "target": "tw",
            "method": "POST",
            "path": "/deployer/*",
            "probability": 0.3,
            "action": "error",
            "status": 502,
        },
        {
            "id": "horizon-submit-drop",
            "target": "horizon",
            "method": "POST",
            "path": "/transactions",
            "probability": 0.3,
            "action": "drop_after_effect",
            "drop_mode": "error",
        },
        {
            "id": "horizon-read-5xx",
            "target": "horizon",
            "method": "GET",
            "path": "/**",
            "probability": 0.3,
            "action": "error",
            "status": 503,
        },
    ],
}


async def confirmed_rows(chain: Chain, prefix: str) -> dict[str, int]:
    async with chain.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT operation_key, count(*) FROM chain_transactions WHERE status = 'CONFIRMED' "
                "AND operation_key LIKE :p GROUP BY operation_key"
            ),
            {"p": f"{prefix}%"},
        )
        return {key: int(count) for key, count in rows.all()}


def single_release(chain: Chain, amount_cents: int, **roles: Any) -> tuple[str, EscrowDeploy]:
    """A new escrow ID and the deploy request of a single-release escrow between `roles`."""
    esc = new_id(IdPrefix.ESCROW)
    deploy = EscrowDeploy(
        operation_key=f"escrow:{esc}:deploy",
        order_id=new_id(IdPrefix.ORDER),
        title="Under faults",
        description="-",
        escrow_type="single-release",
        amount_cents=amount_cents,
        parties=chain.parties(**roles),
    )
    return esc, deploy


async def test_escrow_lifecycle_applies_each_step_once_under_faults(chain: Chain) -> None:
    treasury, resolver, buyer, seller = await users(chain)
    await chain.faucet(buyer, "120.00")
    configured = await chain.control.put("/faults", json=FAULTS)
    assert configured.status_code == 200, configured.text
    esc, deploy = single_release(chain, 12000, buyer=buyer, seller=seller, treasury=treasury, resolver=resolver)
    contract = (await retrying(lambda: chain.escrow.deploy(deploy))).contract_id
    call = {"contract_id": contract, "escrow_type": "single-release"}
    steps = [
        lambda: chain.escrow.fund(
            EscrowFund(operation_key=f"escrow:{esc}:fund", amount_cents=12000, funder=chain.ref(buyer), **call)
        ),
        lambda: chain.escrow.mark_milestone(
            MilestoneMark(
                operation_key=f"escrow:{esc}:complete", milestone_index=0, service_provider=chain.ref(seller), **call
            )
        ),
        lambda: chain.escrow.approve_milestone(
            MilestoneApprove(
                operation_key=f"escrow:{esc}:approve", milestone_index=0, approver=chain.ref(buyer), **call
            )
        ),
        lambda: chain.escrow.release(
            EscrowRelease(operation_key=f"escrow:{esc}:release", release_signer=chain.ref(buyer), **call)
        ),
    ]
    for step in steps:
        await retrying(step)
    # and a retry after success is answered from the record, with no provider call
    again = await retrying(steps[-1])
    assert again.contract_id == contract
    await chain.control.delete("/faults")

    assert await chain.usdc_of(seller.public_key) == Decimal("120")
    assert await chain.usdc_of(buyer.public_key) == 0
    assert await chain.usdc_of(contract) == 0
    escrow = (await chain.control.get(f"/tw/escrows/{contract}")).json()
    applied = [c["call"] for c in escrow["calls"]]
    assert applied == [
        "deployer/single-release",
        "fund-escrow",
        "change-milestone-status",
        "approve-milestone",
        "release-funds",
    ]
    assert set((await confirmed_rows(chain, f"escrow:{esc}:")).values()) == {1}
    log = (await chain.control.get("/faults/log", params={"limit": 1000})).json()
    dropped = [e for e in log if e["action"] == "drop_after_effect" and e["effect_applied"]]
    errors = [e for e in log if e["action"] == "error"]
    assert dropped and errors, "the seeded faults must have hit this run"
    assert (await chain.invariants())["ok"]


async def test_airtm_creates_and_commits_once_under_faults(chain: Chain) -> None:
    env = chain.stack.env
    airtm = AirtmClient(env["AIRTM_BASE_URL"], env["AIRTM_API_KEY"], env["AIRTM_API_SECRET"], rate_per_second=1000)
    email = f"{new_id(IdPrefix.USER)}@example.com"
    await chain.control.post("/airtm/users", json={"email": email, "balance": "500.00"})
    faults = {
        "seed": "airtm-faults",
        "rules": [
            {
                "id": "payin-drop",
                "target": "airtm",
                "method": "POST",
                "path": "/payins",
                "times": 1,
                "action": "drop_after_effect",
                "drop_mode": "error",
            },
            {
                "id": "payout-drop",
                "target": "airtm",
                "method": "POST",
                "path": "/payouts",
                "times": 1,
                "action": "drop_after_effect",
                "drop_mode": "error",
            },
            {
                "id": "commit-drop",
                "target": "airtm",
                "method": "POST",
                "path": "/payouts/*/commit",
                "times": 1,
                "action": "drop_after_effect",
                "drop_mode": "error",
            },
            {
                "id": "reads-5xx",
                "target": "airtm",
                "method": "GET",
                "path": "/**",
                "probability": 0.3,
                "action": "error",
                "status": 503,
            },
        ],
    }
    assert (await chain.control.put("/faults", json=faults)).status_code == 200
    try:
        topup = new_id(IdPrefix.TOPUP)
        body = payin_body(topup, 5000, "Wallet top-up", "http://127.0.0.1:4000")
        payin = await retrying(lambda: airtm.create_payin_once(body))
        again = await retrying(lambda: airtm.create_payin_once(body))
        assert payin["id"] == again["id"] and payin["code"] == topup
        withdrawal = new_id(IdPrefix.WITHDRAWAL)
        payout_body = {
            "code": withdrawal,
            "airtmUserEmail": email,
            "amount": 40,
            "notes": "Payout",
            "internalNote": "bank:1234",
            "requireIdVerified": False,
            "commit": False,
        }
        payout = await retrying(lambda: airtm.create_payout_once(payout_body))
        committed = await retrying(lambda: airtm.commit_payout(payout["id"]))
        assert committed["status"] in ("COMMITTED", "COMPLETED")
        recommitted = await retrying(lambda: airtm.commit_payout(payout["id"]))  # "already processed" -> read
        assert recommitted["id"] == payout["id"]
    finally:
        await chain.control.delete("/faults")
        await airtm.close()
    assert len((await chain.control.get("/airtm/payins", params={"code": topup})).json()) == 1
    assert len((await chain.control.get("/airtm/payouts", params={"code": withdrawal})).json()) == 1
    log = (await chain.control.get("/faults/log", params={"limit": 1000})).json()
    assert {e["rule_id"] for e in log if e["effect_applied"]} >= {"payin-drop", "payout-drop", "commit-drop"}
    assert (await chain.invariants())["ok"]


async def test_a_build_slower_than_its_timeout_is_waited_for_on_the_retry(chain: Chain) -> None:
    """Sustained latency above the build timeout (the 40 s of a slow provider, scaled down):
    the retry waits twice as long and gets through; a fast build brings the timeout back."""
    treasury, resolver, buyer, seller = await users(chain)
    await chain.faucet(buyer, "5.00")
    tw = chain.trustless
    tw.base_build_timeout = tw.build_timeout = 1.0
    esc, deploy = single_release(chain, 500, buyer=buyer, seller=seller, treasury=treasury, resolver=resolver)
    contract = (await chain.escrow.deploy(deploy)).contract_id
    slow = {
        "id": "slow-fund-build",
        "target": "tw",
        "method": "POST",
        "path": "/escrow/single-release/fund-escrow",
        "action": "latency_only",
        "latency_ms": 1500,
    }
    assert (await chain.control.put("/faults", json={"rules": [slow]})).status_code == 200
    fund = EscrowFund(
        operation_key=f"escrow:{esc}:fund",
        contract_id=contract,
        escrow_type="single-release",
        amount_cents=500,
        funder=chain.ref(buyer),
    )
    try:
        with pytest.raises(ProviderTimeout):
            await chain.escrow.fund(fund)
        assert tw.build_timeout == 2.0
        assert (await chain.escrow.fund(fund)).contract_id == contract
        await chain.control.delete("/faults")
        mark = MilestoneMark(
            operation_key=f"escrow:{esc}:complete",
            contract_id=contract,
            escrow_type="single-release",
            milestone_index=0,
            service_provider=chain.ref(seller),
        )
        await chain.escrow.mark_milestone(mark)
        assert tw.build_timeout == 1.0
    finally:
        await chain.control.delete("/faults")
        tw.base_build_timeout = tw.build_timeout = 30.0
