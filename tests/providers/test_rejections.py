"""The sandbox refuses what the real services refuse: wrong signer, replays, wrong roles."""

from __future__ import annotations

from decimal import Decimal

import pytest
from stellar_sdk import Account, TransactionBuilder, TransactionEnvelope

from models.escrow_io import EscrowDeploy, EscrowFund
from models.ids import IdPrefix, new_id
from providers.errors import ProviderRejected
from tests.providers.chain import Chain
from tests.providers.test_escrow_flows import users


async def funded_escrow(chain: Chain) -> tuple:  # type: ignore[type-arg]
    treasury, resolver, buyer, seller = await users(chain)
    await chain.faucet(buyer, "50.00")
    esc = new_id(IdPrefix.ESCROW)
    deployed = await chain.escrow.deploy(
        EscrowDeploy(
            operation_key=f"escrow:{esc}:deploy",
            order_id=new_id(IdPrefix.ORDER),
            title="t",
            description="d",
            escrow_type="single-release",
            amount_cents=5000,
            parties=chain.parties(buyer=buyer, seller=seller, treasury=treasury, resolver=resolver),
        )
    )
    await chain.escrow.fund(
        EscrowFund(
            operation_key=f"escrow:{esc}:fund",
            contract_id=deployed.contract_id,
            escrow_type="single-release",
            amount_cents=5000,
            funder=chain.ref(buyer),
        )
    )
    return treasury, resolver, buyer, seller, deployed.contract_id


async def test_a_transaction_signed_by_the_wrong_key_is_tx_bad_auth(chain: Chain) -> None:
    _, _, buyer, seller, contract = await funded_escrow(chain)
    unsigned = await chain.trustless.build(
        "/escrow/single-release/dispute-escrow",
        {"contractId": contract, "signer": buyer.public_key},
        operation="dispute",
    )
    envelope = TransactionEnvelope.from_xdr(unsigned, chain.stack.env["STELLAR_NETWORK_PASSPHRASE"])
    chain.vault.sign(envelope, seller)  # the seller's valid key, but not the envelope's source
    sent = await chain.trustless.send_transaction(envelope.to_xdr())
    assert not sent.applied and sent.tx_code == "tx_bad_auth"
    horizon = await chain.horizon.submit(envelope.to_xdr())
    assert not horizon.applied and horizon.tx_code == "tx_bad_auth"
    assert await chain.horizon.transaction(envelope.hash_hex()) is None  # admission rejections leave no history


async def test_a_replayed_transaction_applies_once(chain: Chain) -> None:
    treasury = await chain.treasury()
    buyer = await chain.activated(treasury, "usr_replay")
    seller = await chain.activated(treasury, "usr_replay2")
    await chain.faucet(buyer, "10.00")
    build = chain.factory.usdc_payment(buyer.public_key, seller.public_key, 300)
    envelope = TransactionEnvelope.from_xdr(await build(1), chain.stack.env["STELLAR_NETWORK_PASSPHRASE"])
    chain.vault.sign(envelope, buyer)
    first = await chain.horizon.submit(envelope.to_xdr())
    again = await chain.horizon.submit(envelope.to_xdr())  # the same signed envelope
    assert first.successful and again.successful and again.body["hash"] == first.body["hash"]
    assert await chain.usdc_of(seller.public_key) == Decimal("3")
    via_tw = await chain.trustless.send_transaction(envelope.to_xdr())  # any submitter answers a known hash
    assert via_tw.successful and via_tw.body["hash"] == first.body["hash"]
    assert await chain.usdc_of(seller.public_key) == Decimal("3")
    # a new transaction on the consumed sequence is refused at admission
    used = envelope.transaction.sequence
    second = (
        TransactionBuilder(Account(buyer.public_key, used - 1), chain.stack.env["STELLAR_NETWORK_PASSPHRASE"], 100)
        .append_payment_op(seller.public_key, chain.usdc, "1")
        .add_text_memo("again")
        .set_timeout(30)
        .build()
    )
    chain.vault.sign(second, buyer)
    refused = await chain.horizon.submit(second.to_xdr())
    assert not refused.applied and refused.tx_code == "tx_bad_seq"


@pytest.mark.parametrize(
    ("path", "role", "code"),
    [
        ("/escrow/single-release/approve-milestone", "approver", "ESCROW_ONLY_APPROVER_CAN_APPROVE"),
        ("/escrow/single-release/release-funds", "releaseSigner", "ESCROW_ONLY_RELEASE_SIGNER_CAN_RELEASE"),
        (
            "/escrow/single-release/change-milestone-status",
            "serviceProvider",
            "ESCROW_ONLY_SERVICE_PROVIDER_CAN_CHANGE_STATUS",
        ),
        ("/escrow/single-release/resolve-dispute", "disputeResolver", "ESCROW_ONLY_DISPUTE_RESOLVER_CAN_RESOLVE"),
    ],
)
async def test_a_wrong_role_call_is_refused_before_anything_is_signed(
    chain: Chain, path: str, role: str, code: str
) -> None:
    _, _, buyer, seller, contract = await funded_escrow(chain)
    intruder = seller.public_key if role in ("approver", "releaseSigner") else buyer.public_key
    body = {
        "contractId": contract,
        role: intruder,
        "milestoneIndex": "0",
        "newStatus": "completed",
        "distributions": [{"address": intruder, "amount": 50}],
    }
    with pytest.raises(ProviderRejected) as refused:
        await chain.trustless.build(path, body, operation="wrong-role")
    assert refused.value.provider_code == code and refused.value.http_status == 403


async def test_the_resolver_cannot_dispute(chain: Chain) -> None:
    _, resolver, _, _, contract = await funded_escrow(chain)
    with pytest.raises(ProviderRejected) as refused:
        await chain.trustless.build(
            "/escrow/single-release/dispute-escrow",
            {"contractId": contract, "signer": resolver.public_key},
            operation="dispute",
        )
    assert refused.value.provider_code == "ESCROW_DISPUTE_RESOLVER_CANNOT_DISPUTE"
