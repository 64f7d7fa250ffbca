"""Wallet keys at rest (providers.md §2.2): AES-256-GCM under WALLET_ENCRYPTION_KEY.

Stored form `v1.<kid>.<nonce>.<ciphertext>`: kid = first 8 hex of SHA-256(key); a fresh
12-byte nonce per encryption; associated data binds the ciphertext to its wallet, so a
copy pasted into another row does not decrypt. A seed is decrypted only inside `sign`.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from stellar_sdk import Keypair, TransactionEnvelope

from providers.errors import WalletIntegrityError

VERSION = "v1"


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def wallet_context(wallet_id: str, owner: str) -> bytes:
    """Associated data of a wallet seed: `owner` is the user ID or `platform:<purpose>`."""
    return f"offerhub/wallet-secret/v1|{wallet_id}|{owner}".encode()


@dataclass(frozen=True)
class SealedWallet:
    """What signing needs to know of a wallet row; never holds a plaintext seed."""

    wallet_id: str
    owner: str
    public_key: str
    sealed: str

    def __repr__(self) -> str:  # the ciphertext is not secret, but it has no business in logs
        return f"SealedWallet({self.wallet_id}, {self.public_key})"


class KeyVault:
    def __init__(self, key_hex: str, previous_keys_hex: tuple[str, ...] = ()) -> None:
        keys = [bytes.fromhex(key_hex), *(bytes.fromhex(k) for k in previous_keys_hex if k)]
        for key in keys:
            if len(key) != 32:
                raise ValueError("wallet encryption keys are 32 bytes (64 hex characters)")
        self.current = keys[0]
        self.keys = {key_id(key): key for key in keys}

    @classmethod
    def from_settings(cls, key: str, previous: str | None) -> KeyVault:
        return cls(key, tuple(k.strip() for k in (previous or "").split(",") if k.strip()))

    # sealing --------------------------------------------------------------------------

    def seal_bytes(self, plaintext: bytes, context: bytes) -> str:
        nonce = os.urandom(12)
        ciphertext = AESGCM(self.current).encrypt(nonce, plaintext, context)
        return f"{VERSION}.{key_id(self.current)}.{_b64(nonce)}.{_b64(ciphertext)}"

    def open_bytes(self, sealed: str, context: bytes) -> bytes:
        try:
            version, kid, nonce, ciphertext = sealed.split(".")
        except ValueError:
            raise WalletIntegrityError("sealed value is malformed", provider="vault") from None
        key = self.keys.get(kid)
        if version != VERSION or key is None:
            raise WalletIntegrityError(f"no key for sealed value (kid {kid})", provider="vault")
        try:
            return AESGCM(key).decrypt(_unb64(nonce), _unb64(ciphertext), context)
        except InvalidTag:
            raise WalletIntegrityError("sealed value failed authentication", provider="vault") from None

    def needs_reseal(self, sealed: str) -> bool:
        return sealed.split(".")[1:2] != [key_id(self.current)]

    # wallets ------------------------------------------------------------------------------

    def new_wallet(self, wallet_id: str, owner: str) -> SealedWallet:
        """Generate a keypair (OS randomness) and seal its seed; the seed leaves no other copy."""
        keypair = Keypair.random()
        sealed = self.seal_bytes(keypair.raw_secret_key(), wallet_context(wallet_id, owner))
        return SealedWallet(wallet_id, owner, keypair.public_key, sealed)

    def import_wallet(self, wallet_id: str, owner: str, secret_seed: str) -> SealedWallet:
        keypair = Keypair.from_secret(secret_seed)
        sealed = self.seal_bytes(keypair.raw_secret_key(), wallet_context(wallet_id, owner))
        return SealedWallet(wallet_id, owner, keypair.public_key, sealed)

    def reseal(self, wallet: SealedWallet) -> SealedWallet:
        context = wallet_context(wallet.wallet_id, wallet.owner)
        return SealedWallet(
            wallet.wallet_id,
            wallet.owner,
            wallet.public_key,
            self.seal_bytes(self.open_bytes(wallet.sealed, context), context),
        )

    def sign(self, envelope: TransactionEnvelope, wallet: SealedWallet) -> None:
        """Decrypt, check the key is the wallet's, sign, and drop the key."""
        seed = self.open_bytes(wallet.sealed, wallet_context(wallet.wallet_id, wallet.owner))
        keypair = Keypair.from_raw_ed25519_seed(seed)
        if keypair.public_key != wallet.public_key:
            raise WalletIntegrityError(f"wallet {wallet.wallet_id}: key does not match its address", provider="vault")
        envelope.sign(keypair)
        del keypair, seed
