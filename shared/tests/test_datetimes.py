"""Every datetime column reads back as aware UTC, on SQLite as on PostgreSQL (real databases).

SQLModel maps a `datetime` field to its `UTCDateTime` column type (DateTime(timezone=True)):
an aware value is stored in UTC, a naive one is refused, and what is read is aware UTC even
where the store keeps no offset (SQLite). Code reading rows therefore never converts.
"""

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import exc
from sqlmodel import Field, Session, SQLModel, col, func, select

from shared.db import create_tables, make_engine
from shared.ids import new_id
from shared.testing.backends import fresh_database, postgres_url


class Stamp(SQLModel, table=True):
    """A row with the two shapes of datetime column the services declare."""

    __tablename__ = "test_stamp"

    id: UUID = Field(default_factory=new_id, primary_key=True)
    at: datetime = Field(index=True)
    ended_at: datetime | None = None


@pytest.fixture(params=["sqlite", "postgresql"])
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    # fresh_database picks PostgreSQL whenever it is configured: SQLite is asked for here.
    database: AbstractContextManager[str]
    if request.param == "sqlite":
        database = nullcontext(f"sqlite:///{tmp_path / 'datetimes.db'}")
    elif postgres_url() is None:
        pytest.skip("KNOWFLOW_TEST_POSTGRES_URL is not set")
    else:
        database = fresh_database(tmp_path, "datetimes")
    with database as url:
        engine = make_engine(url)
        create_tables(engine, [Stamp])
        with Session(engine, expire_on_commit=False) as session:
            yield session
        engine.dispose()


NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PARIS = timezone(timedelta(hours=2))


def read_back(session: Session, stamp_id: UUID) -> Stamp:
    session.expunge_all()  # read from the database, not the identity map
    return session.exec(select(Stamp).where(Stamp.id == stamp_id)).one()


def test_a_time_written_and_read_back_is_aware_utc(session: Session) -> None:
    stamp = Stamp(at=NOON, ended_at=NOON.astimezone(PARIS))
    session.add(stamp)
    session.commit()
    row = read_back(session, stamp.id)
    assert row.at == NOON and row.at.tzinfo == UTC
    # Another offset is the same instant, stored and read in UTC.
    assert row.ended_at == NOON and row.ended_at is not None and row.ended_at.tzinfo == UTC
    # A column or an aggregate of one selected alone keeps the column's type: aware too.
    alone = session.exec(select(Stamp.at)).one()
    latest = session.exec(select(func.max(Stamp.at))).one()
    assert alone.tzinfo == UTC and latest is not None and latest.tzinfo == UTC


def test_times_read_back_compare_and_sort_with_aware_times(session: Session) -> None:
    times = [NOON + timedelta(minutes=minutes) for minutes in (30, -90, 0)]
    session.add_all([Stamp(at=moment.astimezone(PARIS)) for moment in times])
    session.commit()
    session.expunge_all()
    read = [row.at for row in session.exec(select(Stamp).order_by(col(Stamp.at)))]
    assert read == sorted(times)
    assert sorted([*read, NOON + timedelta(minutes=1)])[-1] == NOON + timedelta(minutes=30)
    assert all(moment < datetime.now(UTC) for moment in read)
    # A bound aware value of another offset compares as the same instant in SQL (SQLite
    # compares stored text: both sides are written in UTC).
    after = session.exec(select(Stamp).where(col(Stamp.at) > NOON.astimezone(PARIS))).all()
    assert [row.at for row in after] == [NOON + timedelta(minutes=30)]


def test_a_naive_time_is_refused_on_the_way_in(session: Session) -> None:
    session.add(Stamp(at=NOON.replace(tzinfo=None)))
    with pytest.raises(exc.StatementError, match="timezone"):
        session.commit()
