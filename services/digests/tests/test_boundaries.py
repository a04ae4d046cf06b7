"""Where a person's digest windows end: their local hour, daily or on local Mondays."""

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from services.digests.delivery import Schedule, local_boundary, previous_boundary
from services.digests.schemas import DigestPeriod


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# 2026-03-02 is a Monday.
@pytest.mark.parametrize(
    ("period", "now", "hour", "expected"),
    [
        ("daily", "2026-03-04T05:59:59", 6, "2026-03-03T06:00:00"),
        ("daily", "2026-03-04T06:00:00", 6, "2026-03-04T06:00:00"),
        ("daily", "2026-03-05T00:00:01", 6, "2026-03-04T06:00:00"),
        ("daily", "2026-03-01T00:30:00", 23, "2026-02-28T23:00:00"),
        ("weekly", "2026-03-02T05:59:59", 6, "2026-02-23T06:00:00"),
        ("weekly", "2026-03-02T06:00:00", 6, "2026-03-02T06:00:00"),
        ("weekly", "2026-03-08T23:59:59", 6, "2026-03-02T06:00:00"),
        ("weekly", "2026-03-09T00:00:00", 0, "2026-03-09T00:00:00"),
    ],
)
def test_in_utc_the_window_ends_at_the_hour_daily_or_on_mondays(
    period: DigestPeriod, now: str, hour: int, expected: str
) -> None:
    assert local_boundary(period=period, hour=hour, zone=UTC, now=at(now)) == at(expected)


def test_a_half_hour_zone_ends_the_window_at_the_local_hour() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30
    now = at("2026-03-04T03:29:59")
    assert local_boundary(period="daily", hour=9, zone=kolkata, now=now) == at(
        "2026-03-03T03:30:00"
    )
    assert local_boundary(period="daily", hour=9, zone=kolkata, now=now + timedelta(seconds=1)) == (
        at("2026-03-04T03:30:00")
    )


def test_weekly_means_monday_in_the_persons_zone() -> None:
    # Monday 08:00 in Auckland (UTC+13 in March) is Sunday 19:00 UTC.
    auckland = ZoneInfo("Pacific/Auckland")
    boundary = local_boundary(period="weekly", hour=8, zone=auckland, now=at("2026-03-01T19:00:00"))
    assert boundary == at("2026-03-01T19:00:00")
    assert boundary.astimezone(auckland).weekday() == 0
    # One second earlier it is still the previous local Monday.
    earlier = local_boundary(period="weekly", hour=8, zone=auckland, now=at("2026-03-01T18:59:59"))
    assert earlier == at("2026-02-22T19:00:00")


def test_on_a_dst_day_the_local_hour_holds_and_the_window_is_23_or_25_hours() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # CET→CEST on 2026-03-29, CEST→CET on 2026-10-25
    spring = local_boundary(period="daily", hour=9, zone=berlin, now=at("2026-03-29T12:00:00"))
    assert spring == at("2026-03-29T07:00:00")  # 09:00 CEST
    before = previous_boundary(period="daily", hour=9, zone=berlin, boundary=spring)
    assert before == at("2026-03-28T08:00:00")  # 09:00 CET
    assert spring - before == timedelta(hours=23)
    autumn = local_boundary(period="daily", hour=9, zone=berlin, now=at("2026-10-25T12:00:00"))
    assert autumn == at("2026-10-25T08:00:00")
    assert autumn - previous_boundary(
        period="daily", hour=9, zone=berlin, boundary=autumn
    ) == timedelta(hours=25)


def test_an_hour_that_does_not_exist_locally_is_read_the_same_way_every_time() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # 02:00 does not exist on 2026-03-29
    boundary = local_boundary(period="daily", hour=2, zone=berlin, now=at("2026-03-29T12:00:00"))
    assert boundary == at("2026-03-29T01:00:00")  # 03:00 CEST, right after the jump
    again = local_boundary(period="daily", hour=2, zone=berlin, now=at("2026-03-29T01:00:30"))
    assert again == boundary


def test_boundaries_do_not_depend_on_the_offset_now_is_given_in() -> None:
    now = datetime(2026, 3, 2, 1, 30, tzinfo=timezone(timedelta(hours=2)))  # Sun 23:30 UTC
    assert local_boundary(period="weekly", hour=0, zone=UTC, now=now) == at("2026-02-23T00:00:00")


def test_an_unknown_zone_falls_back_to_utc() -> None:
    assert Schedule(timezone="Mars/Olympus").zone() is UTC
    assert Schedule(timezone="../../etc/passwd").zone() is UTC
