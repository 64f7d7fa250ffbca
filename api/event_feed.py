"""What wakes this API process's event streams (architecture.md "Data, events and real time").

One feed per process: one Redis subscriber on the sequencer's wake-up channel, and on each
wake-up one read of the newly sequenced events from PostgreSQL (by cursor, `seq > top`),
kept in a bounded window of recent events with their JSON rendered once. Every local stream
is then woken (an `asyncio.Event` each, no Redis connection or query of its own) and takes
what matches its filters from the window. A stream further behind than the window (a
replay, a slow reader) reads PostgreSQL itself until it catches up.

The feed also reads PostgreSQL every SAFETY_POLL_SECONDS whatever Redis says, so a lost
wake-up, or Redis down, delays an event by at most that long and never loses it.

When the server is asked to stop (uvicorn's exit signal), the feed sets `closing` and wakes
every stream, so each ends its response cleanly instead of holding the shutdown open."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import signal
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import func, select
from sqlmodel import col
from sse_starlette import ServerSentEvent
from sse_starlette.sse import AppStatus

from models.event_wakeups import WAKE_CHANNEL
from models.events import event_view
from models.tables import Event

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from api.services import Services

log = logging.getLogger("offerhub.events")
SAFETY_POLL_SECONDS = 5.0
WINDOW = 5000  # recent events kept (trimmed to this once twice as many are held)
READ_BATCH = 1000
EXIT_CHECK_SECONDS = 0.5
CLOCK_SECONDS = 1.0  # how often the clock wakes the listeners that are due


@dataclass
class Sequenced:
    """A sequenced event as streams need it: what filters look at, and its one-line JSON."""

    seq: int
    id: str
    type: str
    resource_type: str
    resource_id: str
    user_ids: tuple[str, ...]
    data: str = field(repr=False)

    @cached_property
    def message(self) -> bytes:
        """The SSE message, encoded once for every stream that sends it."""
        return ServerSentEvent(id=self.id, event=self.type, data=self.data).encode()

    @classmethod
    def of(cls, row: Event) -> Sequenced:
        assert row.seq is not None
        view = json.dumps(event_view(row), separators=(",", ":"))
        return cls(row.seq, row.id, row.type, row.resource_type, row.resource_id, tuple(row.user_ids), view)


class Listener(Protocol):
    """A stream as the feed wakes it: on news, and at `due` (monotonic) whatever the news."""

    wake: asyncio.Event
    due: float


class EventFeed:
    """The recent sequenced events of the whole system, covering seq in (floor, top]."""

    def __init__(self) -> None:
        self.floor = 0
        self.top = 0
        self._events: list[Sequenced] = []
        self._seqs: list[int] = []
        self._listeners: set[Listener] = set()
        self._task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []  # the exit watch and the clock
        self.closing = False  # the server is stopping: streams end
        self._starting = asyncio.Lock()
        self._polling_only = False  # Redis was away at the last attempt (logged once)

    @property
    def started(self) -> bool:
        return self._task is not None

    async def start(self, services: Services, tick_seconds: float, on_tick: Callable[[], Awaitable[None]]) -> None:
        """Start the subscriber (at the first stream of the process); the window starts now.
        The feed's clock is the streams' one timer: every CLOCK_SECONDS it wakes the
        listeners that are due (pings), and every `tick_seconds` it awaits `on_tick` (one
        credential check for all the process's streams)."""
        async with self._starting:
            if self._task is not None:
                return
            async with services.sessions() as session:
                self.floor = self.top = int(await session.scalar(select(func.max(col(Event.seq)))) or 0)
            self._task = asyncio.create_task(self._run(services), name="event-feed")
            self._tasks = [
                asyncio.create_task(self._watch_exit(), name="event-feed-exit"),
                asyncio.create_task(self._clock(tick_seconds, on_tick), name="event-feed-clock"),
            ]

    def listen(self, listener: Listener) -> None:
        self._listeners.add(listener)

    def forget(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def after(self, seq: int) -> list[Sequenced] | None:
        """The window's events after `seq`, oldest first; None when the window starts later."""
        if seq < self.floor:
            return None
        return self._events[bisect.bisect_right(self._seqs, seq) :]

    async def refresh(self, services: Services) -> int:
        """Read what was sequenced since `top`; wake every stream if anything was. How many."""
        read = 0
        while True:
            query = select(Event).where(col(Event.seq) > self.top).order_by(col(Event.seq).asc()).limit(READ_BATCH)
            async with services.sessions() as session:
                rows = list((await session.execute(query)).scalars().all())
            for row in rows:
                item = Sequenced.of(row)
                self._events.append(item)
                self._seqs.append(item.seq)
                self.top = item.seq
            read += len(rows)
            if len(rows) < READ_BATCH:
                break
        if len(self._events) > 2 * WINDOW:
            drop = len(self._events) - WINDOW
            self.floor = self._seqs[drop - 1]
            del self._events[:drop], self._seqs[:drop]
        if read:
            self._wake_all()
        return read

    async def _refresh_quietly(self, services: Services) -> None:
        try:
            await self.refresh(services)
        except Exception as exc:  # PostgreSQL briefly away: the next wake-up or poll reads it
            log.warning("event feed read failed: %s", type(exc).__name__)

    async def _run(self, services: Services) -> None:
        while True:
            try:
                async with services.redis.pubsub() as pubsub:
                    await pubsub.subscribe(WAKE_CHANNEL)
                    if self._polling_only:
                        log.info("event wake-ups back")
                        self._polling_only = False
                    await self._refresh_quietly(services)  # what was sequenced while subscribing
                    while True:
                        await pubsub.get_message(ignore_subscribe_messages=True, timeout=SAFETY_POLL_SECONDS)
                        await self._refresh_quietly(services)  # a wake-up, or the safety poll
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: poll PostgreSQL alone until it is back
                if not self._polling_only:
                    log.warning("event wake-ups unavailable, polling every %.0f s: %s", SAFETY_POLL_SECONDS, exc)
                    self._polling_only = True
                await asyncio.sleep(SAFETY_POLL_SECONDS)
                await self._refresh_quietly(services)

    async def _watch_exit(self) -> None:
        """End every stream once the server is stopping (sse_starlette's flag, set by its hook
        on uvicorn's exit handler, or the uvicorn server's own, found from its signal handler)."""
        while True:
            await asyncio.sleep(EXIT_CHECK_SECONDS)
            if _server_stopping():
                break
        self.closing = True
        self._wake_all()

    async def _clock(self, tick_seconds: float, on_tick: Callable[[], Awaitable[None]]) -> None:
        next_tick = time.monotonic() + tick_seconds
        while True:
            await asyncio.sleep(min(CLOCK_SECONDS, tick_seconds))
            now = time.monotonic()
            for listener in self._listeners:
                if listener.due <= now:
                    listener.wake.set()
            if now >= next_tick:
                next_tick = now + tick_seconds
                try:
                    await on_tick()
                except Exception as exc:  # PostgreSQL briefly away: the next tick checks again
                    log.warning("event stream credential check failed: %s", type(exc).__name__)

    def _wake_all(self) -> None:
        for listener in self._listeners:
            listener.wake.set()

    async def close(self) -> None:
        for task in (self._task, *self._tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task, self._tasks = None, []


def _server_stopping() -> bool:
    if AppStatus.should_exit:
        return True
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return bool(getattr(server, "should_exit", False))
