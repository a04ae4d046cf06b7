"""The answers' contract: headers the HTTP spec requires, and the body cap for chunked bodies."""

from collections.abc import Callable, Iterator

from fastapi.testclient import TestClient

from services.posts.tests.conftest import User


def test_a_405_names_the_allowed_methods(posts: TestClient, user: Callable[[str], User]) -> None:
    answer = posts.put("/posts", headers=user("ada").headers)
    assert answer.status_code == 405
    assert set(answer.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_a_401_names_the_bearer_scheme(posts: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}):
        answer = posts.get("/posts", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"


def test_a_chunked_body_over_the_cap_is_413(posts: TestClient, user: Callable[[str], User]) -> None:
    cap = posts.app.state.settings.max_body_bytes  # type: ignore[attr-defined]

    def chunks() -> Iterator[bytes]:
        yield b'{"body": "'
        for _ in range(cap // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    headers = {**user("ada").headers, "Content-Type": "application/json"}
    answer = posts.post("/posts", content=chunks(), headers=headers)
    assert "content-length" not in answer.request.headers
    assert answer.status_code == 413
    assert answer.json()["detail"] == f"request body exceeds {cap} bytes"
