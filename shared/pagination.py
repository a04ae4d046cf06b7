"""Opaque cursors for keyset pagination, and the page size cap."""

import base64
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar, TypeVarTuple, overload
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import and_, or_
from sqlmodel import Session
from sqlmodel.sql.expression import Select, SelectOfScalar

from shared.errors import BadRequest

MAX_PAGE_SIZE = 100

PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page.")]
CursorParam = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
]


# What a keyset-paged list may answer besides 200, for its OpenAPI `responses`: a cursor
# the server did not make, and (with `StrictQuery`) a bad or unknown query parameter.
MALFORMED_CURSOR: dict[int | str, dict[str, Any]] = {400: {"description": "Malformed cursor"}}
LIST_ERRORS: dict[int | str, dict[str, Any]] = {
    **MALFORMED_CURSOR,
    422: {"description": "Bad or unknown query parameter"},
}

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# What a database column can hold (SQLite INTEGER, PostgreSQL BIGINT): a crafted
# cursor with a larger integer would fail when bound, as a 500.
_MAX_INTEGER = 2**63 - 1


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, length: int) -> list[Any] | None:
    """The values of a cursor made by `encode_cursor`; a malformed one is a 400.

    Any forged cursor gets this one answer (a cursor is opaque): wrong base64 or JSON,
    wrong length, an integer no column holds, a number that is not finite.
    """
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("malformed cursor") from exc
    if not isinstance(values, list) or len(values) != length:
        raise BadRequest("malformed cursor")
    for value in values:
        if isinstance(value, int) and not -_MAX_INTEGER <= value <= _MAX_INTEGER:
            raise BadRequest("malformed cursor")
        if isinstance(value, float) and not math.isfinite(value):
            raise BadRequest("malformed cursor")
    return values


def cursor_id(value: object) -> UUID:
    """A UUID inside a cursor; anything else is a 400 (a forged cursor)."""
    if not isinstance(value, str):
        raise BadRequest("malformed cursor")
    try:
        return UUID(value)
    except ValueError:
        raise BadRequest("malformed cursor") from None


def cursor_text(value: object) -> str:
    """A string inside a cursor; anything else is a 400."""
    if not isinstance(value, str):
        raise BadRequest("malformed cursor")
    return value


def cursor_time(value: object) -> datetime:
    """An aware time written by `datetime.isoformat()`, in UTC; anything else is a 400.

    A naive time is no cursor of ours (every stored time is aware UTC), and a database
    column refuses it: it would be a 500, not a 400.
    """
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


def past(first: Any, second: Any, after: tuple[Any, Any], *, descending: bool) -> Any:
    """Rows that come after `after` in the order (first, second): the keyset condition of a
    two-column order (a value, then a unique tie-breaker), ascending or descending."""
    value, tie = after
    if descending:
        return or_(first < value, and_(first == value, second < tie))
    return or_(first > value, and_(first == value, second > tie))


@overload
def paginate(
    session: Session,
    query: SelectOfScalar[T],
    *,
    limit: int,
    cursor_of: Callable[[T], list[Any]],
) -> tuple[list[T], str | None]: ...


@overload
def paginate(
    session: Session,
    query: Select[*Ts],
    *,
    limit: int,
    cursor_of: Callable[[tuple[*Ts]], list[Any]],
) -> tuple[list[tuple[*Ts]], str | None]: ...


def paginate(
    session: Session,
    query: Any,
    *,
    limit: int,
    cursor_of: Callable[[Any], list[Any]],
) -> tuple[list[Any], str | None]:
    """One keyset page of an ordered, already filtered query, and the next page's cursor.

    One row more than the page is read, to know whether another page follows; the cursor
    holds `cursor_of(last row)`, the values the next query continues after.
    """
    rows = list(session.exec(query.limit(limit + 1)).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(cursor_of(rows[-1]))
