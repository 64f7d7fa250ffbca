"""The run's report: what it did, what it injected, what it found, and how to replay it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cli.chaos.checks import Violation


@dataclass
class Report:
    seed: int
    provider: str
    duration: float
    max_operations: int
    users: int
    operations: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    processes: Counter[str] = field(default_factory=Counter)
    restarts: dict[str, int] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def replay(self) -> str:
        return (
            f"offerhub chaos --seed {self.seed} --provider {self.provider} --duration {self.duration:g} "
            f"--max-operations {self.max_operations} --users {self.users}"
        )

    def print(self, echo: Callable[[str], None]) -> None:
        echo(f"\n== chaos run: seed {self.seed}, {self.provider} mode, {self.wall_seconds:.0f} s wall time")
        _block(echo, f"operations ({sum(self.operations.values())})", self.operations)
        _block(echo, "dispute decisions", Counter(self.decisions))
        _block(echo, f"refused by the API ({sum(self.refusals.values())}, business answers)", self.refusals)
        _block(echo, f"client retries ({sum(self.retries.values())})", self.retries)
        _block(echo, f"faults injected ({sum(self.faults.values())})", self.faults)
        kills = sum(count for name, count in self.processes.items() if name.startswith("kill:"))
        _block(echo, f"process faults ({kills} kills)", self.processes)
        _block(echo, f"restarts by supervision ({sum(self.restarts.values())})", Counter(self.restarts))
        echo("   timeline: " + ("; ".join(step.strip() for step in self.timeline) or "-"))
        for name, value in self.figures.items():
            echo(f"   {name}: {value}")
        echo(f"\n== violations: {len(self.violations)}")
        for violation in self.violations:
            echo(f"   ! {violation}")
        echo(f"\nreplay: {self.replay}")
        echo("(the same seed draws the same plan; the interleaving follows timing and may differ)")

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "provider": self.provider,
            "wall_seconds": round(self.wall_seconds, 1),
            "operations": dict(self.operations),
            "refusals": dict(self.refusals),
            "faults": dict(self.faults),
            "processes": dict(self.processes),
            "restarts": self.restarts,
            "figures": self.figures,
            "violations": [{"check": v.check, "subject": v.subject, "detail": v.detail} for v in self.violations],
            "replay": self.replay,
        }


def _block(echo: Callable[[str], None], title: str, counts: Counter[str]) -> None:
    echo(f"   {title}:")
    for name, count in sorted(counts.items()):
        echo(f"     {name:44} {count:>6}")
