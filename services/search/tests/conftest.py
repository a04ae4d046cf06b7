"""Fixtures for search: the app on real NATS (per engine), and content event factories."""

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from services.search.main import create_app
from services.search.semantic.service import Semantic, semantic_for
from shared.events.contracts import (
    AnswerCreated,
    ArticleCreated,
    CommentCreated,
    ContentKind,
    ContentSnapshot,
    GroupMemberAdded,
    GroupMemberRemoved,
    PostCreated,
    PostDeleted,
    PostUpdated,
    QuestionCreated,
    UserRegistered,
)
from shared.ids import new_id, utcnow
from shared.settings import Settings
from shared.testing.backends import postgres_url, real_backends_required
from shared.testing.fixtures import ServiceClientFactory, wait_for
from shared.testing.opensearch import opensearch_prefix

ENGINES = ("embedded", "opensearch")

Headers = dict[str, str]


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def engine_settings(engine_name: str) -> Iterator[dict[str, str]]:
    """The settings selecting the engine under test; OpenSearch gets its own index prefix."""
    if engine_name == "embedded":
        if postgres_url():
            pytest.skip(
                "the embedded engine (FTS5) needs SQLite, and KNOWFLOW_TEST_POSTGRES_URL puts "
                "the service's database on PostgreSQL: run without it to test the embedded engine"
            )
        yield {"search_url": ""}
        return
    with opensearch_prefix() as (url, prefix):
        yield {"search_url": url, "search_index_prefix": prefix}


@pytest.fixture
def search_client(
    service_client: ServiceClientFactory, engine_settings: dict[str, str]
) -> Iterator[TestClient]:
    """The search service on a real NATS server, with the engine under test, keyword-only
    (the keyword engines' own behaviour; `semantic_client` adds semantic retrieval)."""
    with service_client(
        create_app, name="search", semantic_model="off", **engine_settings
    ) as client:
        yield client


@pytest.fixture
def semantic_client(
    service_client: ServiceClientFactory, engine_settings: dict[str, str]
) -> Iterator[TestClient]:
    """The search service with the engine under test and the embedding model (hybrid)."""
    require_embedding_model()
    with service_client(create_app, name="search", **engine_settings) as client:
        yield client


def require_embedding_model() -> Semantic:
    """The default model, loaded; or skip (locally) / fail (CI) with the reason."""
    semantic = semantic_for(Settings())
    if not semantic.enabled:
        reason = f"no embedding model for semantic search ({semantic.reason})"
        if real_backends_required():
            pytest.fail(reason)
        pytest.skip(reason)
    return semantic


class People:
    """Users with tokens: `people.header(user_id)`."""

    def __init__(self, auth_header: Callable[..., Headers]) -> None:
        self._auth_header = auth_header

    def header(self, user_id: UUID, handle: str = "someone") -> Headers:
        return self._auth_header(user_id, handle)


@pytest.fixture
def people(auth_header: Callable[..., Headers]) -> People:
    return People(auth_header)


def post(
    *,
    title: str | None = None,
    body: str = "",
    kind: ContentKind = "post",
    author_id: UUID | None = None,
    group_id: UUID | None = None,
    tags: list[str] | None = None,
    thread_id: UUID | None = None,
    created_at: datetime | None = None,
    event: type[ContentSnapshot] = PostCreated,
    content_id: UUID | None = None,
    version: int = 1,
) -> ContentSnapshot:
    """A content snapshot; a group makes it private to that group."""
    created = created_at or utcnow()
    return event(
        content_id=content_id or new_id(),
        kind=kind,
        author_id=author_id or new_id(),
        group_id=group_id,
        visibility="private" if group_id else "public",
        version=version,
        title=title,
        body=body,
        tags=tags or [],
        mentions=[],
        parent_id=thread_id,
        thread_id=thread_id,
        created_at=created,
        updated_at=created,
    )


def article(**fields: Any) -> ContentSnapshot:
    return post(kind="article", event=ArticleCreated, **fields)


def question(
    *,
    title: str,
    body: str = "",
    tags: list[str] | None = None,
    group_id: UUID | None = None,
    accepted_answer_id: UUID | None = None,
    duplicate_of: UUID | None = None,
    created_at: datetime | None = None,
    content_id: UUID | None = None,
    author_id: UUID | None = None,
) -> QuestionCreated:
    """A question: its thread is itself."""
    qid = content_id or new_id()
    created = created_at or utcnow()
    return QuestionCreated(
        content_id=qid,
        kind="question",
        author_id=author_id or new_id(),
        group_id=group_id,
        visibility="private" if group_id else "public",
        version=1,
        title=title,
        body=body,
        tags=tags or [],
        mentions=[],
        parent_id=None,
        thread_id=qid,
        created_at=created,
        updated_at=created,
        accepted_answer_id=accepted_answer_id,
        duplicate_of=duplicate_of,
    )


def answer_to(asked: ContentSnapshot, *, body: str, **fields: Any) -> ContentSnapshot:
    return post(
        kind="answer",
        event=AnswerCreated,
        thread_id=asked.content_id,
        group_id=asked.group_id,
        body=body,
        **fields,
    )


def comment_on(asked: ContentSnapshot, *, body: str, **fields: Any) -> ContentSnapshot:
    return post(
        kind="comment",
        event=CommentCreated,
        thread_id=asked.content_id,
        group_id=asked.group_id,
        body=body,
        **fields,
    )


def reply(*, thread: ContentSnapshot, **fields: Any) -> ContentSnapshot:
    return post(
        kind="reply",
        thread_id=thread.content_id,
        group_id=thread.group_id,
        **fields,
    )


def updated(original: ContentSnapshot, *, version: int, **changes: Any) -> ContentSnapshot:
    data = original.model_dump()
    data.update(version=version, updated_at=utcnow() + timedelta(seconds=version), **changes)
    return PostUpdated(**data)


def deleted(original: ContentSnapshot, *, version: int) -> PostDeleted:
    return PostDeleted(
        content_id=original.content_id,
        kind=original.kind,
        author_id=original.author_id,
        group_id=original.group_id,
        visibility=original.visibility,
        version=version,
        deleted_at=utcnow(),
    )


def joined(group_id: UUID, user_id: UUID) -> GroupMemberAdded:
    return GroupMemberAdded(group_id=group_id, visibility="private", user_id=user_id, role="member")


def left(group_id: UUID, user_id: UUID) -> GroupMemberRemoved:
    return GroupMemberRemoved(group_id=group_id, visibility="private", user_id=user_id)


def registered(user_id: UUID, handle: str) -> UserRegistered:
    return UserRegistered(user_id=user_id, handle=handle, display_name=handle.title())


def search_items(
    client: TestClient, headers: Headers, q: str, **params: Any
) -> list[dict[str, Any]]:
    response = client.get("/search", params={"q": q, "limit": 100, **params}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def search_ids(client: TestClient, headers: Headers, q: str, **params: Any) -> list[str]:
    return [item["id"] for item in search_items(client, headers, q, **params)]


def settle_content(
    client: TestClient, headers: Headers, publish: Callable[..., None], *events: Any
) -> None:
    """Publish content events, then a marker, and wait for the marker: all before it applied.

    One durable consumer applies content events in stream order, so once the marker is
    searchable every earlier event has been processed.
    """
    word = f"marker{new_id().hex}"
    publish(*events, post(body=word))
    wait_for(lambda: search_ids(client, headers, word))
