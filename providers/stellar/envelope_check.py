"""Pre-sign check of a Trustless Work envelope (providers.md §1.7.1 step 4): a wallet signs
only the one escrow call the step asked for. Pure: a decoded envelope and the expected
call in, the invoked contract out, `UnexpectedProviderData` on any violation.

What is checked: a `TransactionEnvelope` (never a fee bump) whose source is exactly the
signer; no operation with another source; exactly one `invoke_host_function` operation
invoking a contract function; fee within the cap; the escrow's own contract (for a deploy:
neither the USDC asset contract nor a contract named as another escrow) with the expected
function; every authorization entry for the signer rooted at that same call, its only
sub-invocation allowed being the USDC transfer the step implies (signer -> escrow, at most
the step's amount).
"""

from __future__ import annotations

from dataclasses import dataclass

from stellar_sdk import (
    Address,
    FeeBumpTransactionEnvelope,
    InvokeHostFunction,
    MuxedAccount,
    TransactionEnvelope,
    scval,
)
from stellar_sdk import xdr as stellar_xdr

from providers.errors import UnexpectedProviderData

PROVIDER = "trustless_work"
TRANSFER = "transfer"


@dataclass(frozen=True)
class ExpectedCall:
    """The one call a Trustless Work step may have the signer sign.

    `contract` is the escrow's contract; `None` for a deploy, whose contract does not exist
    yet (the envelope invokes the provider's factory), where `not_contracts` lists contracts
    it must not invoke. `transfer_max_stroops` is the USDC the step moves from the signer to
    the escrow (a fund); 0 means the signer authorizes no transfer at all.
    """

    function: str
    signer: str
    usdc_contract: str
    contract: str | None = None
    transfer_max_stroops: int = 0
    not_contracts: frozenset[str] = frozenset()

    @property
    def is_deploy(self) -> bool:
        return self.contract is None


def decode_envelope(unsigned: str, passphrase: str, *, operation: str = "") -> TransactionEnvelope:
    """The unsigned XDR as a `TransactionEnvelope`; a fee bump or anything undecodable is refused."""
    try:
        if FeeBumpTransactionEnvelope.is_fee_bump_transaction_envelope(unsigned):
            raise _refused("a fee bump envelope", operation)
        return TransactionEnvelope.from_xdr(unsigned, passphrase)
    except UnexpectedProviderData:
        raise
    except Exception:
        raise _refused("the envelope does not decode", operation) from None


def check_envelope(
    envelope: TransactionEnvelope | FeeBumpTransactionEnvelope,
    expected: ExpectedCall,
    *,
    max_fee_stroops: int,
    operation: str = "",
) -> str:
    """Raise `UnexpectedProviderData` unless the envelope is exactly the expected call; the
    contract it invokes otherwise."""
    if not isinstance(envelope, TransactionEnvelope):
        raise _refused("a fee bump envelope", operation)
    tx = envelope.transaction
    if not _is_signer(tx.source, expected.signer):
        raise _refused("the envelope source is not the signing wallet", operation)
    for op in tx.operations:
        if op.source is not None and not _is_signer(op.source, expected.signer):
            raise _refused("an operation has another source", operation)
    if len(tx.operations) != 1 or not isinstance(tx.operations[0], InvokeHostFunction):
        raise _refused("expected exactly one invoke_host_function operation", operation)
    if tx.fee > max_fee_stroops:
        raise _refused(f"fee {tx.fee} above STELLAR_MAX_FEE_STROOPS", operation)
    op = tx.operations[0]
    host = op.host_function
    if host.type != stellar_xdr.HostFunctionType.HOST_FUNCTION_TYPE_INVOKE_CONTRACT or host.invoke_contract is None:
        raise _refused("the operation does not invoke a contract function", operation)
    call = host.invoke_contract
    contract = _address(call.contract_address, operation)
    _check_contract(contract, expected, operation)
    function = _symbol(call.function_name)
    if function != expected.function:
        raise _refused(f"the operation calls {function!r}, not {expected.function!r}", operation)
    for entry in op.auth:
        if _for_signer(entry.credentials, expected.signer, operation):
            _check_authorization(entry.root_invocation, call, contract, expected, operation)
    return contract


