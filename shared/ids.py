"""Identifiers and clocks: UUIDv7 ids (time-ordered) and timezone-aware UTC times."""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import uuid6
from pydantic import AfterValidator


def new_id() -> UUID:
    """A time-ordered UUIDv7, so ids sort by creation and index well."""
    return UUID(bytes=uuid6.uuid7().bytes)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A time parsed from outside (a cursor, a client's text) with no offset is UTC.

    Not for times read from the database: every datetime column is read back aware UTC
    (see `shared.db`).
    """
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _in_utc(value: datetime) -> datetime:
    try:
        return as_utc(value).astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the year 1 in UTC
        raise ValueError("the time is out of range once converted to UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(_in_utc)]
"""A time from a client as aware UTC (naive means UTC); out of range in UTC is a 422."""
