"""CPU seconds used by each part of the local stack, read from /proc (Linux), so the
benchmark can say where a lifecycle's time goes, not only how long it takes. Only this
process and its descendants count (the stack a benchmark started), plus the daemons that
left our tree but name our stack's directory (`track`, e.g. PostgreSQL started by pg_ctl):
another stack running on the same machine at the same time is not ours."""

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


MARKERS: list[str] = []


def track(marker: str) -> None:
    """Also count the processes whose command line holds `marker` (a stack's directory) and
    their descendants."""
    MARKERS.append(marker)


def _cmdline(pid: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def _role(pid: str) -> str | None:
    if pid == str(os.getpid()):
        return "bench"
    cmdline = _cmdline(pid)
    if cmdline is None:
        return None
    return next((role for role, needle in ROLES if needle in cmdline), None)


def _stats() -> dict[str, list[str]]:
    """The fields after the command name of /proc/<pid>/stat, for every process alive now."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[entry.name] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
    return stats


def _ours(stats: dict[str, list[str]]) -> set[str]:
    """This process, the tracked ones and their descendants (the second field is the parent's pid)."""
    children: dict[str, list[str]] = {}
    for pid, fields in stats.items():
        children.setdefault(fields[1], []).append(pid)
    todo = [str(os.getpid())]
    if MARKERS:
        todo += [pid for pid in stats if any(m in (_cmdline(pid) or "") for m in MARKERS)]
    ours: set[str] = set()
    while todo:
        pid = todo.pop()
        ours.add(pid)
        todo.extend(children.get(pid, []))
    return ours


def snapshot() -> dict[str, float]:
    """CPU seconds (user + system) so far, summed per role, over our processes alive now."""
    used: dict[str, float] = {}
    stats = _stats()
    for pid in _ours(stats):
        role = _role(pid)
        if role is None:
            continue
        fields = stats[pid]
        # fields after the command name: utime and stime are the 12th and 13th
        used[role] = used.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
    return used


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per role between two snapshots."""
    return {role: after[role] - before.get(role, 0.0) for role in after}
