"""Identifiers and clocks: UUIDv7 ids (time-ordered) and timezone-aware UTC times."""

from datetime import UTC, datetime
from uuid import UUID

import uuid6


def new_id() -> UUID:
    """A time-ordered UUIDv7, so ids sort by creation and index well."""
    return UUID(bytes=uuid6.uuid7().bytes)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
