"""Idempotency-Key on posts' POSTs: a retry replays the first answer and never writes twice."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func
from sqlmodel import Session, select, update

from services.posts.models import Post
from services.posts.tests.conftest import User
from shared.events.outbox import OutboxMessage
from shared.idempotency import RETENTION, IdempotencyRecord, prune
from shared.ids import utcnow


def count(client: TestClient, model: type) -> int:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        return int(session.exec(select(func.count()).select_from(model)).one())


def create(client: TestClient, author: User, key: str, body: str = "hello #idem") -> Response:
    return client.post(
        "/posts", json={"body": body}, headers={**author.headers, "Idempotency-Key": key}
    )


def test_a_retried_post_replays_the_first_answer_and_creates_one_post(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada = user("ada")
    first = create(posts, ada, "key-1")
    again = create(posts, ada, "key-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["content-type"] == first.headers["content-type"]
    assert count(posts, Post) == 1
    assert count(posts, OutboxMessage) == 1  # one post.created event, not two


def test_the_same_key_with_another_body_is_422_and_writes_nothing(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada = user("ada")
    assert create(posts, ada, "key-2", body="first").status_code == 201
    other = create(posts, ada, "key-2", body="second")
    assert other.status_code == 422
    assert other.headers["content-type"].startswith("application/problem+json")
    assert "Idempotency-Key" in other.json()["detail"]
    assert count(posts, Post) == 1


def test_keys_belong_to_their_user(posts: TestClient, user: Callable[[str], User]) -> None:
    ada, bob = user("ada"), user("bob")
    first = create(posts, ada, "shared-key")
    second = create(posts, bob, "shared-key")
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert second.json()["author_id"] == str(bob.id)
    assert count(posts, Post) == 2


def test_after_a_day_the_key_is_processed_again(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada = user("ada")
    first = create(posts, ada, "key-3").json()
    with Session(posts.app.state.engine) as session:  # type: ignore[attr-defined]
        session.exec(
            update(IdempotencyRecord).values(created_at=utcnow() - RETENTION - timedelta(seconds=1))
        )
        session.commit()
    later = create(posts, ada, "key-3")
    assert later.status_code == 201
    assert "idempotent-replayed" not in later.headers
    assert later.json()["id"] != first["id"]
    assert count(posts, Post) == 2
    assert count(posts, IdempotencyRecord) == 1  # the expired record was replaced


def test_pruning_removes_only_records_older_than_a_day(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada = user("ada")
    create(posts, ada, "old")
    engine = posts.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        session.exec(update(IdempotencyRecord).values(created_at=utcnow() - timedelta(days=2)))
        session.commit()
    create(posts, ada, "new")
    assert prune(engine) == 1
    with Session(engine) as session:
        assert [row.key for row in session.exec(select(IdempotencyRecord))] == ["new"]


def test_concurrent_duplicates_create_one_post_and_all_get_its_answer(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada = user("ada")
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: create(posts, ada, "racing-key"), range(6)))
    assert [answer.status_code for answer in answers] == [201] * 6
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert count(posts, Post) == 1


def test_a_failed_post_is_not_stored_so_its_retry_runs_again(
    posts: TestClient, user: Callable[[str], User]
) -> None:
    ada = user("ada")
    headers = {**ada.headers, "Idempotency-Key": "key-4"}
    missing_parent = {"body": "a reply", "parent_id": "0190a0a0-0000-7000-8000-000000000000"}
    assert posts.post("/posts", json=missing_parent, headers=headers).status_code == 404
    assert count(posts, IdempotencyRecord) == 0
    assert posts.post("/posts", json={"body": "now fine"}, headers=headers).status_code == 201


def test_a_malformed_key_is_400(posts: TestClient, user: Callable[[str], User]) -> None:
    ada = user("ada")
    for key in ("", "x" * 256, "has space"):
        answer = create(posts, ada, key)
        assert answer.status_code == 400, key
    assert count(posts, Post) == 0


def test_without_a_key_every_post_is_new(posts: TestClient, user: Callable[[str], User]) -> None:
    ada = user("ada")
    for _ in range(2):
        assert posts.post("/posts", json={"body": "hi"}, headers=ada.headers).status_code == 201
    assert count(posts, Post) == 2
