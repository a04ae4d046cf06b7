"""Opaque cursors for keyset pagination, and the page size cap."""

import base64
import json
import math
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from shared.errors import BadRequest

MAX_PAGE_SIZE = 100

PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page.")]
CursorParam = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
]


T = TypeVar("T")

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
