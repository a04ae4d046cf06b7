"""Moderation: a group's moderators and owner hide posts; only they (and admins) still see them."""

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from services.posts.tests.conftest import Groups, User, outbox_events

Json = dict[str, Any]


def post(client: TestClient, author: User, **fields: Any) -> Json:
    response = client.post("/posts", json=fields, headers=author.headers)
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def listed(client: TestClient, who: User, path: str, **params: str) -> list[str]:
    response = client.get(path, params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def snapshots(client: TestClient, content_id: str) -> list[Json]:
    return [
        event.data
        for _subject, event in outbox_events(client)
        if event.type == "knowflow.post.updated.v1" and event.data["content_id"] == content_id
    ]


def test_a_moderator_hides_a_post_from_members_and_shows_it_again(
    posts: TestClient, user: Callable[[str], User], groups: Groups
) -> None:
    owner, moderator, member, outsider = user("olga"), user("mo"), user("mia"), user("eve")
    group = groups.create(owner)
    groups.add(group, moderator)
    groups.add(group, moderator, role="moderator")
    groups.add(group, member)
    root = post(posts, member, body="rude #ops @olga", group_id=str(group))
    reply = post(posts, owner, body="calm down", parent_id=root["id"])
    path = f"/posts/{root['id']}/hidden"
    # A plain member hides nothing; someone outside the private group does not see it.
    assert posts.put(path, headers=member.headers).status_code == 403
    assert posts.put(path, headers=outsider.headers).status_code == 404
    hidden = posts.put(path, headers=moderator.headers)
    assert hidden.status_code == 200, hidden.text
    assert hidden.json()["hidden_at"] is not None and hidden.json()["version"] == 2
    # Gone for members: reads, lists, the thread's replies stay readable on their own.
    assert posts.get(f"/posts/{root['id']}", headers=member.headers).status_code == 404
    assert root["id"] not in listed(posts, member, "/posts", group_id=str(group))
    assert root["id"] not in listed(posts, member, "/posts", tag="ops")
    # Still there for the group's moderators and owner, marked hidden.
    for who in (moderator, owner):
        seen = posts.get(f"/posts/{root['id']}", headers=who.headers)
        assert seen.status_code == 200 and seen.json()["hidden_at"] is not None
        assert root["id"] in listed(posts, who, "/posts", group_id=str(group))
    # Consumers get the next version, hidden and without its text; the audit gets an entry.
    last = snapshots(posts, root["id"])[-1]
    assert last["hidden"] is True and last["body"] == "" and last["tags"] == []
    assert last["version"] == 2
    reported = [e.data for _s, e in outbox_events(posts) if e.type == "knowflow.audit.reported.v1"]
    assert reported[-1]["action"] == "content.hidden"
    assert reported[-1]["target"] == f"post:{root['id']}"
    assert reported[-1]["actor_id"] == str(moderator.id)
    assert reported[-1]["details"] == {"kind": "post", "group_id": str(group)}
    # Hiding twice changes nothing; showing it again brings it back with its text.
    assert posts.put(path, headers=moderator.headers).json()["version"] == 2
    # For a plain member the hidden post does not exist.
    assert posts.delete(path, headers=member.headers).status_code == 404
    shown = posts.delete(path, headers=owner.headers)
    assert shown.status_code == 200 and shown.json()["hidden_at"] is None
    assert posts.get(f"/posts/{root['id']}", headers=member.headers).status_code == 200
    last = snapshots(posts, root["id"])[-1]
    assert last["hidden"] is False and last["body"] == "rude #ops @olga" and last["version"] == 3
    assert reply["id"] in listed(posts, member, f"/posts/{root['id']}/replies")


def test_a_hidden_reply_leaves_the_replies_for_members_and_formalizing(
    posts: TestClient, user: Callable[[str], User], groups: Groups
) -> None:
    owner, member = user("olga"), user("mia")
    group = groups.create(owner)
    groups.add(group, member)
    root = post(posts, owner, body="plan", group_id=str(group))
    reply = post(posts, member, body="spam spam", parent_id=root["id"])
    assert posts.put(f"/posts/{reply['id']}/hidden", headers=owner.headers).status_code == 200
    assert listed(posts, member, f"/posts/{root['id']}/replies") == []
    assert listed(posts, owner, f"/posts/{root['id']}/replies") == [reply["id"]]
    article = posts.post(
        f"/posts/{root['id']}/formalize", json={"title": "Plan"}, headers=owner.headers
    )
    assert article.status_code == 201, article.text
    assert "spam" not in article.json()["body"]


def test_an_admin_hides_a_public_post_and_its_author_no_longer_sees_it(
    posts: TestClient, user: Callable[[str], User], admin: User
) -> None:
    author, reader = user("ann"), user("rob")
    item = post(posts, author, body="off topic")
    path = f"/posts/{item['id']}/hidden"
    assert posts.put(path, headers=reader.headers).status_code == 403
    assert posts.put(path, headers=author.headers).status_code == 403
    assert posts.put(path, headers=admin.headers).status_code == 200
    for who in (author, reader):
        assert posts.get(f"/posts/{item['id']}", headers=who.headers).status_code == 404
        assert item["id"] not in listed(posts, who, "/posts")
    assert item["id"] in listed(posts, admin, "/posts")
    assert posts.put(f"/posts/{item['id']}x/hidden", headers=admin.headers).status_code == 422
    assert posts.put(path).status_code == 401
