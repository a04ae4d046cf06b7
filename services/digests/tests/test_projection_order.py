"""Projections are order-safe: replays and late, stale events never regress them."""

from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

from fastapi.testclient import TestClient

from services.digests.tests.factories import content, read_digest, shown_ids
from shared.events.contracts import (
    FollowCreated,
    FollowDeleted,
    GroupCreated,
    GroupMemberAdded,
    GroupMemberRemoved,
    PostDeleted,
    PostUpdated,
    UserProfileUpdated,
    UserRegistered,
)
from shared.ids import new_id, utcnow

Publish = Callable[..., None]
AuthHeader = Callable[..., dict[str, str]]


def test_stale_and_replayed_content_updates_do_not_regress(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, bob = new_id(), new_id()
    created = content(author=bob, title="One", tags=("old",))
    item_id = created.content_id
    newest = content(
        author=bob, model=PostUpdated, content_id=item_id, title="Three", tags=("new",), version=3
    )
    stale = content(author=bob, model=PostUpdated, content_id=item_id, title="Two", version=2)
    publish(follow_tag(alice, "new"), follow_tag(alice, "old"), newest, created, newest, stale)

    (section,) = read_digest(client, auth_header(alice))["sections"]
    assert section["key"] == "new"
    (item,) = section["items"]
    assert item["title"] == "Three"
    assert item["tags"] == ["new"]


def test_delete_arriving_before_create_keeps_the_item_out(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, bob = new_id(), new_id()
    late = content(author=bob, hours_ago=1)
    kept = content(author=bob, hours_ago=2)
    deletion = PostDeleted(
        content_id=late.content_id,
        kind="post",
        author_id=bob,
        group_id=None,
        visibility="public",
        version=2,
        deleted_at=utcnow(),
    )
    resurrect = content(
        author=bob, model=PostUpdated, content_id=late.content_id, title="back?", version=5
    )
    publish(
        FollowCreated(follower_id=alice, target_type="user", target=str(bob)),
        deletion,
        late,
        resurrect,
        kept,
    )

    assert shown_ids(read_digest(client, auth_header(alice))) == [str(kept.content_id)]


def test_a_late_follow_event_does_not_undo_a_newer_unfollow(
    client: TestClient, publish_at: Callable[..., None], auth_header: AuthHeader
) -> None:
    alice, bob = new_id(), new_id()
    now = utcnow()
    followed = FollowCreated(follower_id=alice, target_type="user", target=str(bob))
    unfollowed = FollowDeleted(follower_id=alice, target_type="user", target=str(bob))
    publish_at(
        (content(author=bob), now), (unfollowed, now), (followed, now - timedelta(seconds=5))
    )

    assert read_digest(client, auth_header(alice))["sections"] == []

    publish_at((followed, now + timedelta(seconds=5)))
    assert len(read_digest(client, auth_header(alice))["sections"]) == 1


def test_a_late_member_added_event_does_not_undo_a_newer_removal(
    client: TestClient, publish_at: Callable[..., None], auth_header: AuthHeader
) -> None:
    alice, dave, secret = new_id(), new_id(), new_id()
    now = utcnow()
    publish_at(
        (
            GroupCreated(group_id=secret, visibility="private", slug="s", name="S", owner_id=dave),
            now,
        ),
        (FollowCreated(follower_id=alice, target_type="group", target=str(secret)), now),
        (content(author=dave, group_id=secret, private=True), now),
        (GroupMemberRemoved(group_id=secret, visibility="private", user_id=alice), now),
        (
            GroupMemberAdded(group_id=secret, visibility="private", user_id=alice, role="member"),
            now - timedelta(seconds=5),
        ),
    )

    assert read_digest(client, auth_header(alice))["sections"] == []


def test_a_late_member_added_loses_to_the_removal_by_version_whatever_its_time(
    client: TestClient, publish_at: Callable[..., None], auth_header: AuthHeader
) -> None:
    alice, dave, secret = new_id(), new_id(), new_id()
    now = utcnow()
    added = GroupMemberAdded(
        group_id=secret, visibility="private", user_id=alice, role="member", version=1
    )
    publish_at(
        (
            GroupCreated(group_id=secret, visibility="private", slug="s", name="S", owner_id=dave),
            now,
        ),
        (FollowCreated(follower_id=alice, target_type="group", target=str(secret)), now),
        (content(author=dave, group_id=secret, private=True), now),
        (GroupMemberRemoved(group_id=secret, visibility="private", user_id=alice, version=2), now),
        # Numbered before the removal by identity, though stamped later by another clock.
        (added, now + timedelta(seconds=5)),
    )

    assert read_digest(client, auth_header(alice))["sections"] == []


def test_a_late_registration_does_not_undo_a_newer_profile_update(
    client: TestClient, publish_at: Callable[..., None], auth_header: AuthHeader
) -> None:
    alice, bob = new_id(), new_id()
    now = utcnow()
    publish_at(
        (FollowCreated(follower_id=alice, target_type="user", target=str(bob)), now),
        (content(author=bob), now),
        (
            UserProfileUpdated(user_id=bob, handle="bob", display_name="Robert", bio="", skills=[]),
            now,
        ),
        (UserRegistered(user_id=bob, handle="bob", display_name="Bob"), now - timedelta(seconds=5)),
    )

    (section,) = read_digest(client, auth_header(alice))["sections"]
    assert section["label"] == "Robert (@bob)"
    assert section["items"][0]["author_handle"] == "bob"


def follow_tag(follower: UUID, tag: str) -> FollowCreated:
    return FollowCreated(follower_id=follower, target_type="tag", target=tag)
