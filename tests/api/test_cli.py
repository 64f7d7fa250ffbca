"""The `offerhub` commands operators run against a live instance."""

from __future__ import annotations

import subprocess
import sys

from tests.support import Stack


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
