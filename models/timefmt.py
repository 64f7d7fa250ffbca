"""Times as the API renders them: ISO 8601 UTC with milliseconds and `Z`."""

from __future__ import annotations

from datetime import UTC, date, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    # isoformat truncates to milliseconds as `microsecond // 1000` would, pads years to four
    # digits (strftime's %Y does not, below 1000), and costs half as much per call
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_query_time(text: str) -> datetime:
    """Query timestamps: ISO 8601 with a timezone, or a bare date (midnight UTC). A moment
    outside years 1-9999 once in UTC (`0001-01-01T00:00:00+01:00`) is a ValueError too."""
    if not text.isascii():
        raise ValueError("a timestamp is ASCII")
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("a timestamp needs a timezone (e.g. Z)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the moment is outside years 1-9999 in UTC") from None
