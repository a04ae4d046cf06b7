"""Membership and profile projections tolerate late events (real SQLite, no bus)."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from services.search import service
from services.search.models import SearchGroup, SearchMembership, SearchUser
from shared.db import create_tables, make_engine
from shared.ids import new_id, utcnow


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'projections.db'}")
    create_tables(engine, [SearchUser, SearchGroup, SearchMembership])
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_a_late_join_does_not_undo_a_newer_leave(session: Session) -> None:
    group, user, now = new_id(), new_id(), utcnow()
    service.do_set_membership(
        session=session, group_id=group, user_id=user, is_member=False, at=now
    )
    service.do_set_membership(
        session=session, group_id=group, user_id=user, is_member=True, at=now - timedelta(seconds=1)
    )
    session.flush()
    assert service.list_member_groups(session=session, user_id=user) == []


def test_leaving_wins_a_tie_and_a_later_join_counts(session: Session) -> None:
    group, user, now = new_id(), new_id(), utcnow()
    service.do_set_membership(session=session, group_id=group, user_id=user, is_member=True, at=now)
    service.do_set_membership(
        session=session, group_id=group, user_id=user, is_member=False, at=now
    )
    session.flush()
    assert service.list_member_groups(session=session, user_id=user) == []
    later = now + timedelta(seconds=1)
    service.do_set_membership(
        session=session, group_id=group, user_id=user, is_member=True, at=later
    )
    session.flush()
    assert service.list_member_groups(session=session, user_id=user) == [group]


def test_an_older_profile_event_does_not_overwrite_a_newer_one(session: Session) -> None:
    user, now = new_id(), utcnow()
    service.do_record_user(session=session, user_id=user, handle="new", display_name="New", at=now)
    session.flush()
    service.do_record_user(
        session=session, user_id=user, handle="old", display_name="Old", at=now - timedelta(days=1)
    )
    session.flush()
    stored = session.get(SearchUser, user)
    assert stored is not None and stored.handle == "new"
