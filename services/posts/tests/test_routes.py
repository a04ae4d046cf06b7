"""Every endpoint refuses bad credentials and bad input with problem+json, never a 5xx."""

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from services.posts.tests.conftest import User
from services.posts.tests.test_articles import article
from services.posts.tests.test_service import post
from shared.auth import TokenIssuer
from shared.ids import new_id

SOME_ID = "0190a0a0-0000-7000-8000-000000000000"
ENDPOINTS = [
    ("POST", "/posts"),
    ("GET", "/posts"),
    ("GET", f"/posts/{SOME_ID}"),
    ("PATCH", f"/posts/{SOME_ID}"),
    ("DELETE", f"/posts/{SOME_ID}"),
    ("GET", f"/posts/{SOME_ID}/replies"),
    ("POST", f"/posts/{SOME_ID}/formalize"),
    ("POST", f"/posts/{SOME_ID}/reactions"),
    ("POST", "/articles"),
    ("GET", "/articles"),
    ("GET", f"/articles/{SOME_ID}"),
    ("PATCH", f"/articles/{SOME_ID}"),
    ("DELETE", f"/articles/{SOME_ID}"),
    ("GET", f"/articles/{SOME_ID}/revisions"),
    ("GET", f"/articles/{SOME_ID}/revisions/1"),
    ("GET", "/internal/content"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_needs_a_valid_token(posts: TestClient, method: str, path: str) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic YWRhOnB3"},
    ):
        response = posts.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (method, path, headers)
        assert response.headers["content-type"] == "application/problem+json"


def test_token_signed_by_an_unknown_key_is_401(posts: TestClient) -> None:
    stranger = TokenIssuer(
        Ed25519PrivateKey.generate(),
        issuer="knowflow-identity",
        audience="knowflow",
        ttl_seconds=60,
    )
    token = stranger.issue(user_id=new_id(), handle="eve")
    response = posts.get("/posts", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "payload",
    [
        {"body": ""},
        {"body": "   "},
        {"body": "x" * 5001},
        {"body": "hi", "extra": 1},
        {"body": "hi", "group_id": "not-a-uuid"},
        {"body": 42},
        {},
    ],
)
def test_bad_post_input_is_422(
    posts: TestClient, user: Callable[[str], User], payload: dict[str, object]
) -> None:
    response = posts.post("/posts", json=payload, headers=user("ada").headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "payload",
    [
        {"title": "", "body": "b"},
        {"title": "t" * 201, "body": "b"},
        {"title": "t", "body": "b" * 100_001},
        {"title": "t", "body": "b", "tags": ["no spaces allowed"]},
        {"title": "t", "body": "b", "tags": ["ok"] * 51},
        {"title": "t", "body": "b", "author_id": SOME_ID},
    ],
)
def test_bad_article_input_is_422(
    posts: TestClient, user: Callable[[str], User], payload: dict[str, object]
) -> None:
    response = posts.post("/articles", json=payload, headers=user("ada").headers)
    assert response.status_code == 422


def test_bad_updates_are_422(posts: TestClient, user: Callable[[str], User]) -> None:
    ada = user("ada")
    created_post = post(posts, ada, "hi")
    created_article = article(posts, ada)
    for path, payload in (
        (f"/posts/{created_post['id']}", {"body": "x" * 5001}),
        (f"/posts/{created_post['id']}", {"body": "ok", "version": 9}),
        (f"/articles/{created_article['id']}", {"title": ""}),
        (f"/articles/{created_article['id']}", {"revision": 9}),
    ):
        assert posts.patch(path, json=payload, headers=ada.headers).status_code == 422


def test_request_over_the_size_cap_is_413(posts: TestClient, user: Callable[[str], User]) -> None:
    big = "x" * 1_100_000
    response = posts.post(
        "/articles", json={"title": "t", "body": big}, headers=user("ada").headers
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "path",
    ["/posts/not-a-uuid", "/articles/123", "/posts/123/replies", "/articles/x/revisions/1"],
)
def test_malformed_ids_are_422(posts: TestClient, user: Callable[[str], User], path: str) -> None:
    assert posts.get(path, headers=user("ada").headers).status_code == 422


def test_unknown_ids_are_404(posts: TestClient, user: Callable[[str], User]) -> None:
    headers = user("ada").headers
    for path in (f"/posts/{SOME_ID}", f"/articles/{SOME_ID}", f"/articles/{SOME_ID}/revisions"):
        assert posts.get(path, headers=headers).status_code == 404
    formalize = posts.post(f"/posts/{SOME_ID}/formalize", json={"title": "t"}, headers=headers)
    assert formalize.status_code == 404


# [2**64] and [-2**64]: integers SQLite cannot bind (they were a 500).
HUGE_INTEGER_CURSORS = ["WzE4NDQ2NzQ0MDczNzA5NTUxNjE2XQ", "Wy0xODQ0Njc0NDA3MzcwOTU1MTYxNl0"]


@pytest.mark.parametrize(
    "cursor", ["!!!", "bm90LWpzb24", "WzEsMl0", "WyJ4Il0", *HUGE_INTEGER_CURSORS]
)
def test_malformed_cursor_is_400(
    posts: TestClient, user: Callable[[str], User], cursor: str
) -> None:
    ada = user("ada")
    created = article(posts, ada)
    for path in ("/posts", "/articles", f"/articles/{created['id']}/revisions"):
        response = posts.get(path, params={"cursor": cursor}, headers=ada.headers)
        assert response.status_code == 400, path
        assert response.headers["content-type"] == "application/problem+json"


def test_page_size_is_capped(posts: TestClient, user: Callable[[str], User]) -> None:
    response = posts.get("/posts", params={"limit": 101}, headers=user("ada").headers)
    assert response.status_code == 422