def _check_contract(contract: str, expected: ExpectedCall, operation: str) -> None:
    if contract == expected.usdc_contract:
        raise _refused("the operation invokes the USDC asset contract", operation)
    if expected.contract is not None and contract != expected.contract:
        raise _refused("the operation invokes another contract than the escrow", operation)
    if expected.is_deploy and contract in expected.not_contracts:
        raise _refused("the deploy invokes a contract known as another escrow", operation)


def _for_signer(credentials: stellar_xdr.SorobanCredentials, signer: str, operation: str) -> bool:
    """Whether an authorization entry is the signer's: source-account credentials (the
    transaction source signs them) or address credentials naming the signer."""
    if credentials.type == stellar_xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT:
        return True
    if credentials.address is None:
        raise _refused("an authorization entry without an address", operation)
    return _address(credentials.address.address, operation) == signer


def _check_authorization(
    root: stellar_xdr.SorobanAuthorizedInvocation,
    call: stellar_xdr.InvokeContractArgs,
    contract: str,
    expected: ExpectedCall,
    operation: str,
) -> None:
    if root.function.contract_fn != call or (
        root.function.type != stellar_xdr.SorobanAuthorizedFunctionType.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CONTRACT_FN
    ):
        raise _refused("an authorization entry of the signer is rooted at another call", operation)
    subs = list(root.sub_invocations)
    if not subs:
        return
    if expected.transfer_max_stroops <= 0 or len(subs) > 1:
        raise _refused("an authorization entry of the signer holds another sub-invocation", operation)
    _check_transfer(subs[0], contract, expected, operation)


def _check_transfer(
    sub: stellar_xdr.SorobanAuthorizedInvocation, escrow: str, expected: ExpectedCall, operation: str
) -> None:
    """The one sub-invocation a fund may carry: USDC `transfer(signer, escrow, amount <= max)`."""
    function = sub.function.contract_fn
    if (
        sub.function.type != stellar_xdr.SorobanAuthorizedFunctionType.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CONTRACT_FN
        or function is None
        or _address(function.contract_address, operation) != expected.usdc_contract
        or _symbol(function.function_name) != TRANSFER
        or sub.sub_invocations
    ):
        raise _refused("an authorization entry of the signer holds another sub-invocation", operation)
    args = list(function.args)
    try:
        source, destination, amount = scval.from_address(args[0]), scval.from_address(args[1]), args[2]
        stroops = scval.from_int128(amount)
    except Exception:
        raise _refused("a transfer sub-invocation with unexpected arguments", operation) from None
    if len(args) != 3 or source.address != expected.signer or destination.address != escrow:
        raise _refused("a transfer sub-invocation not from the signer to the escrow", operation)
    if not 0 < stroops <= expected.transfer_max_stroops:
        raise _refused(f"a transfer of {stroops} stroops, outside (0, {expected.transfer_max_stroops}]", operation)


def _is_signer(account: MuxedAccount, signer: str) -> bool:
    """Exactly the signer's account: a muxed alias of it is another source."""
    return account.account_muxed_id is None and account.account_id == signer


def _address(value: stellar_xdr.SCAddress, operation: str) -> str:
    try:
        return str(Address.from_xdr_sc_address(value).address)
    except Exception:
        raise _refused("an address that does not decode", operation) from None


def _symbol(value: stellar_xdr.SCSymbol) -> str:
    return value.sc_symbol.decode(errors="replace")


def _refused(reason: str, operation: str) -> UnexpectedProviderData:
    return UnexpectedProviderData(f"envelope refused before signing: {reason}", provider=PROVIDER, operation=operation)
