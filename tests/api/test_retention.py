"""Retention (domain.md §5.2, §7.5, §2.18): what is past its window is purged by
RetentionWorkflow, what is not (or an event not yet relayed) is kept."""

from __future__ import annotations

import secrets
import uuid

import asyncpg
import httpx
from temporalio.client import Client

from api.payload_codec import data_converter
from models.retention_io import PurgeReport, RetentionInput
from tests.api.test_idempotency import pg_dsn
from tests.support import Stack, assert_eventually, stack_settings


async def keyed_user(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, str]:
    key = str(uuid.uuid4())
    created = await client.post(
        "/users", json={"external_user_id": f"ext-{secrets.token_hex(6)}"}, headers={**headers, "Idempotency-Key": key}
    )
    assert created.status_code == 201, created.text
    return created.json()["id"], key


async def test_what_is_past_its_window_is_purged_and_nothing_else(
    client: httpx.AsyncClient, stack: Stack, full_key: dict[str, str]
) -> None:
    old_user, old_key = await keyed_user(client, full_key)
    new_user, new_key = await keyed_user(client, full_key)
    conn = await asyncpg.connect(pg_dsn(stack))
    try:

        async def relayed() -> bool:
            pending = await conn.fetchval(
                "SELECT count(*) FROM events WHERE resource_id = ANY($1) AND (seq IS NULL OR relayed_at IS NULL)",
                [old_user, new_user],
            )
            return bool(pending == 0)

        await assert_eventually(relayed, timeout=30, message="events not numbered and relayed")
        # events are immutable (a trigger): age this one as a test only can, triggers off for
        # this connection alone
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE events SET occurred_at = now() - interval '31 days' WHERE resource_id = $1", old_user
        )
        await conn.execute("SET session_replication_role = DEFAULT")
        await conn.execute(
            "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = $1", old_key
        )
        old_hook, new_hook = f"evt-old-{secrets.token_hex(4)}", f"evt-new-{secrets.token_hex(4)}"
        for event_id, age in ((old_hook, "91 days"), (new_hook, "1 day")):
            await conn.execute(
                "INSERT INTO webhook_events (provider, provider_event_id, event_type, status, body_sha256, summary,"
                " received_at, processed_at)"
                f" VALUES ('trustless_work', $1, 'escrow.funded', 'IGNORED', 'x', '{{}}', now() - interval '{age}',"
                f" now() - interval '{age}')",
                event_id,
            )
        temporal = await Client.connect(
            stack.env["TEMPORAL_ADDRESS"], data_converter=data_converter(stack_settings(stack))
        )
        report = await temporal.execute_workflow(
            "RetentionWorkflow",
            RetentionInput(batch_size=2),  # several passes
            id=f"retention-test-{secrets.token_hex(4)}",
            task_queue=stack.task_queue,
            result_type=PurgeReport,
        )
        assert report.events >= 1 and report.idempotency_keys >= 1 and report.inbound_webhooks >= 1
        assert not report.more

        async def count(query: str, *args: object) -> int:
            return int(await conn.fetchval(query, *args))

        assert await count("SELECT count(*) FROM events WHERE resource_id = $1", old_user) == 0
        assert await count("SELECT count(*) FROM events WHERE resource_id = $1", new_user) >= 1
        assert await count("SELECT count(*) FROM idempotency_keys WHERE key = $1", old_key) == 0
        assert await count("SELECT count(*) FROM idempotency_keys WHERE key = $1", new_key) == 1
        hooks = "SELECT count(*) FROM webhook_events WHERE provider_event_id = $1"
        assert (await count(hooks, old_hook), await count(hooks, new_hook)) == (0, 1)
        # the audit trail of the purged user is the record: kept
        assert await count("SELECT count(*) FROM audit_logs WHERE resource_id = $1", old_user) >= 1
    finally:
        await conn.close()
