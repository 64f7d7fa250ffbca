"""Wallet rows with a freshly generated, sealed key (providers.md §2.2)."""

from __future__ import annotations

from models.ids import IdPrefix, new_id
from models.tables import Wallet
from models.timefmt import utcnow
from providers.stellar.keyvault import KeyVault


def new_wallet_row(vault: KeyVault, *, purpose: str, network: str, user_id: str | None = None) -> Wallet:
    """A wallet row with a freshly generated, sealed key (stage KEYPAIR_CREATED)."""
    wallet_id = new_id(IdPrefix.WALLET)
    keys = vault.new_wallet(wallet_id, user_id or f"platform:{purpose}")
    now = utcnow()
    return Wallet(
        id=wallet_id,
        user_id=user_id,
        purpose=purpose,
        network=network,
        public_key=keys.public_key,
        secret_encrypted=keys.sealed,
        setup_stage="KEYPAIR_CREATED",
        status="PENDING",
        created_at=now,
        updated_at=now,
    )
