"""Stock articles, their revisions, and formalizing threads, through the HTTP API."""

from collections.abc import Callable
from uuid import UUID

from fastapi.testclient import TestClient

from services.posts.parsing import MAX_MENTIONS, MAX_TAGS
from services.posts.tests.conftest import Groups, User, outbox_events
from services.posts.tests.test_service import post


def article(client: TestClient, author: User, **fields: object) -> dict[str, object]:
    payload = {"title": "How we deploy", "body": "Use #helm with @ada", **fields}
    response = client.post("/articles", json=payload, headers=author.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_article_starts_at_revision_1_with_given_tags_and_hashtags(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada = user("ada")
    created = article(posts, ada, tags=["#Kubernetes", "helm"])
    assert created["version"] == 1
    assert created["tags"] == ["kubernetes", "helm"]
    assert created["mentions"] == ["ada"]
    assert created["visibility"] == "public"
    assert created["source_thread_id"] is None and created["source_kind"] is None
    read = posts.get(f"/articles/{created['id']}", headers=user("bob").headers)
    assert read.status_code == 200 and read.json()["title"] == "How we deploy"


def test_every_edit_is_kept_as_a_revision(posts: TestClient, user: Callable[[str], User]) -> None:
    ada = user("ada")
    created = article(posts, ada, tags=["ops"])
    path = f"/articles/{created['id']}"
    edited = posts.patch(path, json={"body": "Now with #argo"}, headers=ada.headers).json()
    assert edited["version"] == 2
    assert edited["tags"] == ["ops", "argo"]  # given tags are kept when not sent
    retitled = posts.patch(path, json={"title": "Deploying", "tags": []}, headers=ada.headers)
    assert retitled.json()["version"] == 3 and retitled.json()["tags"] == ["argo"]
    unchanged = posts.patch(path, json={"title": "Deploying"}, headers=ada.headers)
    assert unchanged.json()["version"] == 3  # a change to nothing is not a revision

    listed = posts.get(f"{path}/revisions", headers=ada.headers).json()
    assert [item["number"] for item in listed["items"]] == [1, 2, 3]
    assert [item["title"] for item in listed["items"]] == [
        "How we deploy",
        "How we deploy",
        "Deploying",
    ]
    first = posts.get(f"{path}/revisions/1", headers=ada.headers).json()
    assert first["body"] == "Use #helm with @ada" and first["tags"] == ["ops", "helm"]
    paged = posts.get(f"{path}/revisions", params={"limit": 2}, headers=ada.headers).json()
    rest = posts.get(
        f"{path}/revisions",
        params={"limit": 2, "cursor": paged["next_cursor"]},
        headers=ada.headers,
    ).json()
    assert [item["number"] for item in rest["items"]] == [3]
    assert posts.get(f"{path}/revisions/4", headers=ada.headers).status_code == 404
    assert posts.get(f"{path}/revisions/0", headers=ada.headers).status_code == 422


def test_someone_else_cannot_edit_or_delete_an_article(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada, mallory = user("ada"), user("mallory")
    created = article(posts, ada)
    path = f"/articles/{created['id']}"
    assert posts.patch(path, json={"title": "pwned"}, headers=mallory.headers).status_code == 403
    assert posts.delete(path, headers=mallory.headers).status_code == 403
    assert posts.get(path, headers=ada.headers).json()["version"] == 1


def test_deleted_article_disappears_with_its_revisions(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada = user("ada")
    created = article(posts, ada, tags=["obsolete"])
    path = f"/articles/{created['id']}"
    assert posts.delete(path, headers=ada.headers).status_code == 204
    for read in (path, f"{path}/revisions", f"{path}/revisions/1"):
        assert posts.get(read, headers=ada.headers).status_code == 404
    assert posts.get("/articles", params={"tag": "obsolete"}, headers=ada.headers).json() == {
        "items": [],
        "next_cursor": None,
    }


def test_list_articles_filters_by_author_tag_and_group(
    posts: TestClient, user: Callable[[str], User], groups: Groups
) -> None:
    ada, bob = user("ada"), user("bob")
    team = groups.create(bob, "open")
    article(posts, ada, body="about #python")
    in_team = article(posts, bob, body="about #python too", group_id=str(team))
    by_tag = posts.get("/articles", params={"tag": "python"}, headers=ada.headers).json()
    assert len(by_tag["items"]) == 2 and by_tag["items"][0]["id"] == in_team["id"]
    by_author = posts.get("/articles", params={"author_id": str(bob.id)}, headers=ada.headers)
    assert [item["id"] for item in by_author.json()["items"]] == [in_team["id"]]
    by_group = posts.get("/articles", params={"group_id": str(team)}, headers=ada.headers)
    assert [item["id"] for item in by_group.json()["items"]] == [in_team["id"]]


def test_private_article_is_404_to_outsiders_in_every_read_path(
    posts: TestClient, user: Callable[[str], User], groups: Groups
) -> None:
    ada, bob, eve = user("ada"), user("bob"), user("eve")
    secret = groups.create(ada, "private")
    groups.add(secret, bob)
    created = article(posts, ada, group_id=str(secret), tags=["secret"])
    assert created["visibility"] == "private"
    path = f"/articles/{created['id']}"
    for read in (path, f"{path}/revisions", f"{path}/revisions/1"):
        assert posts.get(read, headers=eve.headers).status_code == 404, read
        assert posts.get(read, headers=bob.headers).status_code == 200, read
    for params in ({}, {"tag": "secret"}, {"group_id": str(secret)}):
        assert posts.get("/articles", params=params, headers=eve.headers).json()["items"] == []
    assert posts.patch(path, json={"title": "x"}, headers=eve.headers).status_code == 404
    assert posts.delete(path, headers=eve.headers).status_code == 404
    outside = posts.post(
        "/articles", json={"title": "t", "body": "b", "group_id": str(secret)}, headers=eve.headers
    )
    assert outside.status_code == 404


def test_formalizing_a_thread_links_article_and_thread_both_ways(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada, bob = user("ada"), user("bob")
    root = post(posts, ada, "How do we rotate #secrets?")
    reply = post(posts, bob, "With #vault, every 90 days.", parent_id=root["id"])
    response = posts.post(
        f"/posts/{reply['id']}/formalize", json={"title": "Rotating secrets"}, headers=bob.headers
    )
    assert response.status_code == 201, response.text
    formal = response.json()
    assert formal["source_thread_id"] == root["id"]
    assert formal["source_kind"] == "post"
    assert formal["author_id"] == str(bob.id)
    assert formal["tags"] == ["secrets", "vault"]
    assert formal["mentions"] == []  # crediting authors is not mentioning them
    body = formal["body"]
    assert body.index("**ada** wrote") < body.index("rotate #secrets") < body.index("**bob**")
    assert "every 90 days" in body

    linked = posts.get(f"/posts/{root['id']}", headers=ada.headers).json()
    assert linked["formalized_as"] == [formal["id"]]
    listed = posts.get("/posts", params={"kind": "post"}, headers=ada.headers).json()
    assert listed["items"][0]["formalized_as"] == [formal["id"]]


def test_article_from_a_thread_requires_the_thread_to_be_readable(
    posts: TestClient, user: Callable[[str], User], groups: Groups
) -> None:
    ada, eve = user("ada"), user("eve")
    secret = groups.create(ada, "private")
    hidden = post(posts, ada, "private thread", group_id=str(secret))
    for response in (
        posts.post(
            "/articles",
            json={"title": "t", "body": "b", "source_thread_id": hidden["id"]},
            headers=eve.headers,
        ),
        posts.post(f"/posts/{hidden['id']}/formalize", json={"title": "t"}, headers=eve.headers),
        posts.post(
            "/articles",
            json={"title": "t", "body": "b", "source_thread_id": str(UUID(int=3))},
            headers=eve.headers,
        ),
    ):
        assert response.status_code == 404


def test_article_from_a_private_thread_stays_in_its_group(
    posts: TestClient, user: Callable[[str], User], groups: Groups
) -> None:
    ada = user("ada")
    secret = groups.create(ada, "private")
    thread = post(posts, ada, "private thread", group_id=str(secret))
    formal = posts.post(
        f"/posts/{thread['id']}/formalize", json={"title": "t"}, headers=ada.headers
    ).json()
    assert formal["group_id"] == str(secret) and formal["visibility"] == "private"
    moved = posts.post(
        "/articles",
        json={"title": "t", "body": "b", "source_thread_id": thread["id"], "group_id": None},
        headers=ada.headers,
    )
    assert moved.status_code == 201 and moved.json()["visibility"] == "private"
    elsewhere = groups.create(ada, "open")
    leaked = posts.post(
        "/articles",
        json={
            "title": "t",
            "body": "b",
            "source_thread_id": thread["id"],
            "group_id": str(elsewhere),
        },
        headers=ada.headers,
    )
    assert leaked.status_code == 400


def test_article_events_carry_revision_as_version_and_private_ones_are_restricted(
    posts: TestClient, user: Callable[[str], User], groups: Groups
) -> None:
    ada = user("ada")
    secret = groups.create(ada, "private")
    created = article(posts, ada, group_id=str(secret))
    posts.patch(f"/articles/{created['id']}", json={"body": "v2"}, headers=ada.headers)
    posts.delete(f"/articles/{created['id']}", headers=ada.headers)
    recorded = [(subject, event.data["version"]) for subject, event in outbox_events(posts)]
    assert recorded == [
        ("events.restricted.article.created.v1", 1),
        ("events.restricted.article.updated.v1", 2),
        ("events.restricted.article.deleted.v1", 3),
    ]
    snapshot = outbox_events(posts)[1][1].data
    assert snapshot["kind"] == "article" and snapshot["title"] == "How we deploy"
    assert snapshot["body"] == "v2" and snapshot["group_id"] == str(secret)


def test_hashtags_in_a_body_are_capped_with_given_tags_first(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada = user("ada")
    crowded = " ".join(f"#tag{n} @person{n}" for n in range(3000))
    created = article(posts, ada, tags=["given"], body=crowded)
    assert created["tags"] == ["given", *[f"tag{n}" for n in range(MAX_TAGS - 1)]]
    assert created["mentions"] == [f"person{n}" for n in range(MAX_MENTIONS)]
    path = f"/articles/{created['id']}"
    edited = posts.patch(path, json={"body": crowded + " #late"}, headers=ada.headers)
    assert edited.status_code == 200 and len(edited.json()["tags"]) == MAX_TAGS
    for body in (
        " ".join(f"#p{n}" for n in range(1200)),
        " ".join(f"@u{n:03}" for n in range(900)),
    ):
        created_post = posts.post("/posts", json={"body": body[:5000]}, headers=ada.headers)
        assert created_post.status_code == 201, created_post.text
        assert len(created_post.json()["tags"]) <= MAX_TAGS
        assert len(created_post.json()["mentions"]) <= MAX_MENTIONS


def test_a_thread_is_formalized_once_and_later_attempts_point_to_the_article(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada, bob = user("ada"), user("bob")
    root = post(posts, ada, "How do we rotate #secrets?")
    reply = post(posts, bob, "With #vault", parent_id=root["id"])
    first = posts.post(f"/posts/{root['id']}/formalize", json={"title": "t"}, headers=ada.headers)
    assert first.status_code == 201, first.text
    again = posts.post(f"/posts/{reply['id']}/formalize", json={"title": "t"}, headers=bob.headers)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["article_id"] == first.json()["id"]
    assert again.headers["location"] == f"/articles/{first.json()['id']}"


def test_a_formalized_thread_credits_every_author_and_the_formalizer(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada, bob, cyd = user("ada"), user("bob"), user("cyd")
    root = post(posts, ada, "How do we rotate #secrets?")
    post(posts, bob, "With #vault", parent_id=root["id"])
    post(posts, ada, "Thanks!", parent_id=root["id"])
    formal = posts.post(
        f"/posts/{root['id']}/formalize", json={"title": "t"}, headers=cyd.headers
    ).json()
    assert formal["contributors"] == [
        {"user_id": str(ada.id), "handle": "ada"},
        {"user_id": str(bob.id), "handle": "bob"},
        {"user_id": str(cyd.id), "handle": "cyd"},
    ]
    plain = article(posts, bob)
    assert plain["contributors"] == [{"user_id": str(bob.id), "handle": "bob"}]
