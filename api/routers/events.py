"""`GET /events` (api.md §10): the events outbox by cursor, as a JSON list or a live SSE stream.

Only sequenced events are served (`seq`, given by the worker's sequencer after commit), so a
cursor never skips an event that commits late. Streams are woken by Redis pub/sub through the
process's one feed (api/event_feed.py), which reads new events once for all of them; a stream
behind the feed's window reads PostgreSQL by cursor itself. Nothing is lost if a wake-up is:
the feed also polls every few seconds. A stream re-checks its credential every
SSE_CREDENTIAL_CHECK_SECONDS (≤ 15 s, one query for the keys of all the process's streams
on the feed's clock, which wakes only the refused ones; a token's expiry at the moment it
passes) and ends with a final `event: error` (`INVALID_API_KEY`) once its key is revoked or
its token expired. A user-bound token's list and stream are always narrowed to its user."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from sqlalchemy import Select, false, func, or_, select
from sqlmodel import col
from sse_starlette import ServerSentEvent
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api import auth
from api.auth import Audience, Credential
from api.event_feed import CLOCK_SECONDS, Sequenced
from api.pagination import CursorQuery, LimitQuery, check_limit, envelope
from api.policy import Access, ContextDep, GuardedRoute, ServicesDep, policy
from api.schemas import field_error, query_time
from api.services import Services
from models.errors import ErrorCode, OfferhubError
from models.event_catalog import UnknownEventType, type_patterns
from models.events import event_view
from models.ids import IdPrefix, is_id
from models.tables import ApiKey, Event
from models.tables.records import RESOURCE_TYPES
from models.timefmt import iso, utcnow

router = APIRouter(route_class=GuardedRoute, tags=["events"])
PING_SECONDS = 15
# no transaction that writes events stays open this long (statement timeouts end them sooner)
LATE_COMMIT = timedelta(minutes=15)
STREAM_SECONDS = 60 * 60
STREAMS_PER_CREDENTIAL = 50


@dataclass
class Filters:
    user_id: str | None
    types: tuple[list[str], list[str]] | None
    resource_type: str | None
    resource_id: str | None

    def apply(self, query: Select[Any]) -> Select[Any]:
        query = query.where(col(Event.seq).is_not(None))
        if self.user_id is not None:
            query = query.where(col(Event.user_ids).contains([self.user_id]))
        if self.types is not None:
            exact, prefixes = self.types
            query = query.where(
                or_(false(), col(Event.type).in_(exact), *(col(Event.type).startswith(p) for p in prefixes))
            )
        if self.resource_type is not None:
            query = query.where(col(Event.resource_type) == self.resource_type)
        if self.resource_id is not None:
            query = query.where(col(Event.resource_id) == self.resource_id)
        return query

    def matches(self, event: Sequenced) -> bool:
        """`apply`'s conditions, on an event the feed already holds."""
        if self.user_id is not None and self.user_id not in event.user_ids:
            return False
        if self.types is not None:
            exact, prefixes = self.types
            if event.type not in exact and not event.type.startswith(tuple(prefixes)):
                return False
        if self.resource_type is not None and event.resource_type != self.resource_type:
            return False
        return self.resource_id is None or event.resource_id == self.resource_id


def _filters(
    audience: Audience, user_id: str | None, types: str | None, resource_type: str | None, resource_id: str | None
) -> Filters:
    if user_id is not None and not is_id(user_id, IdPrefix.USER):
        raise field_error("user_id", "must be a usr_ ID")
    user_id = audience.user_filter(user_id)  # forced for a user-bound token
    if resource_type is not None and resource_type not in RESOURCE_TYPES:
        raise field_error("resource_type", f"must be one of {', '.join(RESOURCE_TYPES)}")
    try:
        patterns = type_patterns(types) if types is not None else None
    except UnknownEventType as exc:
        raise field_error("types", f"{exc} matches no event type of the catalog") from None
    return Filters(user_id, patterns, resource_type, resource_id)


