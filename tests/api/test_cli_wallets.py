"""`offerhub wallets import-treasury` and `rotate-key` against a real PostgreSQL: each test
migrates a database of its own (with `offerhub migrate`) on the session's server, so the
stack's platform wallets and keys stay untouched."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col
from stellar_sdk import Keypair

from cli.stack import _ensure_database
from models.ids import IdPrefix, new_id
from models.tables import Wallet, WebhookEndpoint
from models.timefmt import utcnow
from models.webhook_delivery import secret_context
from providers.errors import WalletIntegrityError
from providers.stellar.keyvault import KeyVault, wallet_context
from tests.support import Stack


def offerhub(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], env=env, input=stdin, capture_output=True, text=True, timeout=90
    )


@pytest.fixture
def scratch(stack: Stack) -> Iterator[dict[str, str]]:
    """The stack's environment with DATABASE_URL on a freshly migrated database of its own."""
    url = urlparse(stack.database_url)
    socket_dir = parse_qs(url.query)["host"][0]
    name = f"cli_{secrets.token_hex(4)}"
    asyncio.run(_ensure_database(socket_dir, name))
    env = {**stack.env, "DATABASE_URL": stack.database_url.replace(url.path, f"/{name}", 1)}
    env.pop("OFFERHUB_TREASURY_SECRET", None)
    env.pop("WALLET_ENCRYPTION_PREVIOUS_KEYS", None)
    migrated = offerhub(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert offerhub(env, "migrate").returncode == 0  # idempotent
    yield env


async def _wallets(env: dict[str, str]) -> list[Wallet]:
    engine = create_async_engine(env["DATABASE_URL"])
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(Wallet).order_by(col(Wallet.created_at)))).all()
            return [Wallet.model_validate(row._mapping) for row in rows]
    finally:
        await engine.dispose()


def test_import_treasury_seals_the_seed_from_stdin_or_env_and_is_idempotent(scratch: dict[str, str]) -> None:
    treasury = Keypair.random()
    first = offerhub(scratch, "wallets", "import-treasury", "--json", stdin=treasury.secret + "\n")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["created"] and report["public_key"] == treasury.public_key
    assert treasury.secret not in first.stdout + first.stderr

    again = offerhub({**scratch, "OFFERHUB_TREASURY_SECRET": treasury.secret}, "wallets", "import-treasury")
    assert again.returncode == 0, again.stderr
    assert "already the active treasury" in again.stdout and report["wallet_id"] in again.stdout

    other = Keypair.random()
    refused = offerhub(scratch, "wallets", "import-treasury", stdin=other.secret)
    assert refused.returncode == 1 and "different treasury is active" in refused.stderr

    [wallet] = asyncio.run(_wallets(scratch))
    assert wallet.id == report["wallet_id"] and wallet.purpose == "TREASURY" and wallet.user_id is None
    assert treasury.secret not in wallet.secret_encrypted
    seed = KeyVault(scratch["WALLET_ENCRYPTION_KEY"]).open_bytes(
        wallet.secret_encrypted, wallet_context(wallet.id, "platform:TREASURY")
    )
    assert seed == treasury.raw_secret_key()

    replaced = offerhub(scratch, "wallets", "import-treasury", "--replace", "--json", stdin=other.secret)
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(replaced.stdout)["replaced_wallet_id"] == wallet.id
    active = [w.public_key for w in asyncio.run(_wallets(scratch)) if w.is_active]
    assert active == [other.public_key]


def test_import_treasury_refuses_a_bad_or_missing_seed_as_usage_errors(scratch: dict[str, str]) -> None:
    bad = offerhub(scratch, "wallets", "import-treasury", stdin="SNOTASEED\n")
    assert bad.returncode == 2 and "not a Stellar secret seed" in bad.stderr
    missing = offerhub(scratch, "wallets", "import-treasury")
    assert missing.returncode == 2 and "OFFERHUB_TREASURY_SECRET" in missing.stderr
    no_key = offerhub({k: v for k, v in scratch.items() if k != "WALLET_ENCRYPTION_KEY"}, "wallets", "import-treasury")
    assert no_key.returncode == 2 and "WALLET_ENCRYPTION_KEY" in no_key.stderr
    assert asyncio.run(_wallets(scratch)) == []


