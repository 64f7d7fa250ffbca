"""The pre-sign check of Trustless Work envelopes (providers.md §1.7.1 step 4): envelopes a
compromised provider could forge are refused, the calls each step asks for pass."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pytest
from stellar_sdk import Account, Address, Asset, Keypair, MuxedAccount, Network, StrKey, TransactionBuilder, scval
from stellar_sdk import xdr as stellar_xdr

from providers.errors import UnexpectedProviderData
from providers.stellar.envelope_check import ExpectedCall, check_envelope, decode_envelope
from providers.stellar.keyvault import KeyVault
from providers.stellar.submitter import ChainStep, ChainSubmitter
from providers.trustless_work.escrow import FUNCTIONS, function_of

PASSPHRASE = Network.TESTNET_NETWORK_PASSPHRASE
MAX_FEE = 5_000_000
SIGNER = Keypair.random().public_key
STRANGER = Keypair.random().public_key
USDC = Asset("USDC", Keypair.random().public_key).contract_id(PASSPHRASE)
ESCROW = StrKey.encode_contract(os.urandom(32))
OTHER_ESCROW = StrKey.encode_contract(os.urandom(32))
FACTORY = StrKey.encode_contract(os.urandom(32))
AMOUNT = 120_0000000  # 120 USDC in stroops
CALL_REF = [scval.to_bytes(os.urandom(32))]


def fund() -> ExpectedCall:
    return ExpectedCall("fund_escrow", SIGNER, USDC, ESCROW, transfer_max_stroops=AMOUNT)


def deploy(kind: str = "single-release") -> ExpectedCall:
    return ExpectedCall(function_of(f"/deployer/{kind}"), SIGNER, USDC, not_contracts=frozenset({OTHER_ESCROW}))


def contract_fn(contract: str, function: str, args: Sequence[stellar_xdr.SCVal]) -> stellar_xdr.InvokeContractArgs:
    return stellar_xdr.InvokeContractArgs(
        contract_address=Address(contract).to_xdr_sc_address(),
        function_name=stellar_xdr.SCSymbol(function.encode()),
        args=list(args),
    )


def invocation(
    contract: str,
    function: str,
    args: Sequence[stellar_xdr.SCVal] = CALL_REF,
    subs: Sequence[stellar_xdr.SorobanAuthorizedInvocation] = (),
) -> stellar_xdr.SorobanAuthorizedInvocation:
    return stellar_xdr.SorobanAuthorizedInvocation(
        function=stellar_xdr.SorobanAuthorizedFunction(
            type=stellar_xdr.SorobanAuthorizedFunctionType.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CONTRACT_FN,
            contract_fn=contract_fn(contract, function, args),
        ),
        sub_invocations=list(subs),
    )


def transfer(source: str = SIGNER, to: str = ESCROW, stroops: int = AMOUNT, token: str = USDC) -> Any:
    args = [scval.to_address(source), scval.to_address(to), scval.to_int128(stroops)]
    return invocation(token, "transfer", args)


def by_source(root: stellar_xdr.SorobanAuthorizedInvocation) -> stellar_xdr.SorobanAuthorizationEntry:
    """An entry the transaction source's signature authorizes."""
    return stellar_xdr.SorobanAuthorizationEntry(
        credentials=stellar_xdr.SorobanCredentials(
            type=stellar_xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT
        ),
        root_invocation=root,
    )


def by_address(address: str, root: stellar_xdr.SorobanAuthorizedInvocation) -> stellar_xdr.SorobanAuthorizationEntry:
    return stellar_xdr.SorobanAuthorizationEntry(
        credentials=stellar_xdr.SorobanCredentials(
            type=stellar_xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_ADDRESS,
            address=stellar_xdr.SorobanAddressCredentials(
                address=Address(address).to_xdr_sc_address(),
                nonce=stellar_xdr.Int64(7),
                signature_expiration_ledger=stellar_xdr.Uint32(1000),
                signature=scval.to_void(),
            ),
        ),
        root_invocation=root,
    )


def builder(source: str | MuxedAccount = SIGNER, fee: int = 100_100) -> TransactionBuilder:
    return TransactionBuilder(Account(source, 41), PASSPHRASE, base_fee=fee).add_time_bounds(0, 2_000_000_000)


def envelope(
    contract: str = ESCROW,
    function: str = "fund_escrow",
    auth: Sequence[stellar_xdr.SorobanAuthorizationEntry] = (),
    **kw: Any,
) -> Any:
    """A Trustless Work-shaped envelope: one invoke of `function` on `contract` with `call_ref`."""
    return builder(**kw).append_invoke_contract_function_op(contract, function, CALL_REF, auth=list(auth)).build()


def refused(env: Any, expected: ExpectedCall, match: str = "") -> None:
    with pytest.raises(UnexpectedProviderData, match=match) as caught:
        check_envelope(env, expected, max_fee_stroops=MAX_FEE, operation="ESCROW_FUND")
    assert not caught.value.retryable and caught.value.provider == "trustless_work"