async def _seq_of(services: Services, event_id: str, field_name: str, audience: Audience) -> int:
    """The sequence number of a retained, sequenced event the audience sees (a cursor's resume point)."""
    if is_id(event_id, IdPrefix.EVENT):
        query = select(col(Event.seq)).where(col(Event.id) == event_id)
        if audience.user_id is not None:
            query = query.where(col(Event.user_ids).contains([audience.user_id]))
        async with services.sessions() as session:
            seq = await session.scalar(query)
        if seq is not None:
            return int(seq)
    raise field_error(field_name, "not a retained event id")


async def _after_time(services: Services, since: datetime) -> int:
    """The resume point just before the first event that occurred at or after `since`."""
    async with services.sessions() as session:
        first = await session.scalar(
            select(func.min(col(Event.seq))).where(col(Event.seq).is_not(None), col(Event.occurred_at) >= since)
        )
        if first is not None:
            return int(first) - 1
        top = await session.scalar(select(func.max(col(Event.seq))))
    return int(top or 0)


async def _seq_floor(services: Services, since: datetime) -> int:
    """A seq below that of every event that occurred at or after `since`, found in one index
    probe: the seq of the latest event that occurred LATE_COMMIT before it. An event is
    sequenced after its transaction commits, in `occurred_at` order among those waiting, so
    one numbered below that older event would have had to stay uncommitted for LATE_COMMIT.
    `since` then reads from there in `seq` order, not through every older event."""
    query = (
        select(col(Event.seq))
        .where(col(Event.seq).is_not(None), col(Event.occurred_at) < since - LATE_COMMIT)
        .order_by(col(Event.occurred_at).desc())
        .limit(1)
    )
    async with services.sessions() as session:
        return int(await session.scalar(query) or 0)


