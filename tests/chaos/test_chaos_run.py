"""`offerhub chaos` (issue 16) can pass and can fail: a short seeded run on its own stack ends
with no violation, and the same run with a deliberate ledger bug (an order reservation keyed
at random: OFFERHUB_CHAOS_BUG=random_ledger_key, read only on a test instance) exits 1 with
a violation naming the user whose money it concerns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHORT = ["--duration", "12", "--users", "3", "--max-operations", "24"]


def chaos(seed: int, *, bug: str | None = None) -> tuple[int, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if k != "OFFERHUB_CHAOS_BUG"}
    if bug is not None:
        env["OFFERHUB_CHAOS_BUG"] = bug
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "chaos", "--seed", str(seed), *SHORT, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.stdout.strip(), f"no report (exit {done.returncode}):\n{done.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report


@pytest.mark.timeout(300)
def test_short_run_with_a_random_ledger_key_fails_naming_the_user() -> None:
    code, report = chaos(7, bug="random_ledger_key")

    assert code == 1, report
    named = [v for v in report["violations"] if v["subject"].startswith("usr_")]
    assert named, report["violations"]
    assert any(v["check"] == "ledger_keys" and ":reserve:" in v["detail"] for v in named), named
    assert "offerhub chaos --seed 7" in report["replay"]


@pytest.mark.timeout(300)
def test_short_run_without_the_bug_passes() -> None:
    code, report = chaos(7)

    assert report["violations"] == [], report["violations"]
    assert code == 0
    assert sum(report["operations"].values()) > 0
    assert report["figures"]["ledger_check_exit"] == 0
    assert report["figures"]["reconciliation"].endswith("OK")
