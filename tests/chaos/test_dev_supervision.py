"""`offerhub dev` supervision (operations.md §1), what the chaos run relies on: an API or a
worker killed with SIGKILL is logged and comes back by itself, and the stack answers again."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from cli.stack import LOOPBACK, free_port
from tests.api.test_dev_restart import DevRun, descendants, dev_environment, proc_stat


def child_pid(run: DevRun, command: str) -> int:
    """The pid of the `offerhub dev` child running `python -m cli.main <command>`."""
    assert run.process is not None
    for pid in descendants(run.process.pid):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args[-2:] == [b"cli.main", command.encode()] or args[-3:-1] == [b"cli.main", command.encode()]:
            return pid
    raise AssertionError(f"no {command} child under offerhub dev:\n{run.output()}")


def healthy(api_url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api_url}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{api_url} not healthy again within {timeout} s")


@pytest.mark.timeout(120)
def test_killed_api_and_worker_come_back_by_themselves(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("api", "sandbox", "redis", "temporal", "temporal_ui")}
    api_url = f"http://{LOOPBACK}:{ports['api']}/api/v1"
    run = DevRun(tmp_path, dev_environment(ports), tmp_path / "dev.log")
    try:
        run.start()
        run.wait_ready()
        for name in ("api", "worker"):
            before = child_pid(run, name)
            os.kill(before, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while f"{name} exited with code -9; restarting in" not in run.output():
                assert time.monotonic() < deadline, run.output()
                time.sleep(0.2)
            while True:
                try:
                    after = child_pid(run, name)
                    if after != before and proc_stat(after) is not None:
                        break
                except AssertionError:
                    pass
                assert time.monotonic() < deadline, f"{name} not restarted:\n{run.output()}"
                time.sleep(0.2)
            # the worker polls the API's queue again (/health checks it), the API answers
            healthy(api_url, timeout=45)
        assert run.process is not None and run.process.poll() is None
    finally:
        assert run.stop() == 0, run.output()
