"""Test data: content events and digest readers."""

from datetime import timedelta
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient

from shared.events.contracts import ContentKind, ContentSnapshot, PostCreated
from shared.ids import new_id, utcnow


def content(
    *,
    author: UUID,
    model: type[ContentSnapshot] = PostCreated,
    content_id: UUID | None = None,
    kind: ContentKind = "post",
    group_id: UUID | None = None,
    private: bool = False,
    title: str | None = None,
    body: str = "Something worth knowing.",
    tags: tuple[str, ...] = (),
    mentions: tuple[str, ...] = (),
    parent_id: UUID | None = None,
    hours_ago: float = 1.0,
    version: int = 1,
) -> Any:
    """A content snapshot event (post, reply or article) created `hours_ago`."""
    created = utcnow() - timedelta(hours=hours_ago)
    return model(
        content_id=content_id or new_id(),
        kind=kind,
        author_id=author,
        group_id=group_id,
        visibility="private" if private else "public",
        version=version,
        title=title,
        body=body,
        tags=list(tags),
        mentions=list(mentions),
        parent_id=parent_id,
        thread_id=parent_id,
        created_at=created,
        updated_at=created,
    )


def reply(*, author: UUID, to: ContentSnapshot, hours_ago: float = 0.5, **kwargs: Any) -> Any:
    """A reply in the thread of `to`, with the thread's group and visibility."""
    return content(
        author=author,
        kind="reply",
        parent_id=to.content_id,
        group_id=to.group_id,
        private=to.visibility == "private",
        hours_ago=hours_ago,
        **kwargs,
    )


def read_digest(client: TestClient, headers: dict[str, str], **params: str) -> dict[str, Any]:
    response = client.get("/digests/me", headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def section_ids(digest: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    """(reason, key) → the content ids shown in that section, in order."""
    return {
        (section["reason"], section["key"]): [item["content_id"] for item in section["items"]]
        for section in digest["sections"]
    }


def shown_ids(digest: dict[str, Any]) -> list[str]:
    return [item["content_id"] for section in digest["sections"] for item in section["items"]]
