"""The projections are order-safe: late or replayed facts never overwrite newer ones."""

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session

from services.notifications.models import NotifiedContent, NotifiedMembership, NotifiedUser
from services.notifications.tests.factories import content, inbox, person, private_group
from shared.events.contracts import (
    GroupMemberAdded,
    GroupMemberRemoved,
    PostUpdated,
    UserContactUpdated,
)
from shared.ids import utcnow

Publish = Callable[..., None]
AuthHeader = Callable[..., dict[str, str]]


def test_a_contact_before_registration_lands_and_the_latest_address_wins(
    client: TestClient, publish: Publish
) -> None:
    ben, registered = person("Ben", "Ben Ng")
    now = utcnow()
    publish(
        UserContactUpdated(user_id=ben, email="new@example.org", changed_at=now),
        registered,
        UserContactUpdated(
            user_id=ben, email="old@example.org", changed_at=now - timedelta(hours=1)
        ),
    )
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = session.get(NotifiedUser, ben)
        assert row is not None
        assert (row.handle, row.display_name, row.email) == ("ben", "Ben Ng", "new@example.org")


def test_a_late_membership_fact_does_not_bring_a_leaver_back(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ada, ada_registered = person("ada")
    ben, ben_registered = person("ben")
    secret, setup = private_group(ada, ben)
    left = GroupMemberRemoved(group_id=secret, visibility="private", user_id=ben, version=2)
    late_add = GroupMemberAdded(
        group_id=secret, visibility="private", user_id=ben, role="member", version=1, added_by=ada
    )
    publish(ada_registered, ben_registered, *setup, left, late_add)
    publish(content(author=ada, group_id=secret, mentions=("ben",)))

    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        membership = session.get(NotifiedMembership, (secret, ben))
        assert membership is not None and membership.active is False
    assert inbox(client, auth_header(ben)) == []


def test_a_stale_content_update_is_ignored(client: TestClient, publish: Publish) -> None:
    ada, _ = person("ada")
    post = content(author=ada, title="New title", version=3)
    stale = content(
        author=ada, model=PostUpdated, content_id=post.content_id, title="Old", version=2
    )
    publish(post, stale)
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = session.get(NotifiedContent, post.content_id)
        assert row is not None and (row.title, row.version) == ("New title", 3)


def test_someone_added_again_after_leaving_a_private_group_is_told_again(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ada, ada_registered = person("ada", "Ada Lovelace")
    ben, ben_registered = person("ben")
    secret, setup = private_group(ada, ben, name="Secret")
    left = GroupMemberRemoved(group_id=secret, visibility="private", user_id=ben, version=2)
    again = GroupMemberAdded(
        group_id=secret, visibility="private", user_id=ben, role="member", version=3, added_by=ada
    )
    publish(ada_registered, ben_registered, *setup, left, again)
    titles = [item["title"] for item in inbox(client, auth_header(ben))]
    assert titles == ["Ada Lovelace added you to “Secret”"] * 2
