import base64
import hashlib
import hmac
import time

import pytest
from stellar_sdk import Account, Keypair, Network, TransactionBuilder

from providers.airtm.status import topup_state, withdrawal_state
from providers.errors import WalletIntegrityError
from providers.stellar.keyvault import KeyVault, SealedWallet
from providers.webhooks import verify_svix, verify_trustless_work

KEY, OTHER = "11" * 32, "22" * 32


def test_sealed_seed_is_bound_to_its_wallet_and_key() -> None:
    vault = KeyVault(KEY)
    wallet = vault.new_wallet("wal_a", "usr_a")
    version, kid, nonce, _ = wallet.sealed.split(".")
    assert version == "v1" and kid == hashlib.sha256(bytes.fromhex(KEY)).hexdigest()[:8]
    envelope = (
        TransactionBuilder(Account(wallet.public_key, 1), Network.TESTNET_NETWORK_PASSPHRASE, 100)
        .append_bump_sequence_op(5)
        .set_timeout(30)
        .build()
    )
    vault.sign(envelope, wallet)
    Keypair.from_public_key(wallet.public_key).verify(envelope.hash(), envelope.signatures[0].signature)
    moved = SealedWallet("wal_b", "usr_a", wallet.public_key, wallet.sealed)  # ciphertext pasted into another row
    with pytest.raises(WalletIntegrityError):
        vault.sign(envelope, moved)
    with pytest.raises(WalletIntegrityError):
        KeyVault(OTHER).sign(envelope, wallet)
    assert vault.new_wallet("wal_a", "usr_a").sealed.split(".")[2] != nonce  # fresh nonce every time


def test_rotation_keeps_old_ciphertexts_readable_then_reseals() -> None:
    old = KeyVault(KEY).new_wallet("wal_a", "usr_a")
    rotated = KeyVault(OTHER, (KEY,))
    assert rotated.needs_reseal(old.sealed)
    fresh = rotated.reseal(old)
    assert not rotated.needs_reseal(fresh.sealed) and fresh.public_key == old.public_key
    envelope = (
        TransactionBuilder(Account(old.public_key, 1), Network.TESTNET_NETWORK_PASSPHRASE, 100)
        .append_bump_sequence_op(5)
        .set_timeout(30)
        .build()
    )
    KeyVault(OTHER).sign(envelope, fresh)


def test_a_wallet_whose_key_does_not_match_its_address_is_refused() -> None:
    vault = KeyVault(KEY)
    wallet = vault.new_wallet("wal_a", "usr_a")
    lying = SealedWallet("wal_a", "usr_a", Keypair.random().public_key, wallet.sealed)
    envelope = (
        TransactionBuilder(Account(lying.public_key, 1), Network.TESTNET_NETWORK_PASSPHRASE, 100)
        .append_bump_sequence_op(5)
        .set_timeout(30)
        .build()
    )
    with pytest.raises(WalletIntegrityError):
        vault.sign(envelope, lying)
    assert wallet.sealed not in repr(wallet)


def test_status_mapping() -> None:
    assert (
        topup_state("confirmed") == "TOPUP_SUCCEEDED" and topup_state("CREATED") == "TOPUP_AWAITING_USER_CONFIRMATION"
    )
    assert topup_state("WHATEVER") is None
    assert withdrawal_state("CANCELED", committed=False) == "WITHDRAWAL_CANCELED"
    assert withdrawal_state("CANCELED", committed=True) == "WITHDRAWAL_FAILED"
    assert withdrawal_state("PENDING", committed=True) == "WITHDRAWAL_PENDING_USER_ACTION"
    assert withdrawal_state("ERROR", committed=True) is None


def test_trustless_work_signature() -> None:
    body = b'{"type":"escrow.funded"}'
    good = hmac.new(b"tw_whsec_x", body, hashlib.sha256).hexdigest()
    assert verify_trustless_work("tw_whsec_x", body, good)
    assert not verify_trustless_work("tw_whsec_x", body + b" ", good)
    assert not verify_trustless_work("tw_whsec_x", body, None)


def test_svix_signature_and_freshness() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    body, msg_id, now = b'{"type":"payin.confirmed"}', "msg_1", int(time.time())
    digest = hmac.new(b"k" * 24, f"{msg_id}.{now}.".encode() + body, hashlib.sha256).digest()
    signature = "v1," + base64.b64encode(digest).decode()
    assert verify_svix(secret, body, msg_id, str(now), f"v1,bogus {signature}", now=now, tolerance_seconds=300)
    assert not verify_svix(secret, body, msg_id, str(now - 301), signature, now=now, tolerance_seconds=300)
    assert not verify_svix(secret, body, "msg_2", str(now), signature, now=now, tolerance_seconds=300)
    assert not verify_svix(secret, body, msg_id, None, signature, now=now, tolerance_seconds=300)
