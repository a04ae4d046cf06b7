"""Optimistic concurrency on posts and articles: ETag on reads, If-Match on PATCH and DELETE."""

from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session

from services.posts.models import Post
from services.posts.tests.conftest import User
from shared.ids import utcnow

# (collection, a body to create one, a change to make, the field the change shows in)
RESOURCES = [
    ("/posts", {"body": "first words"}, {"body": "second words"}, "body"),
    ("/articles", {"title": "Deploys", "body": "first words"}, {"body": "second words"}, "body"),
]


def created(client: TestClient, author: User, collection: str, body: dict[str, Any]) -> str:
    response = client.post(collection, json=body, headers=author.headers)
    assert response.status_code == 201, response.text
    return f"{collection}/{response.json()['id']}"


def problem_412(response: Any) -> None:
    assert response.status_code == 412, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 412


@pytest.mark.parametrize(("collection", "body", "change", "field"), RESOURCES)
def test_a_read_carries_an_etag_and_a_matching_if_match_edits(
    posts: TestClient,
    user: Callable[[str], User],
    collection: str,
    body: dict[str, Any],
    change: dict[str, Any],
    field: str,
) -> None:
    ada = user("ada")
    url = created(posts, ada, collection, body)
    read = posts.get(url, headers=ada.headers)
    etag = read.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert posts.get(url, headers=ada.headers).headers["etag"] == etag  # stable
    edited = posts.patch(url, json=change, headers={**ada.headers, "If-Match": etag})
    assert edited.status_code == 200, edited.text
    assert edited.json()[field] == change[field]
    assert edited.headers["etag"] not in ("", etag)
    assert posts.get(url, headers=ada.headers).headers["etag"] == edited.headers["etag"]


@pytest.mark.parametrize(("collection", "body", "change", "field"), RESOURCES)
def test_an_edit_with_a_stale_etag_is_412_and_changes_nothing(
    posts: TestClient,
    user: Callable[[str], User],
    collection: str,
    body: dict[str, Any],
    change: dict[str, Any],
    field: str,
) -> None:
    ada = user("ada")
    url = created(posts, ada, collection, body)
    stale = posts.get(url, headers=ada.headers).headers["etag"]
    # Someone (another tab, another device) edits first.
    first = posts.patch(url, json={field: "the other edit"}, headers=ada.headers)
    assert first.status_code == 200
    current = posts.get(url, headers=ada.headers)
    problem_412(posts.patch(url, json=change, headers={**ada.headers, "If-Match": stale}))
    after = posts.get(url, headers=ada.headers)
    assert after.json() == current.json()
    assert after.headers["etag"] == current.headers["etag"]


@pytest.mark.parametrize(("collection", "body", "change", "field"), RESOURCES)
def test_a_delete_with_a_stale_etag_is_412_and_one_with_the_current_etag_deletes(
    posts: TestClient,
    user: Callable[[str], User],
    collection: str,
    body: dict[str, Any],
    change: dict[str, Any],
    field: str,
) -> None:
    ada = user("ada")
    url = created(posts, ada, collection, body)
    stale = posts.get(url, headers=ada.headers).headers["etag"]
    assert posts.patch(url, json=change, headers=ada.headers).status_code == 200
    problem_412(posts.delete(url, headers={**ada.headers, "If-Match": stale}))
    assert posts.get(url, headers=ada.headers).status_code == 200
    current = posts.get(url, headers=ada.headers).headers["etag"]
    assert posts.delete(url, headers={**ada.headers, "If-Match": current}).status_code == 204
    assert posts.get(url, headers=ada.headers).status_code == 404


@pytest.mark.parametrize(("collection", "body", "change", "field"), RESOURCES)
def test_if_match_star_or_no_if_match_edits_unconditionally(
    posts: TestClient,
    user: Callable[[str], User],
    collection: str,
    body: dict[str, Any],
    change: dict[str, Any],
    field: str,
) -> None:
    ada = user("ada")
    url = created(posts, ada, collection, body)
    star = posts.patch(url, json=change, headers={**ada.headers, "If-Match": "*"})
    assert star.status_code == 200
    plain = posts.patch(url, json={field: "third words"}, headers=ada.headers)
    assert plain.status_code == 200 and plain.json()[field] == "third words"
    # A list naming the current ETag among others matches; a weak ETag never does.
    current = plain.headers["etag"]
    listed = posts.patch(
        url, json={field: "fourth words"}, headers={**ada.headers, "If-Match": f'"x", {current}'}
    )
    assert listed.status_code == 200
    weak = f"W/{listed.headers['etag']}"
    problem_412(posts.patch(url, json=change, headers={**ada.headers, "If-Match": weak}))


def test_a_lost_update_race_cannot_pass_the_version_check(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    """Two writers that read the same version: the database refuses the second write."""
    ada = user("ada")
    url = created(posts, ada, "/posts", {"body": "first words"})
    post_id = url.rsplit("/", 1)[1]
    engine = posts.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as first, Session(engine) as second:
        mine = first.get(Post, UUID(post_id))
        theirs = second.get(Post, UUID(post_id))
        assert mine is not None and theirs is not None
        mine.body, mine.version, mine.updated_at = "mine", mine.version + 1, utcnow()
        first.commit()
        theirs.body, theirs.version = "theirs", theirs.version + 1
        with pytest.raises(StaleDataError):
            second.commit()
    assert posts.get(url, headers=ada.headers).json()["body"] == "mine"


def test_the_openapi_document_declares_etag_if_match_and_412(posts: TestClient) -> None:
    spec = posts.get("/openapi.json").json()
    for path in ("/posts/{post_id}", "/articles/{article_id}"):
        operations = spec["paths"][path]
        assert "ETag" in operations["get"]["responses"]["200"]["headers"]
        assert "ETag" in operations["patch"]["responses"]["200"]["headers"]
        for method in ("patch", "delete"):
            assert "412" in operations[method]["responses"]
            names = {parameter["name"] for parameter in operations[method]["parameters"]}
            assert "If-Match" in names
