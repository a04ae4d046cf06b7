"""Where digest windows end: daily at the configured hour, weekly on Monday at that hour."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.digests.delivery import latest_boundary
from services.digests.schemas import DigestPeriod


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# 2026-03-02 is a Monday.
@pytest.mark.parametrize(
    ("period", "now", "hour", "expected"),
    [
        ("daily", "2026-03-04T05:59:59", 6, "2026-03-03T06:00:00"),
        ("daily", "2026-03-04T06:00:00", 6, "2026-03-04T06:00:00"),
        ("daily", "2026-03-04T23:59:59", 6, "2026-03-04T06:00:00"),
        ("daily", "2026-03-05T00:00:01", 6, "2026-03-04T06:00:00"),
        ("daily", "2026-03-04T23:59:59", 0, "2026-03-04T00:00:00"),
        ("daily", "2026-03-05T00:00:00", 0, "2026-03-05T00:00:00"),
        ("daily", "2026-03-01T00:30:00", 23, "2026-02-28T23:00:00"),
        ("weekly", "2026-03-02T05:59:59", 6, "2026-02-23T06:00:00"),
        ("weekly", "2026-03-02T06:00:00", 6, "2026-03-02T06:00:00"),
        ("weekly", "2026-03-03T12:00:00", 6, "2026-03-02T06:00:00"),
        ("weekly", "2026-03-08T23:59:59", 6, "2026-03-02T06:00:00"),
        ("weekly", "2026-03-09T00:00:00", 0, "2026-03-09T00:00:00"),
        ("weekly", "2026-03-08T23:59:59", 0, "2026-03-02T00:00:00"),
    ],
)
def test_latest_boundary_is_the_last_scheduled_window_end(
    period: DigestPeriod, now: str, hour: int, expected: str
) -> None:
    assert latest_boundary(period=period, now=at(now), hour_utc=hour) == at(expected)


def test_boundaries_are_computed_in_utc_whatever_the_offset_of_now() -> None:
    # 01:30 on Monday in UTC+2 is still Sunday 23:30 in UTC.
    now = datetime(2026, 3, 2, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert latest_boundary(period="weekly", now=now, hour_utc=0) == at("2026-02-23T00:00:00")
    assert latest_boundary(period="daily", now=now, hour_utc=6) == at("2026-03-01T06:00:00")
