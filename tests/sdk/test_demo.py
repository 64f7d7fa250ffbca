"""`offerhub demo` against the session stack: every step narrated, exit 0, books balanced."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from tests.support import ROOT, Stack, assert_books_balanced


@pytest.mark.timeout(400)
async def test_demo_narrates_every_step_and_exits_0(stack: Stack) -> None:
    env = {
        **stack.env,
        "OFFERHUB_API_URL": stack.api_url,
        "SANDBOX_URL": f"http://127.0.0.1:{stack.sandbox_port}",
        "TEMPORAL_UI_URL": "http://127.0.0.1:8233",
    }
    command = [sys.executable, "-m", "cli.main", "demo"]
    result = await asyncio.to_thread(
        subprocess.run, command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=360
    )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    for line in (
        "== users",
        "wallets READY on Stellar",
        "deposit seen on chain and credited once",
        "== an order paid milestone by milestone",
        "buyer approved final: RELEASED 60.00 to the seller",
        "order CLOSED (RELEASED), released 120.00",
        "== a disputed order, settled by a split",
        "support resolved it: SPLIT, 50.00 to the seller, 30.00 back to the buyer (RESOLVED)",
        "order CLOSED (SPLIT)",
        "== a withdrawal to a Stellar account outside the product",
        ": WITHDRAWAL_COMPLETED",
        "the outside account now holds 40.0000000 USDC",
        "buyer  available   130.00",
        "seller available   130.00",
        "http://127.0.0.1:8233/namespaces/default/workflows/ord_",
        "http://127.0.0.1:8233/namespaces/default/workflows/dsp_",
        "http://127.0.0.1:8233/namespaces/default/workflows/wd_",
        "ledger check passed",
    ):
        assert line in output, f"{line!r} missing from:\n{output}"
    await assert_books_balanced(stack)


def test_demo_without_a_reachable_api_exits_3(tmp_path: object) -> None:
    env = {"PATH": "/usr/bin:/bin", "OFFERHUB_MASTER_KEY": "ohk_master_x", "OFFERHUB_API_URL": "http://127.0.0.1:9/api/v1"}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "cannot reach the API" in result.stdout
