"""Private groups stay private in digests: membership is checked now, follows grant nothing."""

from collections.abc import Callable
from uuid import UUID

from fastapi.testclient import TestClient

from services.digests.tests.factories import content, read_digest, shown_ids
from shared.events.contracts import (
    FollowCreated,
    GroupCreated,
    GroupMemberAdded,
    GroupMemberRemoved,
)
from shared.ids import new_id

Publish = Callable[..., None]
AuthHeader = Callable[..., dict[str, str]]


def follow(follower: UUID, target_type: str, target: object) -> FollowCreated:
    return FollowCreated(follower_id=follower, target_type=target_type, target=str(target))


def private_group(owner: UUID, *members: UUID) -> tuple[UUID, list[object]]:
    group_id = new_id()
    events: list[object] = [
        GroupCreated(group_id=group_id, visibility="private", slug="s", name="S", owner_id=owner),
        GroupMemberAdded(group_id=group_id, visibility="private", user_id=owner, role="owner"),
    ]
    events += [
        GroupMemberAdded(group_id=group_id, visibility="private", user_id=member, role="member")
        for member in members
    ]
    return group_id, events


def test_private_group_items_reach_members_but_not_non_members_who_follow_it(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, carol, dave = new_id(), new_id(), new_id()
    secret, setup = private_group(dave, alice)
    item = content(author=dave, group_id=secret, private=True)
    publish(*setup, follow(alice, "group", secret), follow(carol, "group", secret), item)

    assert shown_ids(read_digest(client, auth_header(alice))) == [str(item.content_id)]
    assert read_digest(client, auth_header(carol))["sections"] == []


def test_member_who_left_private_group_no_longer_sees_it_although_the_follow_remains(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, dave = new_id(), new_id()
    secret, setup = private_group(dave, alice)
    item = content(author=dave, group_id=secret, private=True, tags=("plans",))
    publish(*setup, follow(alice, "group", secret), follow(alice, "tag", "plans"), item)
    assert shown_ids(read_digest(client, auth_header(alice))) == [str(item.content_id)]

    publish(GroupMemberRemoved(group_id=secret, visibility="private", user_id=alice))

    digest = read_digest(client, auth_header(alice))
    assert digest["sections"] == []
    assert digest["total_items"] == 0


def test_tag_follow_shows_public_items_but_not_private_ones_of_a_group_the_caller_is_not_in(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, carol, dave = new_id(), new_id(), new_id()
    secret, setup = private_group(dave, alice)
    public_item = content(author=dave, tags=("roadmap",), hours_ago=2)
    private_item = content(author=dave, group_id=secret, private=True, tags=("roadmap",))
    publish(
        *setup,
        follow(alice, "tag", "roadmap"),
        follow(carol, "tag", "roadmap"),
        public_item,
        private_item,
    )

    assert shown_ids(read_digest(client, auth_header(carol))) == [str(public_item.content_id)]
    assert shown_ids(read_digest(client, auth_header(alice))) == [
        str(private_item.content_id),
        str(public_item.content_id),
    ]


def test_person_follow_does_not_reveal_their_items_in_private_groups(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    carol, dave = new_id(), new_id()
    secret, setup = private_group(dave)
    public_item = content(author=dave, hours_ago=3)
    publish(
        *setup,
        follow(carol, "user", dave),
        public_item,
        content(author=dave, group_id=secret, private=True),
        # Even an item flagged public is hidden when its group is known to be private.
        content(author=dave, group_id=secret, private=False),
    )

    assert shown_ids(read_digest(client, auth_header(carol))) == [str(public_item.content_id)]


def test_replies_in_a_private_group_do_not_count_for_a_non_member(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    carol, dave = new_id(), new_id()
    secret, setup = private_group(dave)
    thread = content(author=dave, hours_ago=2)
    hidden_reply = content(
        author=dave, kind="reply", parent_id=thread.content_id, group_id=secret, private=True
    )
    publish(*setup, follow(carol, "user", dave), thread, hidden_reply)

    (section,) = read_digest(client, auth_header(carol))["sections"]
    assert section["items"][0]["replies"] == 0
