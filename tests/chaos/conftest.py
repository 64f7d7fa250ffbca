"""The two short chaos runs start as soon as the suite is collected, one after the other, in
a background thread (each is a subprocess on its own stack): the session's own tests leave
about half the machine idle while they wait on timers and I/O, so the runs cost the suite
little wall time instead of three minutes at the end. Their tests collect the outcomes."""

from __future__ import annotations

import threading

import pytest

from tests.chaos.runs import BackgroundRuns

BACKGROUND = BackgroundRuns()


def pytest_collection_finish(session: pytest.Session) -> None:
    if any("tests/chaos/test_chaos_run.py" in item.nodeid for item in session.items):
        threading.Thread(target=BACKGROUND.run_all, name="chaos-runs", daemon=True).start()


@pytest.fixture(scope="session")
def chaos_runs() -> BackgroundRuns:
    return BACKGROUND
