"""CPU seconds used by each part of the local stack, read from /proc (Linux), so the
benchmark can say where a lifecycle's time goes, not only how long it takes."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
# first match wins: a process is counted under one role
ROLES = (
    ("worker", "cli.main worker"),
    ("sandbox", "cli.main sandbox"),
    ("api", "cli.main api"),
    ("temporal", "temporal"),
    ("postgres", "postgres"),
    ("redis", "redis-server"),
)


def _role(pid: str) -> str | None:
    if pid == str(os.getpid()):
        return "bench"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    return next((role for role, needle in ROLES if needle in cmdline), None)


def snapshot() -> dict[str, float]:
    """CPU seconds (user + system) so far, summed per role, over the processes alive now."""
    used: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        role = _role(entry.name)
        if role is None:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields after the command name: utime and stime are the 12th and 13th
        used[role] = used.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
    return used


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per role between two snapshots."""
    return {role: after[role] - before.get(role, 0.0) for role in after}
