"""Process faults: SIGKILL the worker and the API at random points, restart Redis, and run a
second API and a second worker for part of the run.

The plan (what, and when as a fraction of the run) is drawn from the seed before the run
starts; killed processes come back through the stack's supervision, as under `offerhub dev`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from cli.chaos.stack import ChaosStack


@dataclass(frozen=True)
class Step:
    at: float  # fraction of the run's duration
    action: str  # kill:<child>, restart:redis, start:<child>, park:<child>
    arg: float = 0.0  # restart:redis: seconds down


def plan(rng: random.Random) -> list[Step]:
    two_from, two_until = rng.uniform(0.15, 0.35), rng.uniform(0.6, 0.8)
    steps = [
        Step(two_from, "start:worker-2"),
        Step(two_from + 0.01, "start:api-2"),
        Step(two_until, "park:api-2"),
        Step(two_until + 0.01, "park:worker-2"),
    ]
    for _ in range(rng.randint(5, 8)):
        at = rng.uniform(0.05, 0.9)
        targets = ["worker", "api", "worker", "api"]
        if two_from < at < two_until:
            targets += ["worker-2", "api-2"]
        steps.append(Step(at, f"kill:{rng.choice(targets)}"))
    for _ in range(rng.randint(1, 2)):
        steps.append(Step(rng.uniform(0.1, 0.9), "restart:redis", round(rng.uniform(0.5, 3.0), 1)))
    return sorted(steps, key=lambda step: step.at)


@dataclass
class ProcessChaos:
    stack: ChaosStack
    steps: list[Step]
    done: Counter[str] = field(default_factory=Counter)
    timeline: list[str] = field(default_factory=list)

    async def run(self, started: float, duration: float) -> None:
        for step in self.steps:
            delay = started + step.at * duration - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.apply(step)
            self.timeline.append(f"{time.monotonic() - started:6.1f}s {step.action}")

    async def apply(self, step: Step) -> None:
        verb, _, name = step.action.partition(":")
        if verb == "kill":
            if self.stack.kill(name):
                self.done[f"kill:{name}"] += 1
        elif verb == "restart":
            await asyncio.to_thread(self.stack.restart_redis, step.arg)
            self.done["restart:redis"] += 1
        elif verb == "start":
            await asyncio.to_thread(self.stack.start_child, name)
            self.done[f"start:{name}"] += 1
        elif verb == "park":
            await asyncio.to_thread(self.stack.park, name)
            self.done[f"stop:{name}"] += 1

    async def finish(self) -> None:
        """End of the chaos: the second processes stopped, every process up before the drain."""
        for name in ("api-2", "worker-2"):
            if name not in self.stack.parked:
                await asyncio.to_thread(self.stack.park, name)


async def supervise(stack: ChaosStack, stop: asyncio.Event) -> None:
    while not stop.is_set():
        stack.supervise()
        await asyncio.sleep(0.3)