# -- the calls each step asks for ------------------------------------------------------------


@pytest.mark.parametrize("endpoint", [e for e in FUNCTIONS if not e.startswith("/deployer/")])
def test_each_escrow_call_with_its_function_passes(endpoint: str) -> None:
    function = FUNCTIONS[endpoint]
    expected = ExpectedCall(function, SIGNER, USDC, ESCROW)
    env = envelope(function=function, auth=[by_source(invocation(ESCROW, function))])
    assert check_envelope(env, expected, max_fee_stroops=MAX_FEE) == ESCROW


@pytest.mark.parametrize("kind", ["single-release", "multi-release"])
def test_a_deploy_through_the_factory_passes(kind: str) -> None:
    expected = deploy(kind)
    env = decode_envelope(envelope(FACTORY, expected.function).to_xdr(), PASSPHRASE)
    assert check_envelope(env, expected, max_fee_stroops=MAX_FEE) == FACTORY


def test_a_fund_authorizing_its_transfer_to_the_escrow_passes() -> None:
    for stroops in (AMOUNT, AMOUNT - 1):
        root = invocation(ESCROW, "fund_escrow", subs=[transfer(stroops=stroops)])
        env = envelope(auth=[by_source(root), by_address(SIGNER, root)])
        assert check_envelope(env, fund(), max_fee_stroops=MAX_FEE) == ESCROW


def test_the_sandbox_envelope_without_auth_entries_passes() -> None:
    assert check_envelope(envelope(), fund(), max_fee_stroops=MAX_FEE) == ESCROW


def test_an_entry_of_another_address_is_not_the_signers_to_check() -> None:
    env = envelope(auth=[by_address(STRANGER, invocation(OTHER_ESCROW, "anything", subs=[transfer(STRANGER)]))])
    assert check_envelope(env, fund(), max_fee_stroops=MAX_FEE) == ESCROW


# -- forged operations -------------------------------------------------------------------------


def test_a_usdc_transfer_instead_of_the_escrow_call_is_refused() -> None:
    args = [scval.to_address(SIGNER), scval.to_address(STRANGER), scval.to_int128(AMOUNT)]
    forged = builder().append_invoke_contract_function_op(USDC, "transfer", args).build()
    refused(forged, fund(), "USDC asset contract")
    refused(forged, ExpectedCall("transfer", SIGNER, USDC, USDC), "USDC asset contract")
    refused(envelope(USDC, deploy().function), deploy(), "USDC asset contract")


def test_another_contract_is_refused() -> None:
    refused(envelope(OTHER_ESCROW), fund(), "another contract")


def test_a_deploy_invoking_a_known_escrow_is_refused() -> None:
    refused(envelope(OTHER_ESCROW, deploy().function), deploy(), "another escrow")


def test_another_function_is_refused() -> None:
    refused(envelope(function="release_funds"), fund(), "'release_funds'")
    refused(envelope(FACTORY, "tw_new_multi_release_escrow"), deploy("single-release"), "tw_new_multi")


def test_two_operations_are_refused() -> None:
    two = (
        builder()
        .append_invoke_contract_function_op(ESCROW, "fund_escrow", CALL_REF)
        .append_invoke_contract_function_op(ESCROW, "fund_escrow", CALL_REF)
        .build()
    )
    refused(two, fund(), "exactly one")
    payment = builder().append_payment_op(STRANGER, Asset.native(), "1").build()
    refused(payment, fund(), "exactly one")


def test_an_operation_with_another_source_is_refused() -> None:
    forged = builder().append_invoke_contract_function_op(ESCROW, "fund_escrow", CALL_REF, source=STRANGER).build()
    refused(forged, fund(), "another source")
    mine = builder().append_invoke_contract_function_op(ESCROW, "fund_escrow", CALL_REF, source=SIGNER).build()
    assert check_envelope(mine, fund(), max_fee_stroops=MAX_FEE) == ESCROW


def test_another_or_a_muxed_transaction_source_is_refused() -> None:
    refused(envelope(source=STRANGER), fund(), "source is not the signing wallet")
    refused(envelope(source=MuxedAccount(SIGNER, 9)), fund(), "source is not the signing wallet")


def test_a_fee_above_the_cap_is_refused() -> None:
    refused(envelope(fee=MAX_FEE + 1), fund(), "STELLAR_MAX_FEE_STROOPS")


def test_a_fee_bump_envelope_is_refused() -> None:
    inner = envelope()
    inner.sign(Keypair.random())
    bump = TransactionBuilder.build_fee_bump_transaction(SIGNER, 200_000, inner, PASSPHRASE)
    with pytest.raises(UnexpectedProviderData, match="fee bump"):
        decode_envelope(bump.to_xdr(), PASSPHRASE)
    refused(bump, fund(), "fee bump")
    with pytest.raises(UnexpectedProviderData, match="does not decode"):
        decode_envelope("AAAA-not-xdr", PASSPHRASE)


