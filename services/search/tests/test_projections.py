"""Membership, profile and thanks projections tolerate late events (real SQLite, no bus)."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from sqlmodel import Session

from services.search import service
from services.search.models import SearchGroup, SearchMembership, SearchThanks, SearchUser
from shared.db import create_tables, make_engine
from shared.ids import new_id, utcnow


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'projections.db'}")
    create_tables(engine, [SearchUser, SearchGroup, SearchMembership, SearchThanks])
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_a_late_join_does_not_undo_a_newer_leave(session: Session) -> None:
    group, user, now = new_id(), new_id(), utcnow()
    service.do_set_membership(
        session=session, group_id=group, user_id=user, is_member=False, version=2, at=now
    )
    # Stamped later by a skewed clock, but identity numbered it before the removal.
    service.do_set_membership(
        session=session,
        group_id=group,
        user_id=user,
        is_member=True,
        version=1,
        at=now + timedelta(seconds=1),
    )
    session.flush()
    assert service.list_member_groups(session=session, user_id=user) == []


def test_a_replayed_leave_changes_nothing_and_a_newer_join_counts(session: Session) -> None:
    group, user, now = new_id(), new_id(), utcnow()
    for version, is_member in ((1, True), (2, False), (2, False)):
        service.do_set_membership(
            session=session,
            group_id=group,
            user_id=user,
            is_member=is_member,
            version=version,
            at=now,
        )
    session.flush()
    assert service.list_member_groups(session=session, user_id=user) == []
    service.do_set_membership(
        session=session, group_id=group, user_id=user, is_member=True, version=3, at=now
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


AUTHOR = new_id()


def thank(session: Session, content: UUID, user: UUID, at: datetime, *, given: bool = True) -> None:
    service.do_set_thanks(
        session=session,
        content_id=content,
        author_id=AUTHOR,
        user_id=user,
        is_thanked=given,
        at=at,
    )
    session.flush()


def thanks_for(session: Session, content: UUID) -> int:
    return service.count_thanks(session=session, content_ids=[content]).get(content, 0)


def test_a_replayed_thanks_counts_once_and_each_person_counts_once(session: Session) -> None:
    content, first, second, now = new_id(), new_id(), new_id(), utcnow()
    thank(session, content, first, now)
    thank(session, content, first, now)
    thank(session, content, first, now + timedelta(seconds=1))
    assert thanks_for(session, content) == 1
    thank(session, content, second, now)
    assert thanks_for(session, content) == 2


def test_a_late_thanks_does_not_undo_a_newer_removal(session: Session) -> None:
    content, user, now = new_id(), new_id(), utcnow()
    thank(session, content, user, now, given=False)
    thank(session, content, user, now - timedelta(seconds=1))
    assert thanks_for(session, content) == 0
    thank(session, content, user, now + timedelta(seconds=1))
    assert thanks_for(session, content) == 1
    # A replayed older removal does not take back the newer thanks either.
    thank(session, content, user, now, given=False)
    assert thanks_for(session, content) == 1


def test_removal_wins_a_tie(session: Session) -> None:
    content, user, now = new_id(), new_id(), utcnow()
    thank(session, content, user, now)
    thank(session, content, user, now, given=False)
    assert thanks_for(session, content) == 0


def test_thanking_oneself_is_not_recorded(session: Session) -> None:
    content = new_id()
    thank(session, content, AUTHOR, utcnow())
    assert thanks_for(session, content) == 0


def test_thanks_are_counted_per_item_in_chunks(session: Session) -> None:
    items = [new_id() for _ in range(1_200)]
    now = utcnow()
    for content in items[::100]:
        thank(session, content, new_id(), now)
    counts = service.count_thanks(session=session, content_ids=items)
    assert counts == dict.fromkeys(items[::100], 1)