def test_imported_treasury_is_activated_and_signs_for_init_platform(scratch: dict[str, str]) -> None:
    treasury = Keypair.random()
    imported = offerhub({**scratch, "OFFERHUB_TREASURY_SECRET": treasury.secret}, "wallets", "import-treasury")
    assert imported.returncode == 0, imported.stderr
    result = offerhub(scratch, "wallets", "init-platform", "--json")
    assert result.returncode == 0, result.stderr
    platform = json.loads(result.stdout)
    assert set(platform) == {"TREASURY", "RESOLVER"} and platform["TREASURY"] == treasury.public_key
    assert {w.purpose: w.status for w in asyncio.run(_wallets(scratch))} == {"TREASURY": "READY", "RESOLVER": "READY"}


async def _seed_endpoint(env: dict[str, str], vault: KeyVault) -> str:
    endpoint_id = new_id(IdPrefix.WEBHOOK_ENDPOINT)
    now = utcnow()
    engine = create_async_engine(env["DATABASE_URL"])
    try:
        async with engine.begin() as conn:
            await conn.execute(
                WebhookEndpoint.__table__.insert().values(  # type: ignore[attr-defined]
                    id=endpoint_id,
                    url="https://example.com/hooks",
                    event_types=["wallet.created"],
                    status="ACTIVE",
                    secret_encrypted=vault.seal_bytes(b"whsec_current", secret_context(endpoint_id)),
                    secret_hint="whsec_…rent",
                    previous_secret_encrypted=vault.seal_bytes(b"whsec_previous", secret_context(endpoint_id)),
                    created_at=now,
                    updated_at=now,
                )
            )
    finally:
        await engine.dispose()
    return endpoint_id


async def _endpoint(env: dict[str, str], endpoint_id: str) -> tuple[str, str | None]:
    engine = create_async_engine(env["DATABASE_URL"])
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(col(WebhookEndpoint.secret_encrypted), col(WebhookEndpoint.previous_secret_encrypted)).where(
                        col(WebhookEndpoint.id) == endpoint_id
                    )
                )
            ).one()
            return row[0], row[1]
    finally:
        await engine.dispose()


def test_rotate_key_reseals_wallets_and_endpoint_secrets_once(scratch: dict[str, str]) -> None:
    old_key, new_key = secrets.token_hex(32), secrets.token_hex(32)
    old = {**scratch, "WALLET_ENCRYPTION_KEY": old_key}
    treasury = Keypair.random()
    assert offerhub(old, "wallets", "import-treasury", stdin=treasury.secret).returncode == 0
    endpoint_id = asyncio.run(_seed_endpoint(scratch, KeyVault(old_key)))

    rotating = {**scratch, "WALLET_ENCRYPTION_KEY": new_key, "WALLET_ENCRYPTION_PREVIOUS_KEYS": old_key}
    first = offerhub(rotating, "wallets", "rotate-key", "--json", "--batch-size", "1")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["ok"] and report["wallets"] == {"checked": 1, "resealed": 1, "current": 0, "unreadable": []}
    assert report["webhook_endpoints"] == {"checked": 2, "resealed": 2, "current": 0, "unreadable": []}

    again = offerhub(rotating, "wallets", "rotate-key")
    assert again.returncode == 0, again.stderr
    assert "resealed      0" in again.stdout and "can be removed" in again.stdout

    new_vault, old_vault = KeyVault(new_key), KeyVault(old_key)
    [wallet] = asyncio.run(_wallets(scratch))
    context = wallet_context(wallet.id, "platform:TREASURY")
    assert new_vault.open_bytes(wallet.secret_encrypted, context) == treasury.raw_secret_key()
    with pytest.raises(WalletIntegrityError):
        old_vault.open_bytes(wallet.secret_encrypted, context)
    current, previous = asyncio.run(_endpoint(scratch, endpoint_id))
    assert new_vault.open_bytes(current, secret_context(endpoint_id)) == b"whsec_current"
    assert previous is not None and new_vault.open_bytes(previous, secret_context(endpoint_id)) == b"whsec_previous"

    # the old key removed: everything still opens; a key that sealed nothing finds it all unreadable
    assert offerhub({**scratch, "WALLET_ENCRYPTION_KEY": new_key}, "wallets", "rotate-key").returncode == 0
    lost = offerhub(scratch, "wallets", "rotate-key", "--json")
    assert lost.returncode == 1
    lost_report = json.loads(lost.stdout)
    assert not lost_report["ok"] and len(lost_report["wallets"]["unreadable"]) == 1
    assert len(lost_report["webhook_endpoints"]["unreadable"]) == 2
