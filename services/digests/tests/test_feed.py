"""The home feed: followed people, tags and groups, newest first, paged, and private stays private."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.digests.tests.factories import content, reply
from services.digests.tests.test_digest_privacy import follow, private_group
from shared.events.contracts import (
    AnswerCreated,
    FollowDeleted,
    GroupCreated,
    GroupMemberRemoved,
    PostDeleted,
    PostUpdated,
    QuestionCreated,
    QuestionDeleted,
    UserRegistered,
)
from shared.ids import new_id, utcnow

Publish = Callable[..., None]
AuthHeader = Callable[..., dict[str, str]]


def read_feed(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get("/feed", headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def feed_ids(feed: dict[str, Any]) -> list[str]:
    return [item["id"] for item in feed["items"]]


def test_following_nothing_is_an_empty_feed_that_says_so(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, bob = new_id(), new_id()
    publish(content(author=bob, tags=("python",)))

    feed = read_feed(client, auth_header(alice))

    assert feed == {"items": [], "next_cursor": None, "follows_anything": False}


def test_feed_holds_followed_people_tags_and_groups_newest_first_with_reasons(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, bob, carol = new_id(), new_id(), new_id()
    group = new_id()
    by_bob = content(author=bob, title="By Bob", hours_ago=3)
    tagged = content(author=carol, tags=("Python", "web"), hours_ago=2)
    in_group = content(author=carol, group_id=group, hours_ago=1)
    both = content(author=bob, group_id=group, tags=("python",), hours_ago=0.5)
    unrelated = content(author=carol, tags=("rust",), hours_ago=0.1)
    publish(
        UserRegistered(user_id=bob, handle="Bob", display_name="Bob B"),
        GroupCreated(
            group_id=group, visibility="open", slug="eng", name="Engineering", owner_id=bob
        ),
        follow(alice, "user", bob),
        follow(alice, "tag", "#python"),
        follow(alice, "group", group),
        by_bob,
        tagged,
        in_group,
        both,
        unrelated,
    )

    feed = read_feed(client, auth_header(alice))

    assert feed["follows_anything"] is True
    assert feed_ids(feed) == [
        str(both.content_id),
        str(in_group.content_id),
        str(tagged.content_id),
        str(by_bob.content_id),
    ]
    first = feed["items"][0]
    assert first["reasons"] == [
        {"kind": "person", "value": str(bob), "label": "Bob B (@bob)"},
        {"kind": "group", "value": str(group), "label": "Engineering"},
        {"kind": "tag", "value": "python", "label": "#python"},
    ]
    assert first["author_handle"] == "bob"
    assert first["author_display_name"] == "Bob B"
    assert first["group_name"] == "Engineering"
    assert first["tags"] == ["python"]
    last = feed["items"][-1]
    assert last["title"] == "By Bob"
    assert last["excerpt"] == "Something worth knowing."
    assert last["kind"] == "post"
    assert feed["items"][2]["reasons"] == [{"kind": "tag", "value": "python", "label": "#python"}]


def test_feed_leaves_out_own_deleted_and_hidden_items_and_unfollowed_sources(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, bob, carol = new_id(), new_id(), new_id()
    own = content(author=alice, tags=("python",))
    deleted = content(author=bob, hours_ago=2)
    hidden = content(author=bob, hours_ago=3)
    kept = content(author=bob, hours_ago=4)
    by_carol = content(author=carol)
    publish(
        follow(alice, "user", bob),
        follow(alice, "tag", "python"),
        follow(alice, "user", carol),
        follow(alice, "user", alice),
        own,
        deleted,
        hidden,
        kept,
        by_carol,
    )
    hidden_now = hidden.model_dump()
    hidden_now.update(version=2, hidden=True)
    publish(
        PostDeleted(
            content_id=deleted.content_id,
            kind="post",
            author_id=bob,
            group_id=None,
            visibility="public",
            version=2,
            deleted_at=utcnow(),
        ),
        PostUpdated(**hidden_now),
        FollowDeleted(follower_id=alice, target_type="user", target=str(carol)),
    )

    assert feed_ids(read_feed(client, auth_header(alice))) == [str(kept.content_id)]


def test_feed_pages_with_a_cursor_without_gaps_or_repeats(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, bob = new_id(), new_id()
    items = [content(author=bob, hours_ago=float(n)) for n in range(5)]
    # Two items at the very same moment: the id breaks the tie.
    twin = content(author=bob, hours_ago=2.0)
    twin = twin.model_copy(update={"created_at": items[2].created_at})
    publish(follow(alice, "user", bob), *items, twin)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = read_feed(client, auth_header(alice), **params)
        seen += feed_ids(page)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(str(item.content_id) for item in [*items, twin])
    assert len(seen) == len(set(seen))
    newest = [str(items[0].content_id), str(items[1].content_id)]
    assert seen[:2] == newest


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"cursor": "not-a-cursor"}, 400),
        ({"cursor": "WyJ4IiwieSJd"}, 400),  # ["x","y"]
        ({"cursor": "WzEsMl0"}, 400),  # [1,2]
        ({"limit": 0}, 422),
        ({"limit": 101}, 422),
    ],
)
def test_bad_cursor_or_limit_is_a_problem_not_a_500(
    client: TestClient, auth_header: AuthHeader, params: dict[str, Any], status: int
) -> None:
    alice = new_id()
    response = client.get("/feed", headers=auth_header(alice), params=params)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


def test_private_group_items_reach_current_members_only(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, carol, dave = new_id(), new_id(), new_id()
    secret, setup = private_group(dave, alice)
    private_item = content(author=dave, group_id=secret, private=True, tags=("plans",))
    private_reply = reply(author=dave, to=private_item, tags=("plans",))
    public_item = content(author=dave, tags=("plans",), hours_ago=5)
    publish(
        *setup,
        *(
            follow(who, kind, target)
            for who in (alice, carol)
            for kind, target in [
                ("group", secret),
                ("tag", "plans"),
                ("user", dave),
            ]
        ),
        private_item,
        private_reply,
        public_item,
    )

    member = feed_ids(read_feed(client, auth_header(alice)))
    assert member == [
        str(private_reply.content_id),
        str(private_item.content_id),
        str(public_item.content_id),
    ]
    # The outsider follows the same group, tag and person: only the public item.
    assert feed_ids(read_feed(client, auth_header(carol))) == [str(public_item.content_id)]

    publish(GroupMemberRemoved(group_id=secret, visibility="private", user_id=alice))
    assert feed_ids(read_feed(client, auth_header(alice))) == [str(public_item.content_id)]


def test_feed_needs_a_valid_token(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not.a.token"}):
        response = client.get("/feed", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"


def test_questions_and_answers_by_followed_people_and_tags_are_in_the_feed(
    client: TestClient, publish: Publish, auth_header: AuthHeader
) -> None:
    alice, bob, carol = new_id(), new_id(), new_id()
    question = content(
        author=carol, model=QuestionCreated, kind="question", title="Why?", tags=("k8s",)
    )
    answer = content(author=bob, model=AnswerCreated, kind="answer", parent_id=question.content_id)
    other = content(author=carol, model=QuestionCreated, kind="question", tags=("rust",))
    publish(follow(alice, "tag", "k8s"), follow(alice, "user", bob), question, answer, other)

    items = {item["id"]: item for item in read_feed(client, auth_header(alice))["items"]}

    assert set(items) == {str(question.content_id), str(answer.content_id)}
    assert items[str(question.content_id)]["kind"] == "question"
    assert items[str(answer.content_id)]["thread_root_id"] == str(question.content_id)

    publish(
        QuestionDeleted(
            content_id=question.content_id,
            kind="question",
            author_id=carol,
            group_id=None,
            visibility="public",
            version=2,
            deleted_at=utcnow(),
        )
    )
    assert str(question.content_id) not in feed_ids(read_feed(client, auth_header(alice)))
