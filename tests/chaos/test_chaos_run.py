"""`offerhub chaos` (issue 16) can pass and can fail: a short seeded run on its own stack ends
with no violation, and the same run with a deliberate ledger bug (an order reservation keyed
at random: OFFERHUB_CHAOS_BUG=random_ledger_key, read only on a test instance) exits 1 with
a violation naming the user whose money it concerns."""

from __future__ import annotations

import pytest

from tests.chaos.runs import BackgroundRuns


@pytest.mark.timeout(900)
def test_short_run_with_a_random_ledger_key_fails_naming_the_user(chaos_runs: BackgroundRuns) -> None:
    run = chaos_runs.outcome("bug")
    code, report = run.code, run.report

    assert code == 1, report
    named = [v for v in report["violations"] if v["subject"].startswith("usr_")]
    assert named, report["violations"]
    assert any(v["check"] == "ledger_keys" and ":reserve:" in v["detail"] for v in named), named
    assert "offerhub chaos --seed 7" in report["replay"]


@pytest.mark.timeout(900)
def test_short_run_without_the_bug_passes(chaos_runs: BackgroundRuns) -> None:
    run = chaos_runs.outcome("clean")
    code, report = run.code, run.report

    assert report["violations"] == [], report["violations"]
    assert code == 0
    assert sum(report["operations"].values()) > 0
    assert report["figures"]["ledger_check_exit"] == 0
    assert report["figures"]["reconciliation"].endswith("OK")
