"""A private group's content never reaches a non-member, and leaving hides what came before."""

from collections.abc import Callable

from fastapi.testclient import TestClient

from services.notifications.tests.factories import content, inbox, person, private_group, unread
from shared.events.contracts import GroupMemberRemoved, PostDeleted
from shared.ids import utcnow

Publish = Callable[..., None]
AuthHeader = Callable[..., dict[str, str]]


def test_a_mention_in_a_private_group_reaches_members_only(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ada, ada_registered = person("ada")
    ben, ben_registered = person("ben")
    eve, eve_registered = person("eve")
    secret, setup = private_group(ada, ben)
    post = content(author=ada, group_id=secret, mentions=("ben", "eve"))
    publish(ada_registered, ben_registered, eve_registered, *setup, post)

    assert [item["kind"] for item in inbox(client, auth_header(ben))] == ["mention", "group_added"]
    assert inbox(client, auth_header(eve)) == []
    assert unread(client, auth_header(eve)) == 0


def test_leaving_a_group_hides_its_items_and_the_unread_count_drops(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ada, ada_registered = person("ada")
    ben, ben_registered = person("ben")
    secret, setup = private_group(ada, ben)
    private_post = content(author=ada, group_id=secret, mentions=("ben",))
    public_post = content(author=ada, mentions=("ben",))
    publish(ada_registered, ben_registered, *setup, private_post, public_post)
    hidden = inbox(client, auth_header(ben), kind="mention")[1]
    assert hidden["item_id"] == str(private_post.content_id)
    assert unread(client, auth_header(ben)) == 3  # and "added to the group"

    publish(GroupMemberRemoved(group_id=secret, visibility="private", user_id=ben, version=2))

    assert [item["item_id"] for item in inbox(client, auth_header(ben))] == [
        str(public_post.content_id)
    ]
    assert unread(client, auth_header(ben)) == 1
    response = client.get(f"/notifications/{hidden['id']}", headers=auth_header(ben))
    assert response.status_code == 404
    marked = client.post("/notifications/read-all", headers=auth_header(ben)).json()
    assert marked == {"marked": 1}


def test_a_deleted_item_leaves_the_inbox(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    ada, ada_registered = person("ada")
    ben, ben_registered = person("ben")
    post = content(author=ada, mentions=("ben",))
    publish(ada_registered, ben_registered, post)
    assert unread(client, auth_header(ben)) == 1
    publish(
        PostDeleted(
            content_id=post.content_id,
            kind="post",
            author_id=ada,
            group_id=None,
            visibility="public",
            version=2,
            deleted_at=utcnow(),
        )
    )
    assert inbox(client, auth_header(ben)) == []
    assert unread(client, auth_header(ben)) == 0
