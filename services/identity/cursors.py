"""The typed values inside identity's list cursors; anything else in one is a 400.

`shared.pagination.decode_cursor` checks a cursor's shape; these check each value, so a
forged cursor is "malformed cursor" and never reaches the database as a wrong type.
"""

from datetime import UTC, datetime
from uuid import UUID

from shared.errors import BadRequest


def cursor_id(value: object) -> UUID:
    if not isinstance(value, str):
        raise BadRequest("malformed cursor")
    try:
        return UUID(value)
    except ValueError:
        raise BadRequest("malformed cursor") from None


def cursor_text(value: object) -> str:
    if not isinstance(value, str):
        raise BadRequest("malformed cursor")
    return value


def cursor_time(value: object) -> datetime:
    """An aware time written by `datetime.isoformat()` (a naive one is no cursor of ours)."""
    if not isinstance(value, str):
        raise BadRequest("malformed cursor")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest("malformed cursor") from None
    if parsed.utcoffset() is None:
        raise BadRequest("malformed cursor")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the year 1 in UTC
        raise BadRequest("malformed cursor") from None
