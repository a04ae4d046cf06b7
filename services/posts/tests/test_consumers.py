"""The group projection fed by identity's events: idempotent, and late events lose."""

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session

from services.posts.consumers import on_group_created, on_member_added, on_member_removed
from services.posts.models import KnownGroup, KnownMembership
from services.posts.tests.conftest import Groups, User, is_member
from shared.events.contracts import GroupCreated, GroupMemberAdded, GroupMemberRemoved
from shared.events.envelope import wrap
from shared.ids import new_id
from shared.testing.fixtures import wait_for


def test_group_events_on_the_bus_build_the_membership_projection(
    posts: TestClient, groups: Groups, user: Callable[[str], User]
) -> None:
    ada, bob = user("ada"), user("bob")
    group_id = groups.create(ada, "private")
    groups.add(group_id, bob)
    with Session(posts.app.state.engine) as session:  # type: ignore[attr-defined]
        group = session.get(KnownGroup, group_id)
        assert group is not None and group.visibility == "private"
    groups.remove(group_id, bob)
    assert is_member(posts, group_id, ada.id)


def test_replayed_group_events_change_nothing(
    posts: TestClient, publish_events: Callable[..., None], user: Callable[[str], User]
) -> None:
    ada = user("ada")
    group_id = new_id()
    created = GroupCreated(
        group_id=group_id, visibility="open", slug="team", name="Team", owner_id=ada.id
    )
    added = GroupMemberAdded(group_id=group_id, visibility="open", user_id=ada.id, role="owner")
    publish_events(created, added, created, added)
    wait_for(lambda: is_member(posts, group_id, ada.id))


def test_a_late_membership_event_does_not_override_a_newer_one(posts: TestClient) -> None:
    group_id, user_id = new_id(), new_id()
    added = wrap(
        GroupMemberAdded(group_id=group_id, visibility="private", user_id=user_id, role="member"),
        source="/test",
    )
    removed = wrap(
        GroupMemberRemoved(group_id=group_id, visibility="private", user_id=user_id),
        source="/test",
    )
    removed = removed.model_copy(update={"time": added.time + timedelta(seconds=1)})
    engine = posts.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        on_member_removed(session, removed, GroupMemberRemoved.model_validate(removed.data))
        session.commit()
    with Session(engine) as session:
        # Delivered after the removal, though it happened before it.
        on_member_added(session, added, GroupMemberAdded.model_validate(added.data))
        session.commit()
    with Session(engine) as session:
        membership = session.get(KnownMembership, (group_id, user_id))
        assert membership is not None and not membership.is_member


def test_group_created_alone_knows_the_group_but_no_members(posts: TestClient) -> None:
    group_id = new_id()
    event = wrap(
        GroupCreated(
            group_id=group_id, visibility="open", slug="solo", name="Solo", owner_id=new_id()
        ),
        source="/test",
    )
    engine = posts.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        on_group_created(session, event, GroupCreated.model_validate(event.data))
        session.commit()
    with Session(engine) as session:
        assert session.get(KnownGroup, group_id) is not None
        assert session.get(KnownMembership, (group_id, new_id())) is None
