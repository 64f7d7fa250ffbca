"""How the API renders a moment: ISO 8601 in UTC, milliseconds (truncated), `Z`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from models.timefmt import iso


@pytest.mark.parametrize(
    ("moment", "shown"),
    [
        (None, None),
        (datetime(2026, 1, 1, tzinfo=UTC), "2026-01-01T00:00:00.000Z"),
        (datetime(2026, 3, 4, 5, 6, 7, 891999, tzinfo=UTC), "2026-03-04T05:06:07.891Z"),
        (datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=5))), "2025-12-31T19:30:00.000Z"),
        (datetime(999, 12, 31, 23, 59, 59, 1000, tzinfo=UTC), "0999-12-31T23:59:59.001Z"),
    ],
)
def test_moments_are_utc_with_milliseconds(moment: datetime | None, shown: str | None) -> None:
    assert iso(moment) == shown
