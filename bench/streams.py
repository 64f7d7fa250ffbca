"""1,000 concurrent SSE streams (`GET /events`, `Accept: text/event-stream`) on one API process:
memory per stream, CPU of the API process while they idle, and fan-out latency from commit
to the last client.

The streams are opened by a minimal HTTP/1.1 client on bare asyncio protocols (httpx, or
even asyncio streams, would spend more CPU on this machine's two cores than the API does).
One stream per (credential, user_id) and at most 50 per credential
(api/routers/events.py): every stream here is unfiltered, so each needs its own API key
(minted with the master key), and each receives every event. Fan-out: an event is
committed by a real action (`POST /users` writes `user.created`); the latency is from its
`occurred_at` (stamped in the transaction just before its commit; the worker's sequencer
numbers it, then wakes the streams through Redis) to the moment the last of the streams
received it. Also reported: the CPU the API process and this client spent per event.
Target: 1,000 idle streams under 5 % of a core, fan-out p99 < 500 ms.

Run: `make bench` (or `python bench/streams.py`). Loopback only; bounded; stops by itself.
BENCH_STREAMS / BENCH_STREAM_IDLE_SECONDS / BENCH_STREAM_EVENTS shrink a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvloop

from bench import cpu
from bench.results_file import save
from bench.stacks import BENCH_STACK
from tests.support import assert_eventually

STREAMS = int(os.environ.get("BENCH_STREAMS", "1000"))
IDLE_SECONDS = float(os.environ.get("BENCH_STREAM_IDLE_SECONDS", "20"))
EVENTS = int(os.environ.get("BENCH_STREAM_EVENTS", "30"))
OPEN_CONCURRENCY = 20
TARGET_CPU = 0.05
TARGET_FANOUT_MS = 500.0


class Stream(asyncio.Protocol):
    """One SSE client on a bare asyncio protocol: when it first saw each event id (wall
    clock, read as the event loop hands the bytes over: the clock of the event's
    `occurred_at`, stamped by the API on the same machine)."""

    def __init__(self, key: str, *, watch: bool = False) -> None:
        self.key = key
        self.watch = watch  # also map each event's resource_id to its id (one stream does)
        self.seen: dict[str, float] = {}
        self.ids_by_resource: dict[str, str] = {}
        self.occurred: dict[str, float] = {}  # event id: its occurred_at (watching stream)
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self.refusal = b""
        self.task: asyncio.Task[None] | None = None
        self._head = b""
        self._tail = b""
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.opened.is_set():
            self._head += data
            if b"\r\n\r\n" not in self._head:
                return
            head, _, data = self._head.partition(b"\r\n\r\n")
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                self.refusal = self._head
                if self._transport is not None:
                    self._transport.close()
                return
            self.opened.set()
        # chunked framing: size lines and SSE lines alike end with a newline; only id lines
        # (and, on the watching stream, data lines) matter
        buffer = self._tail + data
        cut = buffer.rfind(b"\n") + 1
        self._tail = buffer[cut:]
        if b"id: " not in buffer and not self.watch:
            return
        for line in buffer[:cut].split(b"\n"):
            if line.startswith(b"id: "):
                self.seen.setdefault(line[4:].strip().decode(), now)
            elif self.watch and line.startswith(b"data: {"):
                event = json.loads(line[6:])
                if "resource" in event:
                    self.ids_by_resource[event["resource"]["id"]] = event["id"]
                    self.occurred[event["id"]] = datetime.fromisoformat(event["occurred_at"]).timestamp()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

    async def run(self, host: str, port: int, path: str) -> None:
        self._head = self._tail = self.refusal = b""
        self.closed.clear()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(lambda: self, host, port)
        try:
            transport.write(
                f"GET {path}/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
                f"Authorization: Bearer {self.key}\r\n\r\n".encode()
            )
            await self.closed.wait()
            if self.refusal:
                raise RuntimeError(f"stream refused: {self.refusal[:2000]!r}")
        finally:
            transport.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / cpu.TICKS


def others_busy() -> float:
    """Cores used meanwhile by processes outside this stack (the machine is shared)."""
    return os.getloadavg()[0]


async def idle_cpu(pid: int, seconds: float) -> float:
    """Share of one core the process used over `seconds`."""
    before, started = process_cpu(pid), time.perf_counter()
    await asyncio.sleep(seconds)
    return (process_cpu(pid) - before) / (time.perf_counter() - started)


@dataclass
class FanOut:
    """Per event: ms from its commit to the last stream receiving it, and the CPU (ms) the
    API process and this client process spent on it (its POST /users included)."""

    latency_ms: list[float] = field(default_factory=list)
    api_cpu_ms: list[float] = field(default_factory=list)
    client_cpu_ms: list[float] = field(default_factory=list)


async def fan_out(api: httpx.AsyncClient, headers: dict[str, str], streams: list[Stream], api_pid: int) -> FanOut:
    """One event at a time, the streams idle between. The clock starts at the event's
    `occurred_at`, stamped in its transaction just before the commit (an upper bound of
    commit-to-receipt by those few ms); not at the 201 of the POST, which the API's event
    loop may answer only after it has fanned the event out."""
    measured = FanOut()
    for n in range(EVENTS):
        external = f"bench-stream-{n}-{time.time_ns()}"
        api_cpu, client_cpu = process_cpu(api_pid), time.process_time()
        created = await api.post("/users", json={"external_user_id": external}, headers=headers)
        created.raise_for_status()
        user_id = created.json()["id"]

        async def delivered(user_id: str = user_id) -> bool:
            event_id = streams[0].ids_by_resource.get(user_id)
            return event_id is not None and all(event_id in s.seen for s in streams)

        await assert_eventually(delivered, timeout=30, interval=0.05, message=f"{user_id} not on every stream")
        event_id = streams[0].ids_by_resource[user_id]
        measured.latency_ms.append(1000 * (max(s.seen[event_id] for s in streams) - streams[0].occurred[event_id]))
        measured.api_cpu_ms.append(1000 * (process_cpu(api_pid) - api_cpu))
        measured.client_cpu_ms.append(1000 * (time.process_time() - client_cpu))
        await asyncio.sleep(0.5)
    return measured


async def run() -> dict[str, Any]:
    from tests.support import create_key, start_stack

    stack = await asyncio.to_thread(start_stack, BENCH_STACK)
    try:
        api_proc = next(p.process for p in stack.processes if p.name == "api")
        worker_proc = next(p.process for p in stack.processes if p.name == "worker")
        url = urlsplit(stack.api_url)
        assert url.hostname is not None and url.port is not None
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api:
            writer = await create_key(api, stack.master_key, ["read", "write"], name="bench-streams-writer")
            headers = {"Authorization": f"Bearer {writer['key']}"}
            keys = []
            for n in range(STREAMS):  # one key a stream: each is unfiltered (one per credential and user_id)
                keys.append((await create_key(api, stack.master_key, ["read"], name=f"bench-stream-{n}"))["key"])
            await asyncio.sleep(3)  # the writes above settle (audit, sequencer)
            baseline_cpu = await idle_cpu(api_proc.pid, 5)
            rss_before = rss_kib(api_proc.pid)
            streams = [Stream(key, watch=n == 0) for n, key in enumerate(keys)]
            gate = asyncio.Semaphore(OPEN_CONCURRENCY)

            async def open_one(stream: Stream) -> None:
                async with gate:
                    for _ in range(10):  # a refusal (503 while the machine is busy) is retried
                        stream.task = asyncio.create_task(stream.run(url.hostname or "", url.port or 0, url.path))
                        opened = asyncio.create_task(stream.opened.wait())
                        await asyncio.wait((stream.task, opened), timeout=30, return_when=asyncio.FIRST_COMPLETED)
                        if stream.opened.is_set():
                            return
                        opened.cancel()
                        with contextlib.suppress(Exception):
                            await stream.task
                        await asyncio.sleep(1)
                    raise RuntimeError("a stream could not be opened")

            opening = time.perf_counter()
            await asyncio.gather(*(open_one(s) for s in streams))
            opened_in = time.perf_counter() - opening
            await asyncio.sleep(5)  # let opening settle (first credential checks, pings)
            rss_after = rss_kib(api_proc.pid)
            load = others_busy()
            # the worker idles meanwhile: its sequencer's probe for unsequenced events, Temporal polls
            idle, worker_idle = await asyncio.gather(
                idle_cpu(api_proc.pid, IDLE_SECONDS), idle_cpu(worker_proc.pid, IDLE_SECONDS)
            )
            measured = await fan_out(api, headers, streams, api_proc.pid)
            fanout = sorted(measured.latency_ms)
            broken = [s for s in streams if s.task is not None and s.task.done()]
            for s in streams:
                if s.task is not None:
                    s.task.cancel()
            await asyncio.gather(*(s.task for s in streams if s.task is not None), return_exceptions=True)
        results = {
            "streams": STREAMS,
            "opened_in_s": round(opened_in, 2),
            "api_rss_before_mib": round(rss_before / 1024, 1),
            "api_rss_after_mib": round(rss_after / 1024, 1),
            "memory_per_stream_kib": round((rss_after - rss_before) / STREAMS, 1),
            "api_cpu_idle_no_streams": round(baseline_cpu, 4),
            "api_cpu_idle_streams": round(idle, 4),
            "worker_cpu_idle": round(worker_idle, 4),
            "idle_seconds": IDLE_SECONDS,
            "fanout_events": len(fanout),
            "fanout_p50_ms": round(statistics.median(fanout), 1),
            "fanout_p99_ms": round(fanout[min(len(fanout) - 1, int(len(fanout) * 0.99))], 1),
            "fanout_max_ms": round(fanout[-1], 1),
            "api_cpu_ms_per_event": round(statistics.median(measured.api_cpu_ms), 1),
            "client_cpu_ms_per_event": round(statistics.median(measured.client_cpu_ms), 1),
            "streams_ended_early": len(broken),
            "load_average_1m": round(load, 2),
            "targets": {"idle_cpu": TARGET_CPU, "fanout_p99_ms": TARGET_FANOUT_MS},
        }
        print(f"\n{'measure':<36} {'value':>10}  target")
        print(f"{'streams open':<36} {STREAMS:>10}")
        print(f"{'memory per stream (KiB, RSS delta)':<36} {results['memory_per_stream_kib']:>10}")
        print(f"{'API CPU idle, no streams (core)':<36} {baseline_cpu:>10.3f}")
        print(f"{'API CPU idle, streams open (core)':<36} {idle:>10.3f}  < {TARGET_CPU}")
        print(f"{'worker CPU meanwhile (core)':<36} {worker_idle:>10.3f}")
        print(f"{'fan-out p50 (ms)':<36} {results['fanout_p50_ms']:>10}")
        print(f"{'fan-out p99 (ms)':<36} {results['fanout_p99_ms']:>10}  < {TARGET_FANOUT_MS:.0f}")
        print(f"{'streams ended early':<36} {len(broken):>10}")
        print(f"{'API CPU per event (ms, p50)':<36} {results['api_cpu_ms_per_event']:>10}")
        print(f"{'client CPU per event (ms, p50)':<36} {results['client_cpu_ms_per_event']:>10}")
        print(f"{'load average (1 min, whole machine)':<36} {load:>10.2f}")
        return results
    finally:
        await asyncio.to_thread(stack.stop)


def main() -> dict[str, Any]:
    results = uvloop.run(run())
    save("streams", results)
    return results


if __name__ == "__main__":
    main()
