"""`GET /internal/content`: every live item, for search to reindex from; admins only."""

from collections.abc import Callable

from fastapi.testclient import TestClient

from services.posts.tests.conftest import Groups, User, answer, ask
from services.posts.tests.test_articles import article
from services.posts.tests.test_service import post
from shared.auth import TokenIssuer
from shared.ids import new_id


def test_admin_pages_through_all_live_content_in_id_order(
    posts: TestClient, user: Callable[[str], User], groups: Groups, token_issuer: TokenIssuer
) -> None:
    ada = user("ada")
    secret = groups.create(ada, "private")
    first = post(posts, ada, "public #one")
    second = article(posts, ada, group_id=str(secret))
    third = post(posts, ada, "reply", parent_id=first["id"])
    gone = post(posts, ada, "deleted")
    posts.delete(f"/posts/{gone['id']}", headers=ada.headers)
    admin = {
        "Authorization": f"Bearer {token_issuer.issue(user_id=new_id(), handle='root', is_admin=True)}"
    }

    page = posts.get("/internal/content", params={"limit": 2}, headers=admin).json()
    rest = posts.get(
        "/internal/content", params={"limit": 2, "cursor": page["next_cursor"]}, headers=admin
    ).json()
    assert rest["next_cursor"] is None
    items = page["items"] + rest["items"]
    assert [item["content_id"] for item in items] == [first["id"], second["id"], third["id"]]
    assert [item["kind"] for item in items] == ["post", "article", "reply"]
    assert items[1]["visibility"] == "private" and items[1]["title"] == "How we deploy"
    assert items[0]["tags"] == ["one"] and items[2]["parent_id"] == first["id"]


def test_internal_content_is_forbidden_to_non_admins(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    assert posts.get("/internal/content", headers=user("ada").headers).status_code == 403
    assert posts.get("/internal/content").status_code == 401


def test_questions_answers_and_comments_are_listed_for_reindexing(
    posts: TestClient, user: Callable[[str], User], admin: User
) -> None:
    ada, bob = user("ada"), user("bob")
    question = ask(posts, ada, tags=["ops"])
    reply = answer(posts, bob, question["id"])
    comment = posts.post(
        f"/answers/{reply['id']}/comments", json={"body": "ok"}, headers=ada.headers
    ).json()
    items = posts.get("/internal/content", headers=admin.headers).json()["items"]
    kinds = {item["content_id"]: item["kind"] for item in items}
    assert kinds == {question["id"]: "question", reply["id"]: "answer", comment["id"]: "comment"}
    by_id = {item["content_id"]: item for item in items}
    assert by_id[question["id"]]["title"] == question["title"]
    assert by_id[reply["id"]]["thread_id"] == question["id"]
    assert by_id[reply["id"]]["tags"] == ["ops"]
