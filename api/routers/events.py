"""`GET /events` (api.md §10): the events outbox by cursor, as a JSON list or a live SSE stream.

Only sequenced events are served (`seq`, given by the worker's sequencer after commit), so a
cursor never skips an event that commits late. Streams poll PostgreSQL for new rows every
POLL_SECONDS; nothing is lost if a stream misses a poll. A stream re-checks its credential every
SSE_CREDENTIAL_CHECK_SECONDS (≤ 15 s; a token's expiry at every poll) and ends with a final
`event: error` (`INVALID_API_KEY`) once its key is revoked or its token expired. A user-bound
token's list and stream are always narrowed to its user."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from sqlalchemy import Select, false, func, or_, select
from sqlmodel import col
from sse_starlette import EventSourceResponse, ServerSentEvent

from api import auth
from api.auth import Audience, Credential
from api.pagination import CursorQuery, LimitQuery, check_limit, envelope
from api.policy import Access, ContextDep, GuardedRoute, ServicesDep, policy
from api.schemas import field_error, query_time
from api.services import Services
from models.errors import ErrorCode, OfferhubError
from models.event_catalog import UnknownEventType, type_patterns
from models.events import event_view
from models.ids import IdPrefix, is_id
from models.tables import Event
from models.tables.records import RESOURCE_TYPES
from models.timefmt import iso, utcnow

router = APIRouter(route_class=GuardedRoute, tags=["events"])
POLL_SECONDS = 0.25
PING_SECONDS = 15
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
        query = query.where(col(Event.occurred_at) >= start)
    ordering = col(Event.seq).asc() if order == "asc" else col(Event.seq).desc()
    async with services.sessions() as session:
        rows = list((await session.execute(query.order_by(ordering).limit(limit + 1))).scalars().all())
    has_more, rows = len(rows) > limit, rows[:limit]
    return envelope([event_view(r) for r in rows], rows, has_more)


@dataclass
class StreamRegistry:
    """Open streams of this API process: one per (credential, user_id), at most 50 per credential."""

    open: dict[tuple[str, str | None], asyncio.Event] = field(default_factory=dict)
    per_credential: dict[str, int] = field(default_factory=dict)

    def claim(self, credential_id: str, user_id: str | None) -> asyncio.Event:
        older = self.open.get((credential_id, user_id))
        if older is not None:
            older.set()  # the newer stream replaces it: a reconnecting client is never locked out
        elif self.per_credential.get(credential_id, 0) >= STREAMS_PER_CREDENTIAL:
            raise OfferhubError(
                ErrorCode.RATE_LIMITED,
                "Too many open event streams for this credential",
                {"scope": "event_streams", "limit": STREAMS_PER_CREDENTIAL, "retry_after_seconds": 15},
                headers={"Retry-After": "15"},
            )
        ended = asyncio.Event()
        self.open[(credential_id, user_id)] = ended
        self.per_credential[credential_id] = self.per_credential.get(credential_id, 0) + (older is None)
        return ended

    def release(self, credential_id: str, user_id: str | None, ended: asyncio.Event) -> None:
        if self.open.get((credential_id, user_id)) is ended:
            del self.open[(credential_id, user_id)]
            self.per_credential[credential_id] -= 1


def _registry(request: Request) -> StreamRegistry:
    state = request.app.state
    if not hasattr(state, "event_streams"):
        state.event_streams = StreamRegistry()
    registry: StreamRegistry = state.event_streams
    return registry


async def _stream(
    request: Request, services: Services, credential: Credential, filters: Filters, resume: int | None
) -> EventSourceResponse:
    credential_id = credential.namespace
    check_every = services.settings.sse_credential_check_seconds
    registry = _registry(request)
    ended = registry.claim(credential_id, filters.user_id)
    if resume is None:  # live only: from the newest event now
        async with services.sessions() as session:
            resume = int(await session.scalar(select(func.max(col(Event.seq)))) or 0)

    async def events(after: int) -> AsyncIterator[ServerSentEvent]:
        try:
            yield ServerSentEvent(retry=3000)
            deadline = time.monotonic() + STREAM_SECONDS
            next_check = time.monotonic() + check_every
            while not ended.is_set() and time.monotonic() < deadline:
                lapsed = credential.expired(utcnow())
                if not lapsed and time.monotonic() >= next_check:
                    next_check = time.monotonic() + check_every
                    lapsed = not await auth.still_valid(services, credential)
                if lapsed:  # the key was revoked or the token expired: say so, then end
                    refusal = json.dumps(auth.invalid_key().body(), separators=(",", ":"))
                    yield ServerSentEvent(event="error", data=refusal)
                    return
                async with services.sessions() as session:
                    rows = (
                        (
                            await session.execute(
                                filters.apply(select(Event))
                                .where(col(Event.seq) > after)
                                .order_by(col(Event.seq).asc())
                                .limit(100)
                            )
                        )
                        .scalars()
                        .all()
                    )
                for row in rows:
                    assert row.seq is not None
                    after = row.seq
                    view = event_view(row)
                    yield ServerSentEvent(id=row.id, event=row.type, data=json.dumps(view, separators=(",", ":")))
                if len(rows) < 100:
                    await _wait(ended, POLL_SECONDS)
        finally:
            registry.release(credential_id, filters.user_id, ended)

    return EventSourceResponse(
        events(resume),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        media_type="text/event-stream; charset=utf-8",
        ping=PING_SECONDS,
        ping_message_factory=lambda: ServerSentEvent(event="ping", data=json.dumps({"time": iso(utcnow())})),
    )


async def _wait(ended: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ended.wait(), timeout=seconds)
