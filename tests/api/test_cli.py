"""The `offerhub` commands operators run against a live instance."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
from temporalio.client import WorkflowHistory

from cli.stack import free_port
from tests.support import Stack, crypto_user


def offerhub(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], env=stack.env, capture_output=True, text=True, timeout=60
    )


def test_ledger_check_reports_every_invariant(stack: Stack) -> None:
    result = offerhub(stack, "ledger", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" ok") == 7


def test_health_and_keys_commands(stack: Stack) -> None:
    api = ["--api-url", stack.api_url]
    health = offerhub(stack, "health", *api)
    assert health.returncode == 0 and "database" in health.stdout
    created = offerhub(stack, "keys", "create", "--name", "cli", "--scopes", "read", *api)
    assert created.returncode == 0 and "ohk_test_" in created.stdout
    assert "not shown again" in created.stderr or "shown only now" in created.stderr
    listed = offerhub(stack, "keys", "list", "--json", *api)
    assert listed.returncode == 0 and '"key": null' in listed.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "cli.main", "keys", "list", *api],
        capture_output=True,
        text=True,
        env={k: v for k, v in stack.env.items() if k != "OFFERHUB_MASTER_KEY"},
        timeout=60,
    )
    assert missing.returncode == 2


def test_dispute_commands_print_the_temporal_signal(stack: Stack) -> None:
    result = offerhub(
        stack,
        "disputes",
        "resolve",
        "dsp_aKSd2mtfBHbYtFFeIbpGu",
        "--decision",
        "SPLIT",
        "--release-amount",
        "80.00",
        "--refund-amount",
        "40.00",
        "--actor",
        "ops@example.com",
        "--print-temporal-command",
    )
    assert result.returncode == 0, result.stderr
    assert "temporal workflow signal" in result.stdout and "--name resolve" in result.stdout
    assert '"release_amount": "80.00"' in result.stdout and '"actor": "ops@example.com"' in result.stdout


def test_every_command_of_the_operations_table_is_registered(stack: Stack) -> None:
    top = offerhub(stack, "--help")
    assert top.returncode == 0, top.stderr
    for command in (
        "dev", "api", "worker", "migrate", "keys", "token", "maintenance", "health", "ledger",
        "reconcile", "disputes", "wallets", "sandbox", "openapi", "history", "codec-server",
    ):  # fmt: skip
        assert f" {command} " in top.stdout, command
    wallets = offerhub(stack, "wallets", "--help").stdout
    assert all(name in wallets for name in ("init-platform", "import-treasury", "rotate-key"))
    history = " ".join(offerhub(stack, "history", "export", "--help").stdout.split())
    assert "TEMPORAL_PAYLOAD_ENCRYPTION_KEY" in history and "not implemented" not in history
    assert offerhub(stack, "wallets", "no-such-command").returncode == 2


async def test_history_export_writes_the_workflow_history_as_json(
    stack: Stack, client: httpx.AsyncClient, full_key: dict[str, str], tmp_path: Path
) -> None:
    user = await crypto_user(client, full_key)
    wallet_id = user["wallet"]["id"]
    target = tmp_path / "history.json"
    written = await asyncio.to_thread(offerhub, stack, "history", "export", wallet_id, "-o", str(target), "--json")
    assert written.returncode == 0, written.stderr
    summary = json.loads(written.stdout)
    history = WorkflowHistory.from_json(wallet_id, target.read_text())
    assert summary["events"] == len(history.events) > 0
    assert history.events[0].workflow_execution_started_event_attributes.workflow_type.name == "WalletSetupWorkflow"

    printed = await asyncio.to_thread(offerhub, stack, "history", "export", wallet_id)
    assert printed.returncode == 0 and json.loads(printed.stdout)["events"][0]["eventId"] == "1"

    missing = await asyncio.to_thread(offerhub, stack, "history", "export", "wal_doesNotExist00000000")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr


def test_unreachable_services_exit_3_and_api_errors_show_code_and_request_id(stack: Stack) -> None:
    closed = f"127.0.0.1:{free_port()}"
    no_temporal = {**stack.env, "TEMPORAL_ADDRESS": closed}
    no_database = {**stack.env, "DATABASE_URL": f"postgresql+asyncpg://postgres@{closed}/offerhub"}
    for env, args in (
        (no_temporal, ["history", "export", "wal_x"]),
        (no_database, ["ledger", "check"]),
        (no_database, ["wallets", "rotate-key"]),
        (no_database, ["migrate"]),
        (stack.env, ["health", "--api-url", f"http://{closed}/api/v1"]),
        (stack.env, ["keys", "list", "--api-url", f"http://{closed}/api/v1"]),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 3, (args, result.stdout, result.stderr)
        assert "cannot reach" in result.stderr, (args, result.stderr)

    revoked = offerhub(stack, "keys", "revoke", "apk_doesNotExist000000000", "--api-url", stack.api_url)
    assert revoked.returncode == 1
    assert re.fullmatch(r"[A-Z_]+: .+ \(\S+\)\n", revoked.stderr), revoked.stderr
