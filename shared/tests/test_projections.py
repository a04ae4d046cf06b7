"""The ordering rule every projection of another service's facts applies (real database)."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from sqlmodel import Field, Session, SQLModel

from shared.db import create_tables, make_engine
from shared.ids import new_id, utcnow
from shared.projections import UNVERSIONED, do_apply_fact
from shared.testing.backends import fresh_database


class ProjectedMembership(SQLModel, table=True):
    """A projection shaped like the services' own (keys, a state, a version, a time)."""

    __tablename__ = "test_projected_membership"

    group_id: UUID = Field(primary_key=True)
    user_id: UUID = Field(primary_key=True)
    is_member: bool
    version: int
    changed_at: datetime


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    with fresh_database(tmp_path, "projections") as url:
        engine = make_engine(url)
        create_tables(engine, [ProjectedMembership])
        with Session(engine) as session:
            yield session
        engine.dispose()


KEY = (new_id(), new_id())
NOW = utcnow()


def apply(session: Session, *, is_member: bool, version: int, at: datetime = NOW) -> bool:
    group_id, user_id = KEY
    return do_apply_fact(
        session=session,
        model=ProjectedMembership,
        keys=["group_id", "user_id"],
        values={
            "group_id": group_id,
            "user_id": user_id,
            "is_member": is_member,
            "version": version,
            "changed_at": at,
        },
    )


def stored(session: Session) -> tuple[bool, int]:
    row = session.get(ProjectedMembership, KEY, populate_existing=True)
    assert row is not None
    return row.is_member, row.version


def test_a_newer_version_is_applied(session: Session) -> None:
    assert apply(session, is_member=True, version=1)
    assert apply(session, is_member=False, version=2)
    assert stored(session) == (False, 2)


def test_an_older_version_is_ignored_even_with_a_later_time(session: Session) -> None:
    assert apply(session, is_member=False, version=2)
    later = NOW + timedelta(seconds=5)  # a receiver's clock, ahead of the owner's
    assert not apply(session, is_member=True, version=1, at=later)
    assert stored(session) == (False, 2)


def test_an_equal_version_is_ignored(session: Session) -> None:
    assert apply(session, is_member=True, version=3)
    assert not apply(session, is_member=False, version=3, at=NOW + timedelta(seconds=1))
    assert stored(session) == (True, 3)


def test_a_removal_then_a_stale_add_leaves_the_member_out(session: Session) -> None:
    assert apply(session, is_member=True, version=1)
    assert apply(session, is_member=False, version=2)
    assert not apply(session, is_member=True, version=1)  # the add, redelivered late
    assert stored(session) == (False, 2)
    assert apply(session, is_member=True, version=3)  # added again, for real
    assert stored(session) == (True, 3)


def test_unversioned_facts_order_by_time_and_lose_to_any_version(session: Session) -> None:
    assert apply(session, is_member=True, version=UNVERSIONED, at=NOW)
    assert not apply(session, is_member=False, version=UNVERSIONED, at=NOW - timedelta(seconds=1))
    assert apply(session, is_member=False, version=UNVERSIONED, at=NOW + timedelta(seconds=1))
    assert stored(session) == (False, UNVERSIONED)
    assert apply(session, is_member=True, version=1)
    later = NOW + timedelta(days=1)
    assert not apply(session, is_member=False, version=UNVERSIONED, at=later)
    assert stored(session) == (True, 1)
