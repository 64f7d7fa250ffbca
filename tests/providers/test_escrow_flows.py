"""A complete escrow driven through the provider clients alone, on the sandbox."""

from __future__ import annotations

from decimal import Decimal

from models.escrow_io import (
    Distribution,
    EscrowDeploy,
    EscrowDispute,
    EscrowFund,
    EscrowRelease,
    EscrowResolve,
    MilestoneApprove,
    MilestoneMark,
    MilestoneSpec,
)
from models.ids import IdPrefix, new_id
from tests.providers.chain import Chain


async def users(chain: Chain) -> tuple:  # type: ignore[type-arg]
    treasury = await chain.treasury()
    resolver = await chain.activated(treasury, "platform:RESOLVER")
    buyer = await chain.activated(treasury, new_id(IdPrefix.USER))
    seller = await chain.activated(treasury, new_id(IdPrefix.USER))
    return treasury, resolver, buyer, seller


async def test_single_release_escrow_pays_the_seller_to_the_cent(chain: Chain) -> None:
    treasury, resolver, buyer, seller = await users(chain)
    await chain.faucet(buyer, "120.00")
    assert await chain.usdc_of(buyer.public_key) == Decimal("120")
    order_id, esc = new_id(IdPrefix.ORDER), new_id(IdPrefix.ESCROW)
    deployed = await chain.escrow.deploy(
        EscrowDeploy(
            operation_key=f"escrow:{esc}:deploy",
            order_id=order_id,
            title="Logo design",
            description="Two concepts",
            escrow_type="single-release",
            amount_cents=12000,
            parties=chain.parties(buyer=buyer, seller=seller, treasury=treasury, resolver=resolver),
        )
    )
    contract = deployed.contract_id
    assert contract.startswith("C")
    call = {"contract_id": contract, "escrow_type": "single-release"}
    await chain.escrow.fund(
        EscrowFund(operation_key=f"escrow:{esc}:fund", amount_cents=12000, funder=chain.ref(buyer), **call)
    )
    assert await chain.usdc_of(contract) == Decimal("120")
    assert await chain.usdc_of(buyer.public_key) == 0
    await chain.escrow.mark_milestone(
        MilestoneMark(
            operation_key=f"escrow:{esc}:complete",
            milestone_index=0,
            evidence="delivered",
            service_provider=chain.ref(seller),
            **call,
        )
    )
    await chain.escrow.approve_milestone(
        MilestoneApprove(operation_key=f"escrow:{esc}:approve", milestone_index=0, approver=chain.ref(buyer), **call)
    )
    released = await chain.escrow.release(
        EscrowRelease(operation_key=f"escrow:{esc}:release", release_signer=chain.ref(buyer), **call)
    )
    assert released.tx_hash
    assert await chain.usdc_of(seller.public_key) == Decimal("120")
    assert await chain.usdc_of(buyer.public_key) == 0
    assert await chain.usdc_of(contract) == 0
    snapshot = await chain.escrow.read(contract, "single-release", treasury.public_key)
    assert snapshot.status == "RELEASED" and snapshot.balance_stroops == 0 and snapshot.engagement_id == order_id
    assert (await chain.invariants())["ok"]


async def test_dispute_resolved_by_a_split(chain: Chain) -> None:
    treasury, resolver, buyer, seller = await users(chain)
    await chain.faucet(buyer, "120.00")
    esc = new_id(IdPrefix.ESCROW)
    deployed = await chain.escrow.deploy(
        EscrowDeploy(
            operation_key=f"escrow:{esc}:deploy",
            order_id=new_id(IdPrefix.ORDER),
            title="Split",
            description="-",
            escrow_type="single-release",
            amount_cents=12000,
            parties=chain.parties(buyer=buyer, seller=seller, treasury=treasury, resolver=resolver),
        )
    )
    call = {"contract_id": deployed.contract_id, "escrow_type": "single-release"}
    await chain.escrow.fund(
        EscrowFund(operation_key=f"escrow:{esc}:fund", amount_cents=12000, funder=chain.ref(buyer), **call)
    )
    await chain.escrow.dispute(EscrowDispute(operation_key=f"escrow:{esc}:dispute", disputer=chain.ref(buyer), **call))
    assert (await chain.escrow.read(deployed.contract_id, "single-release", treasury.public_key)).status == "DISPUTED"
    step = await chain.escrow.resolve(
        EscrowResolve(
            operation_key=f"escrow:{esc}:resolve:1",
            resolver=chain.ref(resolver),
            **call,
            distributions=[
                Distribution(address=seller.public_key, amount_cents=8000),
                Distribution(address=buyer.public_key, amount_cents=4000),
            ],
        )
    )
    assert sum(p.net_stroops for p in step.payouts) == 120 * 10_000_000
    assert await chain.usdc_of(seller.public_key) == Decimal("80")
    assert await chain.usdc_of(buyer.public_key) == Decimal("40")
    assert await chain.usdc_of(deployed.contract_id) == 0
    assert (await chain.invariants())["ok"]


async def test_multi_release_pays_milestone_by_milestone(chain: Chain) -> None:
    treasury, resolver, buyer, seller = await users(chain)
    await chain.faucet(buyer, "120.00")
    esc = new_id(IdPrefix.ESCROW)
    deployed = await chain.escrow.deploy(
        EscrowDeploy(
            operation_key=f"escrow:{esc}:deploy",
            order_id=new_id(IdPrefix.ORDER),
            title="Two steps",
            description="-",
            escrow_type="multi-release",
            amount_cents=12000,
            milestones=[
                MilestoneSpec(title="Concepts", amount_cents=6000),
                MilestoneSpec(title="Final", amount_cents=6000),
            ],
            parties=chain.parties(buyer=buyer, seller=seller, treasury=treasury, resolver=resolver),
        )
    )
    call = {"contract_id": deployed.contract_id, "escrow_type": "multi-release"}
    await chain.escrow.fund(
        EscrowFund(operation_key=f"escrow:{esc}:fund", amount_cents=12000, funder=chain.ref(buyer), **call)
    )
    for index, expected in ((0, Decimal("60")), (1, Decimal("120"))):
        ms = new_id(IdPrefix.MILESTONE)
        await chain.escrow.mark_milestone(
            MilestoneMark(
                operation_key=f"milestone:{ms}:complete",
                milestone_index=index,
                service_provider=chain.ref(seller),
                **call,
            )
        )
        await chain.escrow.approve_milestone(
            MilestoneApprove(
                operation_key=f"milestone:{ms}:approve", milestone_index=index, approver=chain.ref(buyer), **call
            )
        )
        await chain.escrow.release(
            EscrowRelease(
                operation_key=f"milestone:{ms}:release", milestone_index=index, release_signer=chain.ref(buyer), **call
            )
        )
        assert await chain.usdc_of(seller.public_key) == expected
    assert await chain.usdc_of(deployed.contract_id) == 0
    assert (await chain.invariants())["ok"]
