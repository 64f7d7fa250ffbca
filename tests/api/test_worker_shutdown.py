"""SIGTERM stops a worker gracefully: it stops polling, lets running activities finish
(up to its grace period) and exits 0, so a deploy or `docker stop` loses no step."""

from __future__ import annotations

import signal
import time

from tests.support import Stack, assert_eventually


async def test_sigterm_stops_the_worker_gracefully(stack: Stack) -> None:
    queue = "offerhub-test-shutdown"
    worker = stack.spawn("worker-shutdown", ["worker"], env={**stack.env, "TEMPORAL_TASK_QUEUE": queue})

    async def polling() -> bool:
        return f"worker polling task queue {queue}" in stack.log_text("worker-shutdown")

    await assert_eventually(polling, timeout=30, message="the extra worker never polled")
    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    code = worker.process.wait(timeout=40)
    took = time.monotonic() - started
    log = stack.log_text("worker-shutdown")
    assert code == 0, log[-2000:]
    assert "worker stopped" in log
    assert took < 30, f"stopping took {took:.1f}s"
