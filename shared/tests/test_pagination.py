"""`paginate`: the one keyset-pagination step every list uses."""

from datetime import UTC, datetime

import pytest
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from shared.errors import BadRequest
from shared.pagination import cursor_id, cursor_text, cursor_time, decode_cursor, paginate, past


class Numbered(SQLModel, table=True):
    __tablename__ = "test_pagination_numbered"
    number: int = Field(primary_key=True)


def walk(count: int, limit: int) -> list[list[int]]:
    """Every page of `count` rows, `limit` at a time, following the cursors."""
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine, tables=[Numbered.__table__])  # type: ignore[attr-defined]
    pages: list[list[int]] = []
    with Session(engine) as session:
        session.add_all(Numbered(number=number) for number in range(count))
        session.commit()
        cursor: str | None = None
        while True:
            query = select(Numbered).order_by(col(Numbered.number))
            after = decode_cursor(cursor, 1)
            if after is not None:
                query = query.where(col(Numbered.number) > after[0])
            rows, cursor = paginate(session, query, limit=limit, cursor_of=lambda row: [row.number])
            pages.append([row.number for row in rows])
            if cursor is None:
                return pages


def test_pages_cover_every_row_once_in_order() -> None:
    assert walk(7, 3) == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_last_page_that_is_exactly_full_has_no_next_cursor() -> None:
    assert walk(6, 3) == [[0, 1, 2], [3, 4, 5]]


def test_an_empty_list_is_one_empty_page() -> None:
    assert walk(0, 3) == [[]]


def test_a_cursor_time_is_aware_utc_and_anything_else_is_a_400() -> None:
    assert cursor_time("2026-01-01T01:00:00+01:00") == datetime(2026, 1, 1, tzinfo=UTC)
    for forged in ("2026-01-01T00:00:00", "0001-01-01T00:00:00+01:00", "yesterday", 5, None):
        with pytest.raises(BadRequest):
            cursor_time(forged)
    with pytest.raises(BadRequest):
        cursor_id("not-a-uuid")
    with pytest.raises(BadRequest):
        cursor_text(["a"])


class Paired(SQLModel, table=True):
    __tablename__ = "test_pagination_paired"
    id: int = Field(primary_key=True)
    value: int


def test_past_is_every_row_after_a_key_in_either_direction_ties_broken_by_the_second() -> None:
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine, tables=[Paired.__table__])  # type: ignore[attr-defined]
    rows = [(1, 5), (2, 5), (3, 5), (4, 7), (5, 3)]  # (id, value)
    with Session(engine) as session:
        session.add_all(Paired(id=id_, value=value) for id_, value in rows)
        session.commit()
        value, id_ = col(Paired.value), col(Paired.id)
        upward = select(Paired).where(past(value, id_, (5, 2), descending=False))
        assert [row.id for row in session.exec(upward.order_by(value, id_))] == [3, 4]
        downward = select(Paired).where(past(value, id_, (5, 2), descending=True))
        assert [row.id for row in session.exec(downward.order_by(value.desc(), id_.desc()))] == [
            1,
            5,
        ]