@router.get("/events", operation_id="events-list", summary="Events: JSON list, or a live stream (text/event-stream)")
@policy(Access.SCOPED, "read", query_token=True, user_reads=True)
async def list_events(
    request: Request,
    services: ServicesDep,
    context: ContextDep,
    user_id: Annotated[str | None, Query()] = None,
    types: Annotated[str | None, Query(max_length=2000)] = None,
    resource_type: Annotated[str | None, Query()] = None,
    resource_id: Annotated[str | None, Query(max_length=128)] = None,
    cursor: str | None = CursorQuery,
    since: Annotated[str | None, Query()] = None,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    limit: int = LimitQuery,
    access_token: Annotated[str | None, Query(description="a token, for EventSource clients")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Any:
    audience = context.audience
    filters = _filters(audience, user_id, types, resource_type, resource_id)
    start = query_time("since", since)
    check_limit(limit)
    if "text/event-stream" in request.headers.get("accept", ""):
        resume: int | None = None
        if last_event_id:
            resume = await _seq_of(services, last_event_id, "Last-Event-ID", audience)
        elif cursor is not None:
            resume = await _seq_of(services, cursor, "cursor", audience)
        elif start is not None:
            resume = await _after_time(services, start)
        credential = context.credential
        assert credential is not None
        return await _stream(request, services, credential, filters, resume)
    query = filters.apply(select(Event))
    if cursor is not None:
        anchor = await _seq_of(services, cursor, "cursor", audience)
        query = query.where(col(Event.seq) > anchor if order == "asc" else col(Event.seq) < anchor)
    elif start is not None:
        query = query.where(col(Event.seq) > await _seq_floor(services, start), col(Event.occurred_at) >= start)
    ordering = col(Event.seq).asc() if order == "asc" else col(Event.seq).desc()
    async with services.sessions() as session:
        rows = list((await session.execute(query.order_by(ordering).limit(limit + 1))).scalars().all())
    has_more, rows = len(rows) > limit, rows[:limit]
    return envelope([event_view(r) for r in rows], rows, has_more)


@dataclass(eq=False)
class Slot:
    """One open stream: `wake` is set when the feed has news, when the stream must end, or
    at `due` (monotonic; the feed's clock, for a ping) whatever the news."""

    key_id: str | None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    due: float = math.inf
    ended: bool = False
    refused: bool = False  # its key is no longer ACTIVE

    def end(self) -> None:
        self.ended = True
        self.wake.set()

    def refuse(self) -> None:
        self.refused = True
        self.wake.set()


@dataclass
class StreamRegistry:
    """Open streams of this API process: one per (credential, user_id), at most 50 per credential."""

    open: dict[tuple[str, str | None], Slot] = field(default_factory=dict)
    per_credential: dict[str, int] = field(default_factory=dict)

    def claim(self, credential_id: str, user_id: str | None, key_id: str | None) -> Slot:
        older = self.open.get((credential_id, user_id))
        if older is not None:
            older.end()  # the newer stream replaces it: a reconnecting client is never locked out
        elif self.per_credential.get(credential_id, 0) >= STREAMS_PER_CREDENTIAL:
            raise OfferhubError(
                ErrorCode.RATE_LIMITED,
                "Too many open event streams for this credential",
                {"scope": "event_streams", "limit": STREAMS_PER_CREDENTIAL, "retry_after_seconds": 15},
                headers={"Retry-After": "15"},
            )
        slot = Slot(key_id)
        self.open[(credential_id, user_id)] = slot
        self.per_credential[credential_id] = self.per_credential.get(credential_id, 0) + (older is None)
        return slot

    def release(self, credential_id: str, user_id: str | None, slot: Slot) -> None:
        if self.open.get((credential_id, user_id)) is slot:
            del self.open[(credential_id, user_id)]
            self.per_credential[credential_id] -= 1

    async def check_keys(self, services: Services) -> None:
        """`auth.still_valid` for every open stream's key in one query (each tick of the
        feed's clock): a stream whose key is no longer ACTIVE is refused, and only it wakes."""
        slots = [slot for slot in self.open.values() if slot.key_id is not None]
        if not slots:
            return
        async with services.sessions() as session:
            active = set(
                await session.scalars(
                    select(col(ApiKey.id)).where(
                        col(ApiKey.id).in_({slot.key_id for slot in slots}), col(ApiKey.status) == "ACTIVE"
                    )
                )
            )
        for slot in slots:
            if slot.key_id not in active:
                slot.refuse()


def _registry(request: Request) -> StreamRegistry:
    state = request.app.state
    if not hasattr(state, "event_streams"):
        state.event_streams = StreamRegistry()
    registry: StreamRegistry = state.event_streams
    return registry


class EventStreamResponse(Response):
    """A `text/event-stream` body written by one coroutine, `pump`, given a `write(bytes)`.

    Lighter than a general SSE response on purpose: a process holds a thousand of these, and
    a wake-up of them all is one event's fan-out. Per stream there is the pump and one task
    waiting for the client's disconnect (which ends the pump through `on_disconnect`); each
    wake-up costs one send of bytes the feed has already encoded, with no per-send
    generator, task group, cancel scope or timer (pings ride on the feed's clock)."""

    media_type = "text/event-stream; charset=utf-8"

    def __init__(
        self,
        pump: Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[None]],
        on_disconnect: Callable[[], None],
        release: Callable[[], None],
        headers: dict[str, str],
    ) -> None:
        self.pump = pump
        self.on_disconnect = on_disconnect
        self.release = release  # called once the response is over, whatever happened
        self.status_code = 200
        self.background = None
        self.init_headers({**headers, "Connection": "keep-alive"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if scope["method"] == "HEAD":  # headers only: the stream never starts
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await self._stream(receive, send)
        finally:
            self.release()

    async def _stream(self, receive: Receive, send: Send) -> None:
        disconnected = False

        async def until_disconnect() -> None:
            nonlocal disconnected
            try:
                while (await receive())["type"] != "http.disconnect":
                    pass
            except Exception:  # the server could not read from the client: gone all the same
                pass
            disconnected = True
            self.on_disconnect()

        async def write(body: bytes) -> None:
            await send({"type": "http.response.body", "body": body, "more_body": True})

        watch = asyncio.ensure_future(until_disconnect())
        try:
            await self.pump(write)
        finally:
            watch.cancel()
        if not disconnected:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


RETRY = ServerSentEvent(retry=3000).encode()


def _ping() -> bytes:
    return ServerSentEvent(event="ping", data=json.dumps({"time": iso(utcnow())})).encode()


async def _stream(
    request: Request, services: Services, credential: Credential, filters: Filters, resume: int | None
) -> EventStreamResponse:
    credential_id = credential.namespace
    check_every = services.settings.sse_credential_check_seconds
    registry = _registry(request)
    feed = services.event_feed
    await feed.start(services, check_every, functools.partial(registry.check_keys, services))
    if resume is None:  # live only: from the newest event now
        async with services.sessions() as session:
            resume = int(await session.scalar(select(func.max(col(Event.seq)))) or 0)
    after: int = resume
    slot = registry.claim(credential_id, filters.user_id, credential.key_id)

    async def pump(write: Callable[[bytes], Awaitable[None]]) -> None:
        nonlocal after
        expiry = None  # a token's expiry wakes its stream at that moment
        if credential.expires_at is not None:
            seconds = (credential.expires_at - utcnow()).total_seconds()
            expiry = asyncio.get_running_loop().call_later(max(seconds, 0.0) + 0.01, slot.wake.set)
        feed.listen(slot)
        try:
            await write(RETRY)
            deadline = time.monotonic() + STREAM_SECONDS
            slot.due = time.monotonic() + PING_SECONDS - CLOCK_SECONDS
            while not slot.ended and not feed.closing and time.monotonic() < deadline:
                if slot.refused or (credential.expires_at is not None and credential.expired(utcnow())):
                    # the key was revoked or the token expired: say so, then end
                    refusal = json.dumps(auth.invalid_key().body(), separators=(",", ":"))
                    await write(ServerSentEvent(event="error", data=refusal).encode())
                    return
                slot.wake.clear()  # before reading: news arriving meanwhile wakes the next wait
                recent = feed.after(after)
                if recent is None:  # behind the feed's window: read PostgreSQL by cursor
                    caught_up, after, rows = await _read(services, filters, after, feed.top)
                    messages = [row.message for row in rows]
                else:
                    caught_up = True
                    messages = [event.message for event in recent if filters.matches(event)]
                    if recent:
                        after = recent[-1].seq
                if messages or time.monotonic() >= slot.due:  # news (one send for all), or a ping
                    await write(b"".join(messages) if messages else _ping())
                    slot.due = time.monotonic() + PING_SECONDS - CLOCK_SECONDS
                if caught_up and not slot.ended and not slot.wake.is_set():
                    await slot.wake.wait()
        finally:
            feed.forget(slot)
            if expiry is not None:
                expiry.cancel()

    return EventStreamResponse(
        pump,
        slot.end,
        lambda: registry.release(credential_id, filters.user_id, slot),
        {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _read(services: Services, filters: Filters, after: int, top: int) -> tuple[bool, int, list[Sequenced]]:
    """Up to 100 matching events in (after, top], oldest first; whether that reached `top`,
    and the resume point after them (`top` once reached: every seq up to it is visible)."""
    query = filters.apply(select(Event)).where(col(Event.seq) > after, col(Event.seq) <= top)
    async with services.sessions() as session:
        rows = list((await session.execute(query.order_by(col(Event.seq).asc()).limit(100))).scalars().all())
    events = [Sequenced.of(row) for row in rows]
    if len(events) < 100:
        return True, max(after, top), events
    return False, events[-1].seq, events
