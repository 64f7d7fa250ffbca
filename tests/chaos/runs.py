"""The background chaos runs of tests/chaos/test_chaos_run.py (see conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHORT = ["--duration", "12", "--users", "3", "--max-operations", "24"]
SEED = 7
RUNS = {"bug": "random_ledger_key", "clean": None}


@dataclass
class Outcome:
    code: int
    report: dict[str, Any]
    stderr: str


@dataclass
class BackgroundRuns:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)

    def run_all(self) -> None:
        try:
            for name, bug in RUNS.items():
                try:
                    self.outcomes[name] = chaos(SEED, bug=bug)
                except Exception as exc:  # reported by the test that asks for this run
                    self.errors[name] = repr(exc)
        finally:
            self.done.set()

    def outcome(self, name: str, timeout: float = 900) -> Outcome:
        assert self.done.wait(timeout), "the chaos runs did not finish"
        assert name not in self.errors, self.errors[name]
        return self.outcomes[name]


def chaos(seed: int, *, bug: str | None = None) -> Outcome:
    env = {k: v for k, v in os.environ.items() if k != "OFFERHUB_CHAOS_BUG"}
    if bug is not None:
        env["OFFERHUB_CHAOS_BUG"] = bug
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "chaos", "--seed", str(seed), *SHORT, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.stdout.strip(), f"no report (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return Outcome(done.returncode, json.loads(done.stdout), done.stderr[-3000:])