# -- forged authorization entries --------------------------------------------------------------


def test_an_entry_rooted_at_another_call_is_refused() -> None:
    for root in (
        transfer(),  # a bare USDC transfer the signer would authorize
        invocation(OTHER_ESCROW, "fund_escrow"),
        invocation(ESCROW, "release_funds"),
        invocation(ESCROW, "fund_escrow", args=[scval.to_bytes(b"other call")]),
    ):
        refused(envelope(auth=[by_source(root)]), fund(), "rooted at another call")
        refused(envelope(auth=[by_address(SIGNER, root)]), fund(), "rooted at another call")


def test_an_extra_sub_invocation_is_refused() -> None:
    two = invocation(ESCROW, "fund_escrow", subs=[transfer(stroops=1), transfer(stroops=1)])
    refused(envelope(auth=[by_source(two)]), fund(), "another sub-invocation")
    other = invocation(ESCROW, "fund_escrow", subs=[invocation(OTHER_ESCROW, "fund_escrow")])
    refused(envelope(auth=[by_source(other)]), fund(), "another sub-invocation")
    approve = invocation(ESCROW, "fund_escrow", subs=[invocation(USDC, "approve", [scval.to_address(STRANGER)])])
    refused(envelope(auth=[by_source(approve)]), fund(), "another sub-invocation")
    nested = transfer()
    nested.sub_invocations = [transfer()]
    refused(envelope(auth=[by_source(invocation(ESCROW, "fund_escrow", subs=[nested]))]), fund(), "sub-invocation")


def test_a_transfer_in_a_step_that_moves_no_usdc_is_refused() -> None:
    release = ExpectedCall("release_funds", SIGNER, USDC, ESCROW)
    root = invocation(ESCROW, "release_funds", subs=[transfer(stroops=1)])
    refused(envelope(function="release_funds", auth=[by_source(root)]), release, "another sub-invocation")
    root = invocation(FACTORY, deploy().function, subs=[transfer(to=FACTORY)])
    refused(envelope(FACTORY, deploy().function, auth=[by_source(root)]), deploy(), "another sub-invocation")


def test_a_transfer_above_the_amount_is_refused() -> None:
    root = invocation(ESCROW, "fund_escrow", subs=[transfer(stroops=AMOUNT + 1)])
    refused(envelope(auth=[by_source(root)]), fund(), "outside")


def test_a_transfer_to_someone_else_or_from_someone_else_is_refused() -> None:
    for forged in (transfer(to=STRANGER), transfer(to=OTHER_ESCROW), transfer(source=STRANGER)):
        root = invocation(ESCROW, "fund_escrow", subs=[forged])
        refused(envelope(auth=[by_source(root)]), fund(), "not from the signer to the escrow")


def test_a_transfer_on_another_token_is_refused() -> None:
    fake = StrKey.encode_contract(os.urandom(32))
    root = invocation(ESCROW, "fund_escrow", subs=[transfer(token=fake)])
    refused(envelope(auth=[by_source(root)]), fund(), "another sub-invocation")


# -- the submitter never signs without an expected call ------------------------------------------


class Refusing:
    """A vault, store and lookup that fail the test if the submitter gets past the check."""

    def sign(self, *args: Any) -> None:
        raise AssertionError("signed a refused envelope")


async def test_the_submitter_refuses_before_signing_and_checks_known_escrows() -> None:
    vault = KeyVault("11" * 32)
    wallet = vault.new_wallet("wal_a", "platform:TREASURY")
    submitter = ChainSubmitter(
        horizon=None,  # type: ignore[arg-type]
        trustless=None,
        vault=Refusing(),  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        passphrase=PASSPHRASE,
        max_fee_stroops=MAX_FEE,
    )
    deploy_call = ExpectedCall(FUNCTIONS["/deployer/single-release"], wallet.public_key, USDC)
    unsigned: str = envelope(FACTORY, deploy_call.function, source=wallet.public_key).to_xdr()

    async def build(_: int) -> str:
        return unsigned

    async def known(contract: str) -> bool:
        return contract == FACTORY

    def step(**kw: Any) -> ChainStep:
        return ChainStep("escrow:x:deploy", "ESCROW_DEPLOY", "order", "ord_x", "trustless_work", wallet, build, **kw)

    with pytest.raises(UnexpectedProviderData, match="no expected call"):
        await submitter._checked(step(), unsigned)
    with pytest.raises(UnexpectedProviderData, match="no expected call"):  # expected for another signer
        await submitter._checked(step(expected=ExpectedCall("x", SIGNER, USDC)), unsigned)
    with pytest.raises(UnexpectedProviderData, match="known as another escrow"):
        await submitter._checked(step(expected=deploy_call, known_escrow=known), unsigned)
    passed = await submitter._checked(step(expected=deploy_call), unsigned)
    assert passed.transaction.source.account_id == wallet.public_key
